"""The pure guideline engine: a validated patient state in, a RecommendationSet out.

No I/O, no environment, no clock: the same state and knowledge always give the same answer.
The rules live beside it: classify (scope and course), flares (R1-R4), ladder (resistant
disease), options and doses (what is offered, for this patient, through one dose safety layer).
"""

from __future__ import annotations

from operator import attrgetter

import msgspec

from myoguide.domain.classify import evaluate
from myoguide.domain.doses import missing_measure_warnings
from myoguide.domain.facts import Facts, derive
from myoguide.domain.prepared import prepare, sources_of
from myoguide.domain.prescribable import (
    build_tables,
    prescribed_plans,
    prescribed_static,
    with_calcs,
    with_static,
)
from myoguide.domain.result import CautionDetail, Recommendation, RecommendationSet
from myoguide.domain.run import Run
from myoguide.domain.state import PatientState
from myoguide.domain.units import fmt
from myoguide.knowledge.model import Knowledge
from myoguide.knowledge.terminology import Terminology

__all__ = ["Engine", "sources_of"]

_CYTOPENIA = "combination_cytopenia"
_RANK = attrgetter("rank")


class Engine:
    """Evaluates patient states against one loaded Knowledge."""

    def __init__(self, knowledge: Knowledge, terminology: Terminology) -> None:
        self.kb = knowledge
        # Checks every id the rules rely on (fails closed) and builds the static tables once.
        self._p = prepare(knowledge)
        # Product strengths come from the terminology the caller loaded (the engine reads no file).
        self._rx = with_static(build_tables(knowledge, terminology), self._p.static_regimens)
        # The patient-independent options carry their practical amounts and checks from load.
        self._p.static = prescribed_static(self._p.static, self._rx)
        self._p.option_plans = prescribed_plans(self._p.option_plans, self._rx)
        # What each computed regimen's dose needs, read once.
        with_calcs(self._rx, self._p)

    def recommend(self, state: PatientState) -> RecommendationSet:
        """Return the RecommendationSet for a validated patient state."""
        run = Run(self._p, self._rx)
        facts = derive(state, self.kb)
        _input_warnings(facts, run)
        course, scenario, flare_scenario = evaluate(facts, run)
        missing_measure_warnings(run)
        _weight_basis(facts, run)
        if run.left_out:
            kb = self.kb
            said = "; ".join(f"{kb.agent(a).display} ({why})" for a, why in run.left_out.items())
            run.warn("agent_left_out", agents=said)
        _cytopenia(facts, run)
        recs = tuple(sorted(run.recs, key=_RANK))
        scen = self.kb.scenarios.get(scenario) if scenario else None
        shows_ladder = any(r.id in self._p.ladder_ids for r in recs)
        measures: dict[str, str] = {}
        if facts.kg_text:
            measures["weight_kg"] = facts.kg_text
        if facts.height_text:
            measures["height_cm"] = facts.height_text
        if facts.bsa_text:
            measures["bsa_m2"] = facts.bsa_text
        # Positional, in field order: cheaper than keywords for a Struct this wide.
        return RecommendationSet(
            self.kb.knowledge_version,
            course,
            scenario,
            recs,
            tuple(run.warnings.values()),
            tuple(run.trace),
            scen.title if scen else None,
            self._p.literature if shows_ladder else (),
            self.kb.disclaimer,
            measures,
            flare_scenario,
            self.kb.scenarios[flare_scenario].title if flare_scenario else None,
        )


def _input_warnings(f: Facts, run: Run) -> None:
    """Warn on what is possible but unusual, and on history that is unknown or contradictory."""
    kb = run.p.kb
    lim = kb.input_limits
    if f.weight_kg is not None and not (
        lim.weight_kg_usual.min <= f.weight_kg <= lim.weight_kg_usual.max
    ):
        run.warn("weight_unusual", weight=f.kg_text)
    usual = lim.bmi_usual
    if f.bmi is not None and not float(usual.min) <= f.bmi <= float(usual.max):
        run.warn("bmi_unusual", bmi=f"{f.bmi:.1f}")
    for agent, amount in f.current.items():
        limit = lim.doses.get(agent)
        if amount is None or limit is None or limit.warn_above is None:
            continue
        if amount > limit.warn_above:
            words = {
                "agent": kb.agent(agent).display,
                "dose": fmt(amount),
                "unit": "mg",
                "period": kb.agent(agent).dose_period or "day",
                "basis": limit.warn_basis or "unusual",
            }
            run.warn_keyed(
                "dose_unusual", f"dose_unusual:{agent}", sources_of(limit.sources), words
            )
    for agent, outcomes in f.conflicts.items():
        words = {"agent": kb.agent(agent).display, "outcomes": ", ".join(outcomes)}
        run.warn_keyed("history_conflict", f"history_conflict:{agent}", None, words)
    if f.unknown:
        run.warn("outcome_unknown", agents=", ".join(f.unknown))
    if "prednisone" in f.intolerant:
        run.warn("prednisone_intolerance")
    if f.combination_intolerance:
        run.warn("combination_intolerance", agents="; ".join(f.combination_intolerance))
    run.step(
        "history.read",
        "warnings.history_conflict",
        "history folded: agents that responded inadequately or were not tolerated are never"
        " a new start",
        failed=sorted(f.failed),
        intolerant=sorted(f.intolerant),
        tried_without_failure=sorted(f.tried),
        outcome_unknown=list(f.unknown),
        conflicting=sorted(f.conflicts),
    )


def _weight_basis(f: Facts, run: Run) -> None:
    """Say, from the stated BMI up, that the source names no weight basis; show the arithmetic."""
    at_least = run.p.kb.thresholds.weight_basis_bmi_at_least
    if at_least is None or f.bmi is None or f.bmi < float(at_least):
        return
    doses = list(
        dict.fromkeys(
            f"{a.display} {g.dose.basis}"
            for r in run.recs
            for a in r.agents
            for g in a.regimens
            if g.dose is not None and "/kg" in g.dose.basis
        )
    )
    if not doses:
        return
    run.warn("weight_basis_unstated", bmi=f"{f.bmi:.1f}", doses=" | ".join(doses))
    run.step(
        "doses.weight_basis",
        "thresholds.weight_basis_bmi_at_least",
        "BMI at or above the stated threshold: weight basis unstated, actual weight used",
        bmi=f"{f.bmi:.1f}",
        threshold=fmt(at_least),
    )


def _cytopenia(f: Facts, run: Run) -> None:
    """Put the AZA+MTX cytopenia caution wherever the two are together, in use or proposed."""
    pair = run.p.sparing_set
    in_use = pair & f.using
    detail = run.p.caution[_CYTOPENIA]
    if in_use == pair:
        run.warn("aza_mtx_in_use")
    skip = run.p.no_sparing
    for i, rec in enumerate(run.recs):
        if rec.id in skip:
            continue
        named = set()  # a plain loop: most options name neither agent
        for a in rec.agents:
            if a.agent in pair and a.action != "switch_to":
                named.add(a.agent)
        if not named:
            continue
        # Alternatives (choose_one) are added one at a time: each meets only what is in use.
        alone = named <= set(rec.choose_one)
        together = any({a} | in_use == pair for a in named) if alone else named | in_use == pair
        if alone and not together:
            run.step(
                "caution.aza_mtx_alternatives",
                f"recommendations.{rec.id}",
                "azathioprine or methotrexate, one of them: not together, no cytopenia caution",
                recommendation=rec.id,
                in_use=sorted(in_use),
            )
        if not together or detail in rec.caution_details:
            continue
        run.recs[i] = _with_caution(rec, detail.text, detail)
        run.step(
            "caution.aza_mtx_together",
            f"cautions.{_CYTOPENIA}",
            "azathioprine and methotrexate together: cytopenia caution added",
            recommendation=rec.id,
        )


def _with_caution(rec: Recommendation, text: str, detail: CautionDetail) -> Recommendation:
    return msgspec.structs.replace(
        rec,
        cautions=(*rec.cautions, text),
        caution_details=(*rec.caution_details, detail),
    )
