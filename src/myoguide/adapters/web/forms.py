"""The assessment form: HTML form fields to a contract patient state, and back for re-display.

Form field names are the state's own paths (`weight.value`, `current_medications[0].agent`), so
an InputError's field marks the very input that caused it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from myoguide.errors import InputError

MED_ROWS = 6
HISTORY_ROWS = 8
DIAGNOSES = ("dermatomyositis", "polymyositis", "inclusion_body_myositis")
DOSE_UNITS = ("mg/day", "mg/week", "g/day", "g/week")
OUTCOMES = ("unknown", "inadequate_response", "intolerance", "responded")
TRISTATE = {"yes": True, "no": False, "unknown": None}


@dataclass
class FormData:
    """The raw values of the form as strings, keyed by field name, with errors by field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    med_rows: list[int] = field(default_factory=list)  # state index -> form row
    history_rows: list[int] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        """Return the submitted value of a field, or a default."""
        return self.values.get(name, default)


def _number(form: FormData, name: str) -> float | None:
    text = form.get(name).strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(name, f"'{form.get(name)}' is not a number") from None
    if not math.isfinite(value):
        raise InputError(name, "must be a finite number")
    return value


def _tristate(form: FormData, name: str) -> bool | None:
    value = form.get(name, "unknown")
    if value not in TRISTATE:
        raise InputError(name, "choose yes, no or unknown")
    return TRISTATE[value]


def state_from_form(raw: Mapping[str, str]) -> tuple[dict[str, Any], FormData]:
    """Build the patient state from form fields; raise InputError naming the form field."""
    form = FormData(values={k: v for k, v in raw.items() if isinstance(v, str)})
    state: dict[str, Any] = {}
    age = _number(form, "age_years")
    if age is None:
        raise InputError("age_years", "required")
    state["age_years"] = age
    diagnosis = form.get("diagnosis").strip()
    if diagnosis == "other":
        diagnosis = form.get("diagnosis_other").strip() or "other"
    state["diagnosis"] = diagnosis
    for key, unit_key in (("weight", "weight.unit"), ("height", "height.unit")):
        value = _number(form, f"{key}.value")
        if value is not None:
            state[key] = {"value": value, "unit": form.get(unit_key)}
    for key in ("disease_control_achieved", "flare", "alternative_diagnoses_excluded"):
        value = _tristate(form, key)
        if value is not None or key == "alternative_diagnoses_excluded":
            state[key] = value
    if form.get("severity"):
        state["severity"] = form.get("severity")
    meds: list[dict[str, Any]] = []
    for row in range(MED_ROWS):
        agent = form.get(f"current_medications[{row}].agent")
        if not agent:
            continue
        med: dict[str, Any] = {"agent": agent}
        value = _number(form, f"current_medications[{row}].dose.value")
        if value is not None:
            med["dose"] = {
                "value": value,
                "unit": form.get(f"current_medications[{row}].dose.unit"),
            }
        form.med_rows.append(row)
        meds.append(med)
    state["current_medications"] = meds
    history: list[dict[str, Any]] = []
    for row in range(HISTORY_ROWS):
        agent = form.get(f"treatment_history[{row}].agent")
        if not agent:
            continue
        outcome = form.get(f"treatment_history[{row}].outcome", "unknown")
        form.history_rows.append(row)
        history.append({"agent": agent, "outcome": outcome})
    state["treatment_history"] = history
    if form.get("ild.present") == "on":
        state["ild"] = {"present": True, "refractory": form.get("ild.refractory") == "on"}
    if form.get("skin_predominant") == "on":
        state["skin_predominant"] = True
    return state, form


def form_field(error: InputError, form: FormData) -> str:
    """Return the form field name an InputError about the state points at."""
    name = error.field
    for key, rows in (
        ("current_medications", form.med_rows),
        ("treatment_history", form.history_rows),
    ):
        prefix = f"{key}["
        if name.startswith(prefix):
            index_text, _, rest = name[len(prefix) :].partition("]")
            if index_text.isdigit() and int(index_text) < len(rows):
                return f"{key}[{rows[int(index_text)]}]{rest}"
    return name


def form_from_state(state: Mapping[str, Any]) -> FormData:
    """Return form values that show a stored patient state (for a follow-up visit)."""
    v: dict[str, str] = {}

    def put(name: str, value: object) -> None:
        if value is not None:
            v[name] = _text(value)

    put("age_years", state.get("age_years"))
    diagnosis = str(state.get("diagnosis", ""))
    if diagnosis in DIAGNOSES or not diagnosis:
        put("diagnosis", diagnosis)
    else:
        put("diagnosis", "other")
        put("diagnosis_other", diagnosis)
    for key in ("weight", "height"):
        item = state.get(key)
        if isinstance(item, Mapping):
            put(f"{key}.value", item.get("value"))
            put(f"{key}.unit", item.get("unit"))
    for key in ("disease_control_achieved", "flare", "alternative_diagnoses_excluded"):
        value = state.get(key)
        v[key] = "yes" if value is True else "no" if value is False else "unknown"
    put("severity", state.get("severity"))
    for i, med in enumerate(list(state.get("current_medications") or [])[:MED_ROWS]):
        put(f"current_medications[{i}].agent", med.get("agent"))
        dose = med.get("dose")
        if isinstance(dose, Mapping):
            put(f"current_medications[{i}].dose.value", dose.get("value"))
            put(f"current_medications[{i}].dose.unit", dose.get("unit"))
    for i, item in enumerate(list(state.get("treatment_history") or [])[:HISTORY_ROWS]):
        put(f"treatment_history[{i}].agent", item.get("agent"))
        put(f"treatment_history[{i}].outcome", item.get("outcome"))
    ild = state.get("ild")
    if isinstance(ild, Mapping) and ild.get("present"):
        v["ild.present"] = "on"
        if ild.get("refractory"):
            v["ild.refractory"] = "on"
    if state.get("skin_predominant"):
        v["skin_predominant"] = "on"
    return FormData(values=v)


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
