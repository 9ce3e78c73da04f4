"""What the rules need to know about the patient, derived once from the state."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from msgspec import Struct, field

from myoguide.domain.state import PatientState, bmi_of, dec
from myoguide.domain.units import (
    fmt,
    hundredths,
    mosteller_bsa,
    round2,
    to_mg_per_day,
    to_mg_per_week,
)
from myoguide.knowledge.model import Knowledge

FAILED_OUTCOMES = frozenset({"inadequate_response", "intolerance"})
_TEN_THOUSANDTH = Decimal("0.0001")  # the precision a surface area is shown at in its working
_IN_MG = {"day": "mg/day", "week": "mg/week", None: "mg/day"}  # a dose period's own unit


# A msgspec Struct, not a dataclass: cheaper to define (command start) and to build.
class Facts(Struct):
    """What the rules need to know about the patient, derived once."""

    state: PatientState
    weight_kg: Decimal | None
    kg: Decimal | None  # rounded to 0.01 kg, the figure doses are computed from and shown with
    weight_words: str
    height_cm: Decimal | None
    kg_text: str
    height_text: str
    bsa_text: str
    bsa: Decimal | None
    bsa_words: str
    ild: bool
    # agent -> current dose in mg per the agent's dose period; None: no dose given
    current: dict[str, Decimal | None]
    # agents that failed alone (inadequate response or intolerance): never a new start
    failed: frozenset[str]
    inadequate: frozenset[str]
    intolerant: frozenset[str]
    # agents tried before without failing (responded or unknown): a new start is a restart
    tried: frozenset[str]
    # outcome of AZA with MTX recorded together, if any ("inadequate_response", "intolerance")
    combination_outcomes: frozenset[str] = frozenset()
    # notes for warnings: agent -> conflicting outcomes; entries whose outcome is unknown
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    combination_intolerance: list[str] = field(default_factory=list)
    bmi: float | None = None
    # agent -> the latest date its last dose or course was given, from the state (infusions)
    last_given: dict[str, str] = field(default_factory=dict)
    # The agents taken now (prednisone at 0 mg/day is not), read once from `current`.
    using: frozenset[str] = frozenset()
    kg_h: int | None = None  # `kg` in whole hundredths, for the doses' fast path

    def in_use(self, agent: str) -> bool:
        """Return whether the agent is taken now (prednisone at 0 mg/day is not)."""
        return agent in self.using

    def why_closed(self, agent: str) -> str:
        """Return, in a clinician's words, why a failed agent is not offered again."""
        parts = []
        if agent in self.inadequate:
            parts.append("responded inadequately before")
        if agent in self.intolerant:
            parts.append("not tolerated")
        return " and ".join(parts)

    def glucocorticoid_recorded(self) -> bool:
        """Return whether prednisone appears anywhere: in use, or in the history (any outcome)."""
        return "prednisone" in self.current or any(
            "prednisone" in h.names for h in self.state.treatment_history
        )


def current_amount(kb: Knowledge, agent: str, value: Decimal, unit: str) -> Decimal:
    """Return a current dose in mg per the agent's own dose period (week for MTX, else day)."""
    period = kb.agent(agent).dose_period
    if unit == _IN_MG.get(period):
        return value  # already in mg per the agent's own period: the figure as given
    if period == "week":
        return to_mg_per_week(value, unit)
    return to_mg_per_day(value, unit)


def derive(state: PatientState, kb: Knowledge) -> Facts:
    """Derive the facts the rules read from a validated state."""
    current: dict[str, Decimal | None] = {}
    for med in state.current_medications:
        if med.dose is None:
            current[med.agent] = None
        else:
            current[med.agent] = current_amount(kb, med.agent, dec(med.dose.value), med.dose.unit)
    weight = state.weight.kg if state.weight is not None else None
    kg = round2(weight) if weight is not None else None
    kg_text = fmt(kg) if kg is not None else ""
    weight_words = ""
    if kg is not None and state.weight is not None:
        weight_words = f"{kg_text} kg"
        if state.weight.unit == "lb":
            weight_words += f" ({fmt(dec(state.weight.value))} lb x 0.45359237)"
    bsa, bsa_words, bsa_text = None, "", ""
    cm = state.height.cm if state.height is not None else None
    height = round2(cm) if cm is not None else None
    height_text = fmt(height) if height is not None else ""
    if height is not None and cm is not None and weight is not None:
        # Doses multiply the exact surface area; it is rounded only where it is shown.
        bsa = mosteller_bsa(cm, weight)
        bsa_text = fmt(round2(bsa))
        shown = fmt(bsa.quantize(_TEN_THOUSANDTH, ROUND_HALF_UP))
        bsa_words = f"{shown} m2 (Mosteller sqrt({height_text} cm x {kg_text} kg / 3600))"
    latest: dict[str, str] = {}
    for m in state.current_medications:
        when = m.last_given
        if when is not None and (m.agent not in latest or when > latest[m.agent]):
            latest[m.agent] = when
    for h in state.treatment_history:
        when, agent = h.last_given, h.agent
        if when is not None and agent is not None and (agent not in latest or when > latest[agent]):
            latest[agent] = when
    # The agents taken now: all listed, but prednisone at 0 mg/day is not.
    using = frozenset(current)
    pred = current.get("prednisone")
    if pred is not None and pred <= 0:
        using = using - {"prednisone"}
    # Positional, in field order: built once, with the history folded beforehand.
    return Facts(
        state,
        weight,
        kg,
        weight_words,
        height,
        kg_text,
        height_text,
        bsa_text,
        bsa,
        bsa_words,
        state.ild is not None and state.ild.present,
        current,
        *_read_history(state, kb),
        bmi_of(weight, cm),
        latest,
        using,
        hundredths(kg) if kg is not None else None,
    )


# failed, inadequate, intolerant, tried, combination outcomes, conflicts, unknown, combination
# intolerance: as Facts holds them, in its field order.
History = tuple[
    frozenset[str],
    frozenset[str],
    frozenset[str],
    frozenset[str],
    frozenset[str],
    dict[str, list[str]],
    list[str],
    list[str],
]


def _read_history(state: PatientState, kb: Knowledge) -> History:
    """Fold the history into failed, intolerant and tried sets, noting conflicts and unknowns."""
    outcomes: dict[str, set[str]] = {}
    combination: set[str] = set()
    conflicts: dict[str, list[str]] = {}
    unknown: list[str] = []
    combination_intolerance: list[str] = []
    for h in state.treatment_history:
        if h.agents is not None:  # a combination
            pair = frozenset(kb.wiring.sparing_agents)
            names = " with ".join(kb.agent(a).display for a in h.names)
            if h.outcome == "unknown":
                unknown.append(names)
            if pair <= frozenset(h.names) and h.outcome in FAILED_OUTCOMES:
                combination.add(h.outcome)
            if h.outcome == "intolerance":
                combination_intolerance.append(names)
            continue
        assert h.agent is not None
        seen = outcomes.get(h.agent)
        if seen is None:
            outcomes[h.agent] = {h.outcome}
        else:
            seen.add(h.outcome)
    failed, inadequate, intolerant, tried = set(), set(), set(), set()
    for agent, seen in outcomes.items():
        if len(seen) == 1:  # one outcome, the common case: no conflict to look for
            (one,) = seen
            if one == "inadequate_response":
                failed.add(agent)
                inadequate.add(agent)
            elif one == "intolerance":
                failed.add(agent)
                intolerant.add(agent)
            else:
                tried.add(agent)
                if one == "unknown":
                    unknown.append(kb.agent(agent).display)
            continue
        # Only a response beside an inadequate response contradicts itself; not tolerated or
        # unknown beside either is a second fact, not a conflict.
        if "responded" in seen and "inadequate_response" in seen:
            conflicts[agent] = sorted(seen)
        if not seen.isdisjoint(FAILED_OUTCOMES):
            failed.add(agent)  # any failure wins over a conflicting success: never re-offered
        else:
            tried.add(agent)
        if "inadequate_response" in seen:
            inadequate.add(agent)
        if "intolerance" in seen:
            intolerant.add(agent)
    return (
        frozenset(failed),
        frozenset(inadequate),
        frozenset(intolerant),
        frozenset(tried),
        frozenset(combination),
        conflicts,
        unknown,
        combination_intolerance,
    )
