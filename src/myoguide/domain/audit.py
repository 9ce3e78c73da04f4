"""The population audit for one patient: the row and the flags, from a state and its answer.

Pure: no I/O, no clock. The flag rules are the knowledge's `flags:` (knowledge/flags.py); each
raised flag says how the record differs from the review's suggested order, never that it is wrong.
"""

from __future__ import annotations

from decimal import Decimal

from msgspec import Struct

from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import DoseIn, PatientState, dec
from myoguide.domain.units import to_mg_per_day, to_mg_per_week
from myoguide.knowledge.flags import (
    AboveMaximum,
    AlternativesNotExcluded,
    EscalatedEarly,
    FailedAgentInUse,
    Flag,
    Flags,
    FlareWithoutSparing,
)
from myoguide.knowledge.model import Knowledge, Maximum, SourceRef

UNUSABLE = "unusable"
DECEASED = "deceased"


class RaisedFlag(Struct, frozen=True):
    """One flag raised for a patient: which, its words, the agents concerned and its sources."""

    id: str
    text: str
    agents: tuple[str, ...]
    sources: tuple[SourceRef, ...]


class AuditRow(Struct, frozen=True):
    """What the audit keeps of one patient's answer (course `unusable` when no state was usable)."""

    course: str
    scenario: str | None
    first_option: str | None
    first_option_agents: tuple[str, ...]
    data_problems: tuple[str, ...]
    flags: tuple[str, ...]
    knowledge_version: str


def audit_patient(
    state: PatientState,
    result: RecommendationSet,
    flags: Flags,
    knowledge: Knowledge,
    problems: tuple[str, ...] = (),
) -> tuple[AuditRow, tuple[RaisedFlag, ...]]:
    """Return the audit row and the raised flags; `problems` are the door's data problem codes."""
    raised = tuple(
        RaisedFlag(f.id, f.text, agents, f.sources)
        for f in flags.flags
        if result.course in f.applies_to_courses
        for agents in [_check(f, state, result, knowledge)]
        if agents is not None
    )
    first = result.recommendations[0] if result.recommendations else None
    # The knowledge's record-scope warnings say the record lacks something (ADR 0015).
    record = knowledge.warnings_in_scope("record")
    data = {*problems, *(w.code for w in result.warnings if w.code in record)}
    row = AuditRow(
        course=result.course,
        scenario=result.scenario,
        first_option=first.id if first else None,
        first_option_agents=tuple(a.agent for a in first.agents) if first else (),
        data_problems=tuple(sorted(data)),
        flags=tuple(r.id for r in raised),
        knowledge_version=result.knowledge_version,
    )
    return row, raised


def unusable_row(problems: tuple[str, ...], knowledge_version: str) -> AuditRow:
    """Return the row of a patient whose record gave no usable state (no answer, no flags)."""
    return AuditRow(UNUSABLE, None, None, (), tuple(sorted(set(problems))), (), knowledge_version)


def deceased_row(knowledge_version: str) -> AuditRow:
    """Return the row of a patient who died by the evaluation date (counted apart, no answer)."""
    return AuditRow(DECEASED, None, None, (), (), (), knowledge_version)


def died_by(flag: bool | None, when: str | None, evaluation_date: str) -> bool:
    """Tell whether a record says the patient had died by the evaluation date (YYYY-MM-DD).

    A death date written to the year or month counts from its first day: a death recorded in the
    period the audit ends in is not audited as a living patient's care.
    """
    if when is not None:
        parts = when[:10].split("-")
        try:
            year, month, day = (int(x) for x in [*parts, "1", "1"][:3])
        except ValueError:
            return flag is True  # an unreadable date: the flag alone decides
        return f"{year:04d}-{month:02d}-{day:02d}" <= evaluation_date
    return flag is True


def _check(
    f: Flag, state: PatientState, result: RecommendationSet, kb: Knowledge
) -> tuple[str, ...] | None:
    """Return the agents a flag concerns when it is raised (possibly none), else None."""
    current: dict[str, DoseIn | None] = {m.agent: m.dose for m in state.current_medications}
    if isinstance(f, FlareWithoutSparing):
        pred = current.get("prednisone")
        if state.flare is not True or pred is None:
            return None
        mg = _in_period(pred, "day")
        if mg <= f.prednisone_above_mg_per_day:
            return None
        return None if any(a in current for a in f.sparing_agents) else ()
    if isinstance(f, AboveMaximum):
        over = tuple(
            m.agent
            for m in (kb.maximum(i) for i in f.maxima)
            if (dose := current.get(m.agent)) is not None and _above(dose, m)
        )
        return over or None
    if isinstance(f, EscalatedEarly):
        in_class = tuple(a for a in current if a in kb.agents_in_class(f.agent_class))
        tried = set(current) | {a for h in state.treatment_history for a in h.names}
        untried = [s for s in f.earlier_steps if not tried.intersection(s.agents)]
        return in_class if in_class and untried else None
    if isinstance(f, AlternativesNotExcluded):
        return () if state.alternative_diagnoses_excluded is not True else None
    if isinstance(f, FailedAgentInUse):
        failed = {
            h.agent
            for h in state.treatment_history
            if h.agent is not None  # a combination entry does not say which drug failed
            and h.outcome in f.outcomes
            and h.agent not in f.exempt_agents
            and not (
                h.outcome == "inadequate_response" and h.agent in f.exempt_after_inadequate_response
            )
        }
        again = tuple(a for a in current if a in failed)
        return again or None
    return None  # pragma: no cover - the union is closed


def _in_period(dose: DoseIn, period: str) -> Decimal:
    """Return a current dose in mg per `period` ('day' or 'week'), exactly."""
    value = dec(dose.value)
    return to_mg_per_week(value, dose.unit) if period == "week" else to_mg_per_day(value, dose.unit)


def _above(dose: DoseIn | None, m: Maximum) -> bool:
    """Tell whether a current dose is above a stated maximum (same unit and period)."""
    if dose is None or m.period not in ("day", "week"):
        return False
    mg = _in_period(dose, m.period)
    limit = m.amount * (1000 if m.unit == "g" else 1)
    return mg > limit
