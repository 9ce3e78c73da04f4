"""Recommendations for this patient: templates with computed agent options and what each step
does with each agent (start, raise, restart, continue, switch to)."""

from __future__ import annotations

import msgspec

from myoguide.domain.doses import regimen
from myoguide.domain.facts import Facts
from myoguide.domain.prepared import Stance, StaticRec
from myoguide.domain.result import Action, AgentOption, Recommendation, Regimen, TraceStep
from myoguide.domain.run import Run
from myoguide.domain.units import fmt


def action_for(f: Facts, agent: str, planned: Action) -> Action:
    """Return what a step does with an agent, given whether it is in use or was tried before."""
    if agent in f.using:  # f.in_use, without the call
        # Never a new start for a drug already taken: the step continues (or raises) it.
        return planned if planned in ("raise", "continue") else "continue"
    if planned == "start" and (agent in f.tried or agent in f.failed):
        # Used before (the combination may bring back a drug that failed alone): a restart.
        return "restart"
    return planned


_OFFERED = tuple(f"offered at rank {rank}" for rank in range(32))  # the trace's words, made once


def add(
    run: Run,
    rec_id: str,
    rank: int,
    f: Facts,
    *,
    step: str,
    only_agents: frozenset[str] | None = None,
    stance: Stance | None = None,
    alone: bool = False,
) -> None:
    """Offer one recommendation at a rank, with the trace step that says so."""
    p = run.p
    st = p.static[rec_id]
    rank += run.rank_offset
    # The trace step built here: its rule and knowledge were read at load.
    said = _OFFERED[rank] if 0 <= rank < len(_OFFERED) else f"offered at rank {rank}"
    run.trace.append(TraceStep(st.trace_rule, st.trace_knowledge, {"grade": st.grade}, said))
    hit = _build(run, st, rec_id, rank, stance, step, f, only_agents, alone)
    if f.ild and st.cni_ild:
        hit = _cni_ild_unless_failed(run, f, hit)
    # Only an agent with a date of last dose, or a course agent in use, reads otherwise here.
    dated = f.last_given
    # A step's course agents matter only where one of them is in use.
    if dated or (st.course and not st.course_named.isdisjoint(f.using)):
        course, using = p.course_agents, f.using
        if any(a.agent in dated or (a.agent in course and a.agent in using) for a in hit.agents):
            hit = msgspec.structs.replace(
                hit, agents=tuple(course_option(run, f, a) for a in hit.agents)
            )
    run.recs.append(hit)


_CNI_ILD = "cni_ild"


def _cni_ild_unless_failed(run: Run, f: Facts, rec: Recommendation) -> Recommendation:
    """Drop "calcineurin inhibitors may work particularly well for ILD" once one has failed."""
    failed = sorted(run.p.kb.agents_in_class("calcineurin_inhibitor") & f.failed)
    if not failed:
        return rec
    keep = tuple(d for d in rec.caution_details if d.id != _CNI_ILD)
    dropped = {d.text for d in rec.caution_details if d.id == _CNI_ILD}
    run.step(
        f"caution.{_CNI_ILD}.{rec.id}",
        f"cautions.{_CNI_ILD}",
        "a calcineurin inhibitor already failed: its reported ILD benefit is not restated",
        failed=failed,
    )
    return msgspec.structs.replace(
        rec,
        caution_details=keep,
        cautions=tuple(c for c in rec.cautions if c not in dropped),
    )


def course_option(run: Run, f: Facts, opt: AgentOption) -> AgentOption:
    """Return an infusion or course agent's option as what it is: never a "continue" order.

    In use, the step states when the last course was given (or that the record does not say)
    and that the source is silent on when to judge or repeat it; no dose is put forward as an
    order, the regimens stay as a description of a course.
    """
    when = f.last_given.get(opt.agent)
    if not (opt.agent in run.p.course_agents and f.in_use(opt.agent)):
        if when is None:
            return opt
        return msgspec.structs.replace(
            opt, notes=(*opt.notes, f"Last given on {when} (per the record).")
        )
    display = opt.display
    if when is None:
        run.warn_keyed(
            "course_last_given_unknown",
            f"course_last_given_unknown:{opt.agent}",
            None,
            {"agent": display},
        )
        said = "the record does not say when the last dose or course was given"
    else:
        words = {"agent": display, "date": when}
        run.warn_keyed("course_last_given", f"course_last_given:{opt.agent}", None, words)
        said = f"the last dose or course was given on {when}"
    note = (
        f"In use: {said}. The source does not say when to judge a course or repeat it; the"
        " regimens describe a course, not an order for another one now."
    )
    run.step(
        f"course.{opt.agent}",
        "warnings.course_last_given",
        "in use as a course: no repeat proposed, no 'continue' with the full regimen",
        last_given=when if when else None,
    )
    return msgspec.structs.replace(opt, action=None, dose=None, notes=(note,))


def _build(
    run: Run,
    st: StaticRec,
    rec_id: str,
    rank: int,
    stance: Stance | None,
    step: str,
    f: Facts,
    only_agents: frozenset[str] | None,
    alone: bool,
) -> Recommendation:
    """Assemble one recommendation, computing the agent options that depend on the patient."""
    options: list[AgentOption] = []
    # Said in the text where the step would otherwise read as a new start.
    in_use: list[str] = []
    by_agent = st.planned_by
    planned_all = st.planned
    using, tried, failed = f.using, f.tried, f.failed
    for i, (agent, opt) in enumerate(st.options):
        if only_agents is not None and agent not in only_agents:
            continue
        planned = planned_all[i]
        if opt is None:
            opt = _agent_option(run, f, rec_id, i, planned)
        elif (
            agent in using
            or planned != opt.action
            or (planned == "start" and (agent in tried or agent in failed))
        ):
            # Otherwise the prepared option stands as it is (see `_with_action`).
            opt = _with_action(run, f, opt, planned)
        options.append(opt)
        if opt.in_use and by_agent[agent] not in ("raise", "continue"):
            in_use.append(opt.display)
    agents = tuple(options)
    text = st.text_alone if alone and st.text_alone else st.text
    if in_use:
        text += f" Already in use: {', '.join(in_use)}."
    # Alternatives stay alternatives only while two or more of them are still offered.
    choose_one: tuple[str, ...] = ()
    if st.choose_one:
        offered = {a.agent for a in agents}
        choose_one = tuple(a for a in st.choose_one if a in offered)
        if len(choose_one) < 2:
            choose_one = ()
    ild = f.ild
    # Positional, in field order: cheaper than keywords for a Struct this wide.
    return Recommendation(
        rec_id,
        rank,
        stance or st.stance,
        st.grade,
        st.grade_meaning,
        agents,
        text,
        st.cautions_ild if ild else st.cautions,
        st.sources,
        st.details_ild if ild else st.details,
        step,
        choose_one,
    )


def _notes(
    run: Run, f: Facts, agent: str, action: Action, planned: Action, in_use: bool
) -> tuple[str, ...]:
    """Return what an agent option says of the patient: in use at what dose, or used before."""
    if in_use:
        current = f.current.get(agent)
        per = run.p.kb.agent(agent).dose_period or "day"
        dose = f" at {fmt(current)} mg/{per}" if current is not None else ""
        return (f"Already in use{dose}: {_verb(action)} it, not a new start.",)
    if action == "restart" and planned == "start":
        if agent in f.failed:
            return ("Failed when used alone before; this step uses it again in combination.",)
        return ("Used before without failing: resume it.",)
    return ()


def _with_action(run: Run, f: Facts, opt: AgentOption, planned: Action) -> AgentOption:
    """Return a prepared option with what the step does with it for this patient."""
    agent = opt.agent
    in_use = agent in f.using
    # Not in use and not used before: as prepared at load (the planned action, nothing to note).
    fresh = planned != "start" or (agent not in f.tried and agent not in f.failed)
    if not in_use and planned == opt.action and fresh:
        return opt
    action = action_for(f, agent, planned)
    notes = _notes(run, f, agent, action, planned, in_use)
    if action == opt.action and not in_use and not notes:
        return opt
    return msgspec.structs.replace(opt, action=action, in_use=in_use, notes=(*opt.notes, *notes))


def _verb(action: Action) -> str:
    return {"raise": "raise", "continue": "continue"}.get(action, "continue")


def _agent_option(run: Run, f: Facts, rec_id: str, index: int, planned: Action) -> AgentOption:
    plan = run.p.option_plans[rec_id][index]
    agent = plan.agent
    action = action_for(f, agent, planned)
    in_use = agent in f.using
    regimens = []
    primary = None  # the option's dose: its first regimen's dose given
    # Each regimen as prepared at load, or what its dose needs (read at load).
    for part in run.rx.parts[rec_id][index]:
        reg = part if isinstance(part, Regimen) else regimen(run, f, part, action)
        if primary is None:
            primary = reg.dose
        regimens.append(reg)
    # Built once with its final values: action, notes, practical amounts and label checks.
    return AgentOption(
        agent,
        plan.rxnorm,
        plan.display,
        primary,
        tuple(regimens),
        plan.maximum_words,
        action,
        in_use,
        # Nothing to note of an agent not in use whose action is as planned.
        _notes(run, f, agent, action, planned, in_use) if in_use or action != planned else (),
        run.rx.checks.get(agent, ()),
    )


def with_stance(rec: Recommendation, stance: Stance) -> Recommendation:
    """Return the recommendation with another stance."""
    return msgspec.structs.replace(rec, stance=stance)
