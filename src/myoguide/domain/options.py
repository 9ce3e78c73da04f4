"""Recommendations for this patient: templates from the knowledge with computed agent options."""

from __future__ import annotations

import msgspec

from myoguide.domain.doses import regimen
from myoguide.domain.facts import Facts
from myoguide.domain.prepared import Stance, StaticRec
from myoguide.domain.result import AgentOption, Recommendation
from myoguide.domain.run import Run

_CACHE_LIMIT = 4096


def add(
    run: Run,
    rec_id: str,
    rank: int,
    f: Facts,
    *,
    step: str,
    only_agents: frozenset[str] | None = None,
    stance: Stance | None = None,
) -> None:
    """Offer one recommendation at a rank, with the trace step that says so."""
    p = run.p
    st = p.static[rec_id]
    run.step(f"option.{rec_id}", st.knowledge, f"offered at rank {rank}", grade=st.grade)
    if st.all_static:
        # Nothing here depends on the patient beyond these keys, so build each variant once.
        key = (rec_id, rank, stance, step, f.ild, only_agents)
        hit = p.built.get(key)
        if hit is None:
            hit = _build(run, st, rec_id, rank, stance, step, f, only_agents)
            if len(p.built) < _CACHE_LIMIT:
                p.built[key] = hit
        run.recs.append(hit)
        return
    run.recs.append(_build(run, st, rec_id, rank, stance, step, f, only_agents))


def _build(
    run: Run,
    st: StaticRec,
    rec_id: str,
    rank: int,
    stance: Stance | None,
    step: str,
    f: Facts,
    only_agents: frozenset[str] | None,
) -> Recommendation:
    """Assemble one recommendation, computing the agent options that depend on the patient."""
    agents = tuple(
        opt if opt is not None else _agent_option(run, f, rec_id, i)
        for i, (agent, opt) in enumerate(st.options)
        if only_agents is None or agent in only_agents
    )
    return Recommendation(
        id=rec_id,
        rank=rank,
        stance=stance or st.stance,
        grade=st.grade,
        grade_meaning=st.grade_meaning,
        agents=agents,
        text=st.text,
        cautions=st.cautions_ild if f.ild else st.cautions,
        sources=st.sources,
        caution_details=st.details_ild if f.ild else st.details,
        step=step,
    )


def _agent_option(run: Run, f: Facts, rec_id: str, index: int) -> AgentOption:
    plan = run.p.option_plans[rec_id][index]
    regimens = []
    primary = None
    for rp in plan.regimens:
        reg = rp.static or regimen(run, f, rp.rule_id, rp.maximum)
        if primary is None:
            primary = reg.dose
        regimens.append(reg)
    return AgentOption(
        plan.agent, plan.rxnorm, plan.display, primary, tuple(regimens), plan.maximum_words
    )


def with_stance(rec: Recommendation, stance: Stance) -> Recommendation:
    """Return the recommendation with another stance."""
    return msgspec.structs.replace(rec, stance=stance)
