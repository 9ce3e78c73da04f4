"""Order checks: draft medication orders judged against the maxima, the ladder and the cautions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Literal

from msgspec import Struct

from myoguide.domain.facts import FAILED_OUTCOMES
from myoguide.domain.prepared import sources_of
from myoguide.domain.result import AgentOption, Recommendation, Source
from myoguide.domain.state import PatientState
from myoguide.domain.units import fmt
from myoguide.knowledge.model import Knowledge, Maximum

Indicator = Literal["info", "warning", "critical"]


# msgspec Structs, not dataclasses: a dataclass runs generated code when defined (issue 24).
class DraftOrder(Struct, frozen=True):
    """A draft medication order reduced to what the judging needs."""

    reference: str
    agent: str
    mg_per_day: Decimal | None
    mg_per_week: Decimal | None


class OrderFinding(Struct, frozen=True):
    """One thing a clinician should know about a draft order, with where it comes from."""

    key: str
    indicator: Indicator
    summary: str
    detail: str
    sources: tuple[Source, ...]
    recommendation: str | None = None  # the option this finding is about, when there is one


class Draftable(Struct, frozen=True):
    """A drug the first choice starts with a dose to order, with the step that says so."""

    recommendation: Recommendation
    agent: AgentOption

    @property
    def alternative(self) -> bool:
        """Tell whether the drug is one of its step's alternatives (none ranked above another)."""
        return self.agent.agent in self.recommendation.choose_one


# The actions that begin a drug the patient is not on: only these are drafted as a new order.
_STARTING_ACTIONS = (None, "start", "restart", "switch_to")


def draftable(first: Sequence[Recommendation]) -> tuple[Draftable, ...]:
    """Return each drug the first choice starts with a computed dose: a new order to draft."""
    return tuple(
        Draftable(rec, agent)
        for rec in first
        if rec.stance != "not_suggested"
        for agent in rec.agents
        if not agent.in_use
        and agent.action in _STARTING_ACTIONS
        and agent.dose is not None
        and (agent.dose.low is not None or agent.dose.high is not None)
    )


def judge_orders(
    drafts: Iterable[DraftOrder],
    state: PatientState,
    kb: Knowledge,
    *,
    records: Sequence[str] = (),
) -> list[OrderFinding]:
    """Judge draft orders against the stated maxima, the ladder's order and the cautions.

    records: how the chart's outcomes were read, each "<drug>: <what was recorded, where>";
    an order for a drug recorded as failed or not tolerated names its own.
    """
    drafts = list(drafts)
    ladder = _LadderView.of(kb, state)
    maxima = {m.agent: m for m in kb.maxima}
    out: list[OrderFinding] = []
    for d in drafts:
        dose = _dose_finding(d, maxima.get(d.agent), kb)
        if dose is not None:
            out.append(dose)
        out += ladder.findings(d, kb)
        out += _reorder_findings(d, state, kb, records)
        out += _caution_findings(d, kb)
    combination = _combination_finding(drafts, state, kb)
    if combination is not None:
        out.append(combination)
    return out


def _dose_finding(d: DraftOrder, m: Maximum | None, kb: Knowledge) -> OrderFinding | None:
    """Return the finding on a draft's dose: unreadable, or above the stated maximum."""
    if d.mg_per_day is None and d.mg_per_week is None:
        name = kb.agent(d.agent).display
        limit_words = (
            f" against the stated maximum {fmt(m.amount)} {m.unit}/{m.period}" if m else ""
        )
        return OrderFinding(
            f"dose-not-checked:{d.reference}",
            "warning",
            f"{name}: dose not checked (it could not be read from the order)",
            f"The draft order names {name}, but its dose could not be "
            f"read as an amount per day or per week, so it was not checked{limit_words}. "
            "Check the dose by hand.",
            sources_of(m.sources) if m else (),
        )
    if m is None:
        return None
    # A range was read as its high end by the mapping: the high end is what is checked.
    amount = d.mg_per_day if m.period == "day" else d.mg_per_week
    limit = m.amount * (1000 if m.unit == "g" else 1)
    if amount is None or amount <= limit:
        return None
    name = kb.agent(d.agent).display
    return OrderFinding(
        f"over-maximum:{d.reference}",
        "critical",
        f"{name} {fmt(amount)} mg/{m.period} is above the stated maximum "
        f"{fmt(m.amount)} {m.unit}/{m.period}",
        f"The draft order gives {fmt(amount)} mg/{m.period}. "
        f"The source states a maximum of {fmt(m.amount)} {m.unit}/{m.period} "
        f"for {name}.",
        sources_of(m.sources),
    )


class _LadderView(Struct, frozen=True):
    """What the ladder's order needs to judge a draft: classes, failures, the late steps."""

    failed: frozenset[str | None]  # a combination's history entry names no one agent
    tnf: frozenset[str]
    alkylating: frozenset[str]
    second_line: frozenset[str]
    ladder_agents: frozenset[str]
    tnf_rec: str | None
    alkylating_rec: str | None

    @classmethod
    def of(cls, kb: Knowledge, state: PatientState) -> _LadderView:
        """Build the view for one patient's history."""
        tnf = kb.agents_in_class("tnf_inhibitor")
        alkylating = kb.agents_in_class("alkylating_agent")
        return cls(
            frozenset(h.agent for h in state.treatment_history if h.outcome in FAILED_OUTCOMES),
            tnf,
            alkylating,
            kb.agents_in_class("second_line"),
            frozenset(
                a.agent
                for step in kb.ladder
                for rid in step.recommendations
                for a in kb.recommendations[rid].agents
            ),
            _ladder_rec_of(kb, tnf),
            _ladder_rec_of(kb, alkylating),
        )

    def findings(self, d: DraftOrder, kb: Knowledge) -> list[OrderFinding]:
        """Return the findings on a draft that jumps the ladder's order (TNF, alkylating)."""
        out: list[OrderFinding] = []
        if d.agent in self.tnf and self.tnf_rec is not None:
            untried = sorted(self.ladder_agents - self.tnf - self.failed)
            if untried:
                tpl = kb.recommendations[self.tnf_rec]
                out.append(
                    OrderFinding(
                        f"tnf-early:{d.reference}",
                        "warning",
                        f"TNF inhibitor ordered while earlier options are untried (Grade "
                        f"{tpl.grade})",
                        f"{tpl.text} Options not yet failed: "
                        f"{', '.join(kb.agent(a).display for a in untried)}. "
                        f"Grade {tpl.grade}: {kb.grades.explain(tpl.grade or '2C')}",
                        sources_of(tpl.sources),
                        self.tnf_rec,
                    )
                )
        if d.agent in self.alkylating and self.alkylating_rec is not None:
            n_failed = len(self.failed & self.second_line)
            need = kb.thresholds.alkylating_min_failed_second_line
            if n_failed < need:
                tpl = kb.recommendations[self.alkylating_rec]
                out.append(
                    OrderFinding(
                        f"alkylating-early:{d.reference}",
                        "warning",
                        f"Alkylating agent before several options have failed (Grade {tpl.grade})",
                        f"{tpl.text} Second-line options failed so far: {n_failed} "
                        f"(reserved for at least {need}). "
                        f"Grade {tpl.grade}: {kb.grades.explain(tpl.grade or '1C')}",
                        sources_of(tpl.sources),
                        self.alkylating_rec,
                    )
                )
        return out


_RECORDED = {"inadequate_response": "an inadequate response", "intolerance": "not tolerated"}


def _reorder_findings(
    d: DraftOrder, state: PatientState, kb: Knowledge, records: Sequence[str]
) -> list[OrderFinding]:
    """Return the warning on ordering again a drug the record says failed or was not tolerated."""
    failed = [
        h
        for h in state.treatment_history
        if h.outcome in FAILED_OUTCOMES and (h.agent == d.agent or d.agent in (h.agents or ()))
    ]
    if not failed:
        return []
    name = kb.agent(d.agent).display
    names = {name.lower(), d.agent.replace("_", " ")}
    said = [r for r in records if r.split(":", 1)[0].strip().lower() in names]
    what = " and as ".join(dict.fromkeys(_RECORDED[h.outcome] for h in failed))
    lines = []
    for h in failed:
        others = [kb.agent(a).display for a in h.agents or () if a != d.agent]
        with_ = f" (given with {', '.join(others)})" if others else ""
        when = f", last given {h.last_given}" if h.last_given else ""
        lines.append(f"{_RECORDED[h.outcome]}{with_}{when}")
    detail = f"The chart records {name} as {'; '.join(lines)}."
    detail += (
        " Where the chart says so: " + "; ".join(said) + "."
        if said
        else " The record gives no date for it here; check the medication history."
    )
    detail += (
        " The source's options do not offer again a drug that failed or was not tolerated; "
        "ordering it again is the clinician's decision."
    )
    template = kb.warnings.get("history_conflict")
    return [
        OrderFinding(
            f"reorder-failed:{d.reference}",
            "warning",
            f"{name} is recorded as {what}: check before ordering it again",
            detail,
            sources_of(template.sources) if template else (),
        )
    ]


def _caution_findings(d: DraftOrder, kb: Knowledge) -> list[OrderFinding]:
    """Return the cautions the knowledge wires to ordering a draft's agent."""
    name = kb.agent(d.agent).display
    return [
        OrderFinding(
            f"{cid.replace('_', '-')}:{d.reference}",
            "info",
            f"{name}: {c.text[0].lower()}{c.text[1:].rstrip('.')}",
            c.text,
            sources_of(c.sources),
        )
        for cid in kb.wiring.order_cautions.get(d.agent, ())
        for c in [kb.cautions[cid]]
    ]


def _combination_finding(
    drafts: list[DraftOrder], state: PatientState, kb: Knowledge
) -> OrderFinding | None:
    """Return the cytopenia caution when the drafts make azathioprine with methotrexate."""
    sparing = set(kb.wiring.sparing_agents)
    ordered = {d.agent for d in drafts}
    on = {m.agent for m in state.current_medications}
    if not (sparing <= (ordered | on) and ordered & sparing):
        return None
    c = kb.cautions["combination_cytopenia"]
    return OrderFinding(
        "aza-mtx-cytopenia:combination",
        "warning",
        "Azathioprine with methotrexate: monitor closely for cytopenias",
        c.text,
        sources_of(c.sources),
    )


def _ladder_rec_of(kb: Knowledge, agents: frozenset[str]) -> str | None:
    """Return the ladder recommendation whose agents all belong to a class, if any."""
    for step in kb.ladder:
        for rid in step.recommendations:
            rec_agents = {a.agent for a in kb.recommendations[rid].agents}
            if rec_agents and rec_agents <= agents:
                return rid
    return None
