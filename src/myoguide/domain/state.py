"""The patient state of the contract: typed input, validated at the door."""

# No `from __future__ import annotations`: with real annotations msgspec's first convert to
# PatientState need not evaluate strings, about 0.6 ms of the command's start (issue 24).
import math
import re
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
        where = f"treatment_history[{i}]"
        if (h.agent is None) == (h.agents is None):
            raise InputError(
                f"{where}.agent", "give either 'agent' or 'agents' (a combination), not both"
            )
        if h.agents is not None and len(set(h.agents)) < 2:
            raise InputError(f"{where}.agents", "a combination names at least two different agents")


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


def _check_plausible(state: PatientState, knowledge: Knowledge) -> None:
    """Refuse values no human body or prescription can have, or a unit that misfits the drug."""
    lim = knowledge.input_limits
    if (
        not math.isfinite(state.age_years)
        or not lim.age_years.min <= state.age <= lim.age_years.max
    ):
        raise InputError(
            "age_years",
            f"{state.age_years} is not a plausible age "
            f"({lim.age_years.min} to {lim.age_years.max} years)",
        )
    _finite(state)
    kg = state.weight.kg if state.weight is not None else None
    cm = state.height.cm if state.height is not None else None
    if (
        state.weight is not None
        and kg is not None
        and not lim.weight_kg.min <= kg <= lim.weight_kg.max
    ):
        raise InputError(
            "weight.value",
            f"{state.weight.value} {state.weight.unit} is not a plausible human weight "
            f"({lim.weight_kg.min} to {lim.weight_kg.max} kg)",
        )
    if (
        state.height is not None
        and cm is not None
        and not lim.height_cm.min <= cm <= lim.height_cm.max
    ):
        raise InputError(
            "height.value",
            f"{state.height.value} {state.height.unit} is not a plausible human height "
            f"({lim.height_cm.min} to {lim.height_cm.max} cm)",
        )
    bmi_value = bmi_of(kg, cm)
    if bmi_value is not None and not float(lim.bmi.min) <= bmi_value <= float(lim.bmi.max):
        raise InputError(
            "weight.value",
            f"weight and height give a body mass index of {bmi_value:.0f}, which no adult has "
            f"({lim.bmi.min} to {lim.bmi.max}); check weight, height and their units",
        )
    _check_doses(state, knowledge)
    seen: set[str] = set()
    for i, med in enumerate(state.current_medications):
        if med.agent in seen:
            raise InputError(
                f"current_medications[{i}].agent", f"'{med.agent}' is listed twice; give one total"
            )
        seen.add(med.agent)


def _check_doses(state: PatientState, knowledge: Knowledge) -> None:
    """Refuse a current dose whose unit misfits its period, or that no prescription carries."""
    lim = knowledge.input_limits
    ceiling = float(lim.dose_mg_per_day_max)
    for i, med in enumerate(state.current_medications):
        if med.dose is None:
            continue
        unit = med.dose.unit
        info = knowledge.agent(med.agent)
        period = info.dose_period
        per_course = unit.endswith(("/dose", "/course"))
        if per_course and not info.given_as_course:
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
        if per_day > ceiling:
            raise InputError(
                f"current_medications[{i}].dose.value",
                f"{med.dose.value} {unit} is not a plausible dose",
            )
        limit = lim.doses.get(med.agent)
        if limit is not None and mg > float(limit.refuse_above):
            per = period or "day"
            raise InputError(
                f"current_medications[{i}].dose.value",
                f"{med.dose.value} {unit} of {med.agent} is not a dose any prescription carries "
                f"(above {limit.refuse_above} mg/{per}); check the entry and its unit",
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
