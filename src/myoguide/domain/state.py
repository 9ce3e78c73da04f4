"""The patient state of the contract: typed input, validated at the door."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    WithJsonSchema,
)

from myoguide.domain.units import DOSE_UNITS, to_cm, to_kg, to_mg_per_day
from myoguide.errors import InputError
from myoguide.knowledge.model import Knowledge

AGENT_NAMES: tuple[str, ...] = (
    "prednisone",
    "azathioprine",
    "methotrexate",
    "rituximab",
    "ivig",
    "mycophenolate_mofetil",
    "cyclosporine",
    "tacrolimus",
    "cyclophosphamide",
    "chlorambucil",
    "etanercept",
    "infliximab",
    "adalimumab",
)
AgentName = Literal[
    "prednisone",
    "azathioprine",
    "methotrexate",
    "rituximab",
    "ivig",
    "mycophenolate_mofetil",
    "cyclosporine",
    "tacrolimus",
    "cyclophosphamide",
    "chlorambucil",
    "etanercept",
    "infliximab",
    "adalimumab",
]
Outcome = Literal["inadequate_response", "intolerance", "responded", "unknown"]
Severity = Literal["mild", "moderate", "severe"]
DoseUnit = Literal["mg/day", "mg/week", "g/day", "g/week"]


def _to_decimal(value: object) -> object:
    # JSON numbers only: a string, bool or non-finite float is a wrong type, not a number.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return Decimal(repr(value))
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("must be a finite number")
    return Decimal(value)


Number = Annotated[
    Decimal, BeforeValidator(_to_decimal), WithJsonSchema({"type": "number"}, mode="validation")
]


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Weight(_In):
    """Body weight with its unit."""

    value: Number = Field(gt=0)
    unit: Literal["kg", "lb"]

    @property
    def kg(self) -> Decimal:
        """Return the weight in kilograms, exactly."""
        return to_kg(self.value, self.unit)


class Height(_In):
    """Body height with its unit."""

    value: Number = Field(gt=0)
    unit: Literal["cm", "in"]

    @property
    def cm(self) -> Decimal:
        """Return the height in centimetres, exactly."""
        return to_cm(self.value, self.unit)


class DoseIn(_In):
    """A current dose with its unit."""

    value: Number = Field(ge=0)
    unit: DoseUnit


class Medication(_In):
    """A drug the patient takes now, with its dose where known."""

    agent: AgentName
    dose: DoseIn | None = None


class HistoryEntry(_In):
    """A drug tried before and how the disease answered."""

    agent: AgentName
    outcome: Outcome


class Ild(_In):
    """Interstitial lung disease: present, and refractory to glucocorticoids plus AZA or MTX."""

    present: StrictBool
    refractory: StrictBool = False


class PatientState(_In):
    """The patient state of contract.md."""

    age_years: Number = Field(ge=0)
    diagnosis: str = Field(min_length=1, max_length=200)
    weight: Weight | None = None
    height: Height | None = None
    disease_control_achieved: StrictBool | None = None
    flare: StrictBool | None = None
    severity: Severity | None = None
    current_medications: tuple[Medication, ...] = ()
    treatment_history: tuple[HistoryEntry, ...] = ()
    ild: Ild | None = None
    skin_predominant: StrictBool | None = None
    alternative_diagnoses_excluded: StrictBool | None = None


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "lax-", "strict-")):
            out += f".{part}" if out else part
    return out or "(input)"


def _resolve_agents(raw: dict[str, Any], knowledge: Knowledge) -> dict[str, Any]:
    """Map RxNorm codes and loose spellings to agent names, refusing unknown agents by field."""
    out = dict(raw)
    for key in ("current_medications", "treatment_history"):
        items = raw.get(key)
        if not isinstance(items, list):
            continue
        resolved: list[Any] = []
        for i, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get("agent"), str):
                name = item["agent"].strip().lower()
                if name not in AGENT_NAMES:
                    by_code = knowledge.agent_for_rxnorm(name)
                    if by_code is None:
                        raise InputError(
                            f"{key}[{i}].agent",
                            f"unknown agent '{item['agent']}': use one of "
                            f"{', '.join(AGENT_NAMES)} or its RxNorm ingredient code",
                        )
                    name = by_code
                item = {**item, "agent": name}
            resolved.append(item)
        out[key] = resolved
    return out


def _check_plausible(state: PatientState, knowledge: Knowledge) -> None:
    """Refuse values outside plausible human ranges or with a unit that does not fit the drug."""
    lim = knowledge.input_limits
    if not lim.age_years.min <= state.age_years <= lim.age_years.max:
        raise InputError(
            "age_years",
            f"{state.age_years} is not a plausible age "
            f"({lim.age_years.min} to {lim.age_years.max} years)",
        )
    if state.weight is not None and not lim.weight_kg.min <= state.weight.kg <= lim.weight_kg.max:
        raise InputError(
            "weight.value",
            f"{state.weight.value} {state.weight.unit} is not a plausible human weight "
            f"({lim.weight_kg.min} to {lim.weight_kg.max} kg)",
        )
    if state.height is not None and not lim.height_cm.min <= state.height.cm <= lim.height_cm.max:
        raise InputError(
            "height.value",
            f"{state.height.value} {state.height.unit} is not a plausible human height "
            f"({lim.height_cm.min} to {lim.height_cm.max} cm)",
        )
    for i, med in enumerate(state.current_medications):
        if med.dose is None:
            continue
        unit = med.dose.unit
        if med.agent in ("prednisone", "azathioprine") and not unit.endswith("/day"):
            raise InputError(
                f"current_medications[{i}].dose.unit",
                f"{med.agent} is dosed per day; got '{unit}'",
            )
        if med.agent == "methotrexate" and not unit.endswith("/week"):
            raise InputError(
                f"current_medications[{i}].dose.unit",
                f"methotrexate is dosed per week; got '{unit}'",
            )
        if to_mg_per_day(med.dose.value, unit) > lim.dose_mg_per_day_max:
            raise InputError(
                f"current_medications[{i}].dose.value",
                f"{med.dose.value} {unit} is not a plausible dose",
            )
    seen: set[str] = set()
    for i, med in enumerate(state.current_medications):
        if med.agent in seen:
            raise InputError(
                f"current_medications[{i}].agent", f"'{med.agent}' is listed twice; give one total"
            )
        seen.add(med.agent)


def parse_state(raw: object, knowledge: Knowledge) -> PatientState:
    """Validate a JSON-like patient state; raise InputError naming the first bad field."""
    if isinstance(raw, PatientState):
        _check_plausible(raw, knowledge)
        return raw
    if not isinstance(raw, Mapping):
        raise InputError("(input)", "expected a JSON object with the patient state")
    data = _resolve_agents(dict(raw), knowledge)
    try:
        state = PatientState.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = _field_path(tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "literal_error" and field.endswith("unit"):
            msg = f"unknown unit {err.get('input')!r}; {msg[0].lower()}{msg[1:]}"
        raise InputError(field, msg) from None
    _check_plausible(state, knowledge)
    return state


__all__ = [
    "AGENT_NAMES",
    "DOSE_UNITS",
    "DoseIn",
    "HistoryEntry",
    "Ild",
    "Medication",
    "PatientState",
    "Weight",
    "parse_state",
]
