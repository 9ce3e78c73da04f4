"""The patient state of the contract: typed input, validated at the door."""

# No `from __future__ import annotations`: with real annotations msgspec's first convert to
# PatientState need not evaluate strings, about 0.6 ms of the command's start (issue 24).
import math
import re
import weakref
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from myoguide.domain.units import COURSE_DOSE_UNITS, DOSE_UNITS, to_cm, to_kg
from myoguide.errors import InputError
from myoguide.knowledge.model import Knowledge

# Agent names are checked against the knowledge's vocabulary at the door (_resolve_agents).
AgentName = Annotated[str, Meta(min_length=1, max_length=100)]
Outcome = Literal["inadequate_response", "intolerance", "responded", "unknown"]
Severity = Literal["mild", "moderate", "severe"]
DoseUnit = Literal[
    "mg/day", "mg/week", "g/day", "g/week", "mg/dose", "g/dose", "mg/course", "g/course"
]
# An ISO calendar date (YYYY-MM-DD), kept as text: the core reads no clock and needs only to show
# it and compare two (ISO dates sort as text). Impossible days are refused in _check_dates.
IsoDate = Annotated[str, Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]


# JSON numbers (ints are accepted as floats); exact Decimals are made from them by `dec`.
Num = float
Positive = Annotated[float, Meta(gt=0)]
NonNegative = Annotated[float, Meta(ge=0)]


def dec(value: Num) -> Decimal:
    """Return a JSON number as an exact Decimal, by its shortest repr (72.5, not 72.4999...)."""
    return Decimal(repr(float(value)))


class Weight(Struct, frozen=True, forbid_unknown_fields=True):
    """Body weight with its unit."""

    value: Positive
    unit: Literal["kg", "lb"]

    @property
    def kg(self) -> Decimal:
        """Return the weight in kilograms, exactly."""
        return to_kg(dec(self.value), self.unit)


class Height(Struct, frozen=True, forbid_unknown_fields=True):
    """Body height with its unit."""

    value: Positive
    unit: Literal["cm", "in"]

    @property
    def cm(self) -> Decimal:
        """Return the height in centimetres, exactly."""
        return to_cm(dec(self.value), self.unit)


class DoseIn(Struct, frozen=True, forbid_unknown_fields=True):
    """A current dose with its unit."""

    value: NonNegative
    unit: DoseUnit


class Medication(Struct, frozen=True, forbid_unknown_fields=True):
    """A drug the patient takes now, with its dose where known."""

    agent: AgentName
    dose: DoseIn | None = None
    # For an infusion or course agent: when the last dose or course was given (ISO date).
    last_given: IsoDate | None = None


class HistoryEntry(Struct, frozen=True, forbid_unknown_fields=True):
    """A drug (or a combination, in the `agents` form) tried before and how the disease answered."""

    outcome: Outcome
    agent: AgentName | None = None
    agents: tuple[AgentName, ...] | None = None
    last_given: IsoDate | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Return the agents of this entry: one, or the members of a combination."""
        if self.agents is not None:
            return self.agents
        return (self.agent,) if self.agent is not None else ()

    @property
    def is_combination(self) -> bool:
        """Return whether the entry records agents tried together."""
        return self.agents is not None


class Ild(Struct, frozen=True, forbid_unknown_fields=True):
    """Interstitial lung disease: present, and refractory to glucocorticoids plus AZA or MTX."""

    present: bool
    refractory: bool = False


class PatientState(Struct, frozen=True, forbid_unknown_fields=True):
    """The patient state of contract.md."""

    age_years: NonNegative
    diagnosis: Annotated[str, Meta(min_length=1, max_length=200)]
    weight: Weight | None = None
    height: Height | None = None
    disease_control_achieved: bool | None = None
    flare: bool | None = None
    severity: Severity | None = None
    current_medications: tuple[Medication, ...] = ()
    treatment_history: tuple[HistoryEntry, ...] = ()
    ild: Ild | None = None
    skin_predominant: bool | None = None
    alternative_diagnoses_excluded: bool | None = None
    # Drugs the record holds that may be guideline agents but could not be identified (or read):
    # a short label each. The engine then does not pick a scenario that assumes them absent.
    unresolved_medications: tuple[Annotated[str, Meta(max_length=200)], ...] = ()
    # Set by the FHIR door when the record states a death; the engine then answers out of scope.
    deceased: bool | None = None

    @property
    def age(self) -> Decimal:
        """Return the age in years as a Decimal."""
        return dec(self.age_years)


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`")
_ALLOWED = {
    "weight.unit": "kg or lb",
    "height.unit": "cm or in",
    "severity": "mild, moderate or severe",
    "outcome": "inadequate_response, intolerance, responded or unknown",
    "unit": ", ".join(DOSE_UNITS + COURSE_DOSE_UNITS),
}


_WORDS = (
    ("Expected `float` > 0.0", "must be a number greater than 0"),
    ("Expected `float` >= 0.0", "must be a number, 0 or more"),
    ("Expected `float | null`", "expected a number or null"),
    ("Expected `float`", "expected a number"),
    ("Expected `bool | null`", "expected true, false or null"),
    ("Expected `bool`", "expected true or false"),
    ("Invalid enum value", "unknown value"),
)


def _explain(exc: msgspec.ValidationError) -> InputError:
    """Turn a msgspec validation error into an InputError naming the field."""
    m = _AT.match(str(exc))
    msg, path = (m.group("msg"), m.group("path") or "") if m else (str(exc), "")
    path = path.lstrip(".")
    named = _MISSING.match(msg)
    if named:
        path = f"{path}.{named.group('name')}" if path else named.group("name")
        msg = "required field is missing" if "missing" in msg else "unknown field"
    for theirs, ours in _WORDS:
        msg = msg.replace(theirs, ours)
    if msg.startswith("unknown value"):
        key = path if path in _ALLOWED else path.rsplit(".", 1)[-1]
        if key in _ALLOWED:
            msg += f"; expected {_ALLOWED[key]}"
    return InputError(path or "(input)", msg)


def _resolve_name(value: object, where: str, knowledge: Knowledge) -> str:
    """Return the agent id of a name or RxNorm code, refusing an unknown agent by field."""
    if not isinstance(value, str):
        raise InputError(where, f"expected an agent name, got {type(value).__name__}")
    name = value.strip().lower()
    ids = knowledge.agent_ids
    if name in ids:
        return name
    by_code = knowledge.agent_for_rxnorm(name)
    other = knowledge.input_limits.unconverted_glucocorticoids.get(name)
    if by_code is None and other is not None:
        # Refused with advice: a milligram of another glucocorticoid is not a milligram of
        # prednisone, and no equivalence is verified here to convert it with.
        raise InputError(
            where,
            f"{other} is not converted here: the guideline's doses are prednisone doses and no"
            f" verified {other.lower()}-to-prednisone equivalence is held. Convert the daily dose"
            " to its prednisone equivalent with your own reference (a milligram of another"
            " glucocorticoid is not always a milligram of prednisone) and enter that as prednisone",
        )
    if by_code is None:
        raise InputError(
            where,
            f"unknown agent '{value}': use one of {', '.join(ids)} or its RxNorm ingredient code",
        )
    return by_code


def _resolve_agents(raw: dict[str, Any], knowledge: Knowledge) -> dict[str, Any]:
    """Map RxNorm codes and loose spellings to agent names, refusing unknown agents by field."""
    known = knowledge.agent_id_set
    out = raw
    for key in ("current_medications", "treatment_history"):
        items = raw.get(key)
        if not isinstance(items, list):
            continue
        if _canonical(items, known):
            continue  # already canonical: nothing to copy
        if out is raw:
            out = dict(raw)
        resolved: list[Any] = []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                item = dict(item)
                if "agent" in item and item["agent"] is not None:
                    item["agent"] = _resolve_name(item["agent"], f"{key}[{i}].agent", knowledge)
                members = item.get("agents")
                if key == "treatment_history" and isinstance(members, list):
                    item["agents"] = [
                        _resolve_name(m, f"{key}[{i}].agents[{j}]", knowledge)
                        for j, m in enumerate(members)
                    ]
            resolved.append(item)
        out[key] = resolved
    return out


def _canonical(items: list[Any], known: frozenset[str]) -> bool:
    """Return whether every entry names one known agent by its id (nothing to resolve)."""
    for it in items:
        if not isinstance(it, dict) or "agents" in it:
            return False
        agent = it.get("agent")
        if not isinstance(agent, str) or agent not in known:
            return False
    return True


def _check_history(state: PatientState) -> None:
    """Refuse history entries that name no agent, or both forms, or a one-drug combination."""
    for i, h in enumerate(state.treatment_history):
        if (h.agent is None) == (h.agents is None):
            raise InputError(
                f"treatment_history[{i}].agent",
                "give either 'agent' or 'agents' (a combination), not both",
            )
        if h.agents is not None and len(set(h.agents)) < 2:
            raise InputError(
                f"treatment_history[{i}].agents",
                "a combination names at least two different agents",
            )


_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _check_dates(state: PatientState) -> None:
    """Refuse a `last_given` that names a day its month does not have (30 February)."""
    # Most entries carry no date: the field is named only where one is.
    for i, m in enumerate(state.current_medications):
        if m.last_given is not None:
            _check_date(f"current_medications[{i}].last_given", m.last_given)
    for i, h in enumerate(state.treatment_history):
        if h.last_given is not None:
            _check_date(f"treatment_history[{i}].last_given", h.last_given)


def _check_date(where: str, when: str) -> None:
    """Refuse an ISO date whose day its month does not have."""
    year, month, day = (int(x) for x in when.split("-"))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > _DAYS[month - 1] or (month == 2 and day == 29 and not leap):
        raise InputError(where, f"'{when}' is not a calendar date")


class _Limits(Struct, frozen=True):
    """The input limits as validation reads them, built once per Knowledge (see `_limits`)."""

    # The floats nearest each plausible range's ends: age, weight (kg), height (cm), BMI.
    age: tuple[float, float]
    kg: tuple[float, float]
    cm: tuple[float, float]
    bmi: tuple[float, float]
    dose_ceiling: float  # mg/day, the sanity ceiling of every current dose
    # Per agent: its dose period, whether it is given as a course, and the mg above which a
    # current dose is refused (None: no agent limit).
    agents: dict[str, tuple[str | None, bool, float | None]]


_LIMITS: dict[int, _Limits] = {}


def _limits(k: Knowledge) -> _Limits:
    """Return the knowledge's input limits read for validation, built on first use."""
    # Built once per Knowledge object and dropped with it, as the knowledge's own indexes.
    hit = _LIMITS.get(id(k))
    if hit is None:
        lim = k.input_limits
        doses = lim.doses
        hit = _Limits(
            (float(lim.age_years.min), float(lim.age_years.max)),
            (float(lim.weight_kg.min), float(lim.weight_kg.max)),
            (float(lim.height_cm.min), float(lim.height_cm.max)),
            (float(lim.bmi.min), float(lim.bmi.max)),
            float(lim.dose_mg_per_day_max),
            {
                a.id: (
                    a.dose_period,
                    a.given_as_course,
                    float(doses[a.id].refuse_above) if a.id in doses else None,
                )
                for a in k.agents
            },
        )
        _LIMITS[id(k)] = hit
        weakref.finalize(k, _LIMITS.pop, id(k), None)
    return hit


def _inside(value: float, ends: tuple[float, float]) -> bool:
    """Return whether a JSON number lies strictly inside the floats nearest a range's ends."""
    # Rounding to a float is monotone, so a value strictly inside the ends' floats has an exact
    # decimal (`dec`) inside the range itself: the Decimal check runs only near an end.
    return ends[0] < value < ends[1]


def _check_plausible(state: PatientState, knowledge: Knowledge) -> None:
    """Refuse values no human body or prescription can have, or a unit that misfits the drug."""
    lim = knowledge.input_limits
    t = _limits(knowledge)
    if not _inside(state.age_years, t.age) and (
        not math.isfinite(state.age_years)
        or not lim.age_years.min <= state.age <= lim.age_years.max
    ):
        raise InputError(
            "age_years",
            f"{state.age_years} is not a plausible age "
            f"({lim.age_years.min} to {lim.age_years.max} years)",
        )
    _finite(state)
    weight, height = state.weight, state.height
    # In kg or cm the exact figure is the number itself: its float is the number as given.
    kg = cm = None
    if weight is not None and not (weight.unit == "kg" and _inside(weight.value, t.kg)):
        kg = weight.kg
        if not lim.weight_kg.min <= kg <= lim.weight_kg.max:
            raise InputError(
                "weight.value",
                f"{weight.value} {weight.unit} is not a plausible human weight "
                f"({lim.weight_kg.min} to {lim.weight_kg.max} kg)",
            )
    if height is not None and not (height.unit == "cm" and _inside(height.value, t.cm)):
        cm = height.cm
        if not lim.height_cm.min <= cm <= lim.height_cm.max:
            raise InputError(
                "height.value",
                f"{height.value} {height.unit} is not a plausible human height "
                f"({lim.height_cm.min} to {lim.height_cm.max} cm)",
            )
    if weight is not None and height is not None:
        # float(dec(v)) is v: the same floats bmi_of would read from the exact figures.
        kg_f = weight.value if kg is None else float(kg)
        metres = (height.value if cm is None else float(cm)) / 100
        bmi_value = kg_f / (metres * metres)
        if not t.bmi[0] <= bmi_value <= t.bmi[1]:
            raise InputError(
                "weight.value",
                f"weight and height give a body mass index of {bmi_value:.0f}, which no adult "
                f"has ({lim.bmi.min} to {lim.bmi.max}); check weight, height and their units",
            )
    _check_doses(state, knowledge, t)
    seen: set[str] = set()
    for i, med in enumerate(state.current_medications):
        if med.agent in seen:
            raise InputError(
                f"current_medications[{i}].agent", f"'{med.agent}' is listed twice; give one total"
            )
        seen.add(med.agent)


def _check_doses(state: PatientState, knowledge: Knowledge, t: _Limits) -> None:
    """Refuse a current dose whose unit misfits its period, or that no prescription carries."""
    for i, med in enumerate(state.current_medications):
        if med.dose is None:
            continue
        unit = med.dose.unit
        period, course, refuse_above = t.agents[med.agent]
        per_course = unit.endswith(("/dose", "/course"))
        if per_course and not course:
            raise InputError(
                f"current_medications[{i}].dose.unit",
                f"{med.agent} is not given as infusions or courses; got '{unit}'",
            )
        if period == "day" and not unit.endswith("/day"):
            raise InputError(
                f"current_medications[{i}].dose.unit",
                f"{med.agent} is dosed per day; got '{unit}'",
            )
        if period == "week" and not unit.endswith("/week"):
            raise InputError(
                f"current_medications[{i}].dose.unit",
                f"{med.agent} is dosed per week; got '{unit}'",
            )
        # A sanity ceiling, not clinical arithmetic: a float comparison is enough here.
        mg = med.dose.value * (1000 if unit[0] == "g" else 1)
        per_day = mg / (7 if unit.endswith("k") else 1)
        if per_day > t.dose_ceiling:
            raise InputError(
                f"current_medications[{i}].dose.value",
                f"{med.dose.value} {unit} is not a plausible dose",
            )
        if refuse_above is not None and mg > refuse_above:
            limit = knowledge.input_limits.doses[med.agent]
            raise InputError(
                f"current_medications[{i}].dose.value",
                f"{med.dose.value} {unit} of {med.agent} is not a dose any prescription carries "
                f"(above {limit.refuse_above} mg/{period or 'day'}); check the entry and its unit",
            )


def bmi_of(kg: Decimal | None, cm: Decimal | None) -> float | None:
    """Return the body mass index (kg/m2) of a weight and a height, if both are known."""
    # A plausibility check, not dose arithmetic: a float is exact enough and cheap.
    if kg is None or cm is None:
        return None
    metres = float(cm) / 100
    return float(kg) / (metres * metres)


def _finite(state: PatientState) -> None:
    """Refuse NaN and infinity, which JSON cannot carry but Python callers can pass."""
    if state.weight is not None and not math.isfinite(state.weight.value):
        raise InputError("weight.value", "must be a finite number")
    if state.height is not None and not math.isfinite(state.height.value):
        raise InputError("height.value", "must be a finite number")
    for i, med in enumerate(state.current_medications):
        if med.dose is not None and not math.isfinite(med.dose.value):
            raise InputError(f"current_medications[{i}].dose.value", "must be a finite number")


def parse_state(raw: object, knowledge: Knowledge) -> PatientState:
    """Validate a JSON-like patient state; raise InputError naming the first bad field."""
    if type(raw) is dict:  # the common case, without the Mapping check's cost
        return _parse_dict(raw, knowledge)
    if isinstance(raw, PatientState):
        known = knowledge.agent_id_set
        for i, med in enumerate(raw.current_medications):
            if med.agent not in known:
                raise InputError(f"current_medications[{i}].agent", f"unknown agent '{med.agent}'")
        for i, h in enumerate(raw.treatment_history):
            for name in h.names:
                if name not in known:
                    raise InputError(f"treatment_history[{i}].agent", f"unknown agent '{name}'")
        _check_history(raw)
        _check_dates(raw)
        _check_plausible(raw, knowledge)
        return raw
    if not isinstance(raw, Mapping):
        raise InputError("(input)", "expected a JSON object with the patient state")
    return _parse_dict(dict(raw), knowledge)


def _parse_dict(raw: dict[str, Any], knowledge: Knowledge) -> PatientState:
    """Validate a patient state given as a dict; raise InputError naming the first bad field."""
    data = _resolve_agents(raw, knowledge)
    try:
        state = msgspec.convert(data, PatientState)
    except msgspec.ValidationError as exc:
        raise _explain(exc) from None
    _check_history(state)
    _check_dates(state)
    _check_plausible(state, knowledge)
    return state


__all__ = [
    "DOSE_UNITS",
    "DoseIn",
    "HistoryEntry",
    "Ild",
    "Medication",
    "PatientState",
    "Weight",
    "parse_state",
]
