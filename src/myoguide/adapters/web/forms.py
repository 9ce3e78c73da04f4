"""The assessment form: HTML form fields to a contract patient state, and back for re-display.

Form field names are the state's own paths (`weight.value`, `current_medications[0].agent`), so
an InputError's field marks the very input that caused it. Rows are numbered by the form; only
filled rows become state entries, and `med_rows`/`history_rows` map state index to form row.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from myoguide.errors import InputError

# A bound on rows read from one post: the form adds rows one at a time.
MAX_ROWS = 40
# Rows shown empty at first: two drugs (a flare on prednisone and a sparing agent) need no "Add".
MIN_ROWS = 2
DIAGNOSES = ("dermatomyositis", "polymyositis", "inclusion_body_myositis")
DOSE_UNITS = ("mg/day", "mg/week", "g/day", "g/week")
# Infusion and course agents (the knowledge's `given_as_course`): a dose per infusion or course.
COURSE_UNITS = ("mg/dose", "g/dose", "mg/course", "g/course")
OUTCOMES = ("unknown", "inadequate_response", "intolerance", "responded")
TRISTATE = {"yes": True, "no": False, "unknown": None}
CONFIRM_FIELD = "confirm_body"
T = TypeVar("T")

_ROW = re.compile(
    r"^(current_medications|treatment_history|unresolved_medications)\[(\d+)\](?:\.|$)"
)
# The sign is kept so that the validator, not the form, says what is wrong with a negative value.
_MEASURE = re.compile(
    r"^\s*(?P<num>-?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+))\s*(?P<unit>[a-zA-Z]*)\s*$"
)
_UNITS = {
    "weight": {"": None, "kg": "kg", "kgs": "kg", "lb": "lb", "lbs": "lb", "pounds": "lb"},
    "height": {"": None, "cm": "cm", "in": "in", "inch": "in", "inches": "in"},
}
_DEFAULT_UNIT = {"weight": "kg", "height": "cm"}
_NUM = r"(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)"
# Feet and inches as clinicians write them: 5 ft 9 in, 5'9", 5' 9'', 5ft9, 5 feet 9 inches.
_FEET_INCHES = re.compile(
    rf"^\s*(?P<big>{_NUM})\s*(?:ft|feet|foot|'|’|′)\s*"
    rf"(?:(?P<small>{_NUM})\s*(?:in|inch|inches|\"|''|”|″|’’)?)?\s*$",
    re.IGNORECASE,
)
# Stones and pounds, as a UK patient gives a weight: 11 st 4 lb, 11st 4, 11 stone.
_STONES_POUNDS = re.compile(
    rf"^\s*(?P<big>{_NUM})\s*(?:st|stone|stones)\s*(?:(?P<small>{_NUM})\s*(?:lb|lbs)?)?\s*$",
    re.IGNORECASE,
)
# Two-part measures: the pattern, the smaller units in one larger, and the unit stored.
_COMPOUND = {"height": (_FEET_INCHES, 12, "in"), "weight": (_STONES_POUNDS, 14, "lb")}

FIELD_LABELS = {
    "age_years": "Age",
    "diagnosis": "Diagnosis",
    "diagnosis_other": "Diagnosis (if other)",
    "weight.value": "Weight",
    "weight.unit": "Weight",
    "height.value": "Height",
    "height.unit": "Height",
    "visit_date": "Visit date",
    "disease_control_achieved": "Ever brought under control",
    "flare": "Flare now",
    "severity": "Severity",
    "alternative_diagnoses_excluded": "Alternative diagnoses excluded",
    "ild.present": "Interstitial lung disease",
    "ild.refractory": "Interstitial lung disease",
    "skin_predominant": "Rash is the refractory problem",
    CONFIRM_FIELD: "Weight",
}
_ROW_LABELS = {
    "current_medications": ("Current medication", {"agent": "drug", "dose.value": "dose",
                                                   "dose.unit": "unit", "dose": "dose",
                                                   "last_given": "last infusion or course"}),
    "treatment_history": ("Earlier treatment", {"agent": "drug", "agents": "drug",
                                                "outcome": "outcome"}),
}  # fmt: skip


# Drugs a chart named that could not be identified (from a CDS card's hand-off, ADR 0014).
UNRESOLVED = "unresolved_medications"


@dataclass
class FormData:
    """The raw values of the form as strings, keyed by field name, with errors by field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    med_rows: list[int] = field(default_factory=list)  # state index -> form row
    history_rows: list[int] = field(default_factory=list)
    med_count: int = MIN_ROWS  # rows to show
    history_count: int = MIN_ROWS

    def get(self, name: str, default: str = "") -> str:
        """Return the submitted value of a field, or a default."""
        return self.values.get(name, default)

    def error(self, name: str, message: str) -> None:
        """Record a field's error; the first one found for a field is kept."""
        self.errors.setdefault(name, message)

    def unresolved(self) -> list[tuple[str, str]]:
        """Return the chart's unidentified drugs still ticked, as (field name, label)."""
        return [
            (f"{UNRESOLVED}[{row}]", self.values[f"{UNRESOLVED}[{row}]"])
            for row in _rows_in(self.values, UNRESOLVED)
        ]


def field_label(name: str) -> str:
    """Return the label a person reads for a form field (never a raw state path)."""
    if name in FIELD_LABELS:
        return FIELD_LABELS[name]
    match = re.match(r"^(current_medications|treatment_history)\[(\d+)\]\.?(.*)$", name)
    if match:
        key, row, rest = match.group(1), int(match.group(2)), match.group(3)
        title, parts = _ROW_LABELS[key]
        part = parts.get(rest) or parts.get(rest.split("[")[0]) or "entry"
        return f"{title} {row + 1}: {part}"
    return name.split(".")[0].replace("_", " ").capitalize()


def _rows_in(values: Mapping[str, str], key: str) -> list[int]:
    head = key + "["
    rows = set()
    for name in values:
        # The prefix test first: most fields are not this key's rows, and it is far cheaper.
        match = _ROW.match(name) if name.startswith(head) else None
        if match and match.group(1) == key and int(match.group(2)) < MAX_ROWS:
            rows.add(int(match.group(2)))
    return sorted(rows)


def _number(form: FormData, name: str) -> float | None:
    text = form.get(name).strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        form.error(name, f"'{form.get(name)}' is not a number")
        return None
    if not math.isfinite(value):
        form.error(name, "must be a finite number")
        return None
    return value


def _measure(form: FormData, key: str) -> dict[str, Any] | None:
    """Read "72", "72 kg" or "160 lb" (a unit typed after the number overrides the default)."""
    name = f"{key}.value"
    text = form.get(name)
    if not text.strip():
        return None
    pattern, per, stored = _COMPOUND[key]
    both = pattern.match(text)
    if both is not None:
        # Converted to the smaller unit, which the contract takes; nothing is rounded.
        big = float(both.group("big").replace(",", "."))
        small = float((both.group("small") or "0").replace(",", "."))
        if small >= per:
            part = {"in": "inches", "lb": "pounds"}[stored]
            form.error(name, f"'{text}': the {part} must be fewer than {per}")
            return None
        return {"value": big * per + small, "unit": stored}
    match = _MEASURE.match(text)
    units = _UNITS[key]
    if match is None or match.group("unit").lower() not in units:
        allowed = " or ".join(u for u in dict.fromkeys(units.values()) if u)
        also = {"height": ", or feet and inches (5 ft 9 in)", "weight": ", or st and lb"}[key]
        form.error(name, f"'{text}' is not a number with an optional unit ({allowed}{also})")
        return None
    unit = units[match.group("unit").lower()] or form.get(f"{key}.unit") or _DEFAULT_UNIT[key]
    return {"value": float(match.group("num").replace(",", ".")), "unit": unit}


def _tristate(form: FormData, name: str) -> bool | None:
    value = form.get(name, "unknown") or "unknown"
    if value not in TRISTATE:
        form.error(name, "choose yes, no or unknown")
        return None
    return TRISTATE[value]


def _dose_unit(form: FormData, base: str, agent: str, course_agents: frozenset[str]) -> str:
    """Return a row's dose unit: per infusion or course for course agents, else per period."""
    name = f"{base}.dose.unit"
    unit = form.get(name)
    if agent in course_agents:
        if unit not in COURSE_UNITS:
            # Never read as "per day": a course agent's dose is per infusion or per course.
            form.error(name, "given as infusions or courses: choose per infusion or per course")
        return unit
    if unit in COURSE_UNITS:
        form.error(name, "taken per day or per week, not per infusion or course")
    return unit or "mg/day"


def state_from_form(
    raw: Mapping[str, str], course_agents: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], FormData]:
    """Build the patient state from form fields; what cannot be read is left out, with an error."""
    form = FormData(values={k: v for k, v in raw.items() if isinstance(v, str)})
    state: dict[str, Any] = {}
    age = _number(form, "age_years")
    if age is None and "age_years" not in form.errors:
        form.error("age_years", "required")
    state["age_years"] = age
    diagnosis = form.get("diagnosis").strip()
    if not diagnosis:
        form.error("diagnosis", "choose the diagnosis")
    elif diagnosis == "other":
        diagnosis = form.get("diagnosis_other").strip()
        if not diagnosis:
            form.error("diagnosis_other", "name the diagnosis, or choose one from the list")
    state["diagnosis"] = diagnosis
    for key in ("weight", "height"):
        measure = _measure(form, key)
        if measure is not None:
            state[key] = measure
    if form.get("flare") == "yes":
        # A flare is activity again after control (the question says so): control follows.
        control = form.get("disease_control_achieved") or "unknown"
        if control == "unknown":
            form.values["disease_control_achieved"] = "yes"
        elif control == "no":
            form.error("disease_control_achieved", "a flare follows control: yes, with a flare")
    for key in ("disease_control_achieved", "flare", "alternative_diagnoses_excluded"):
        value = _tristate(form, key)
        if value is not None or key == "alternative_diagnoses_excluded":
            state[key] = value
    if form.get("severity"):
        state["severity"] = form.get("severity")
    meds: list[dict[str, Any]] = []
    med_rows = _rows_in(form.values, "current_medications")
    for row in med_rows:
        base = f"current_medications[{row}]"
        agent = form.get(f"{base}.agent")
        if not agent:
            if form.get(f"{base}.dose.value").strip():
                form.error(f"{base}.agent", "choose the drug this dose is for")
            continue
        med: dict[str, Any] = {"agent": agent}
        amount = _number(form, f"{base}.dose.value")
        if amount is not None:
            unit = _dose_unit(form, base, agent, course_agents)
            if f"{base}.dose.unit" not in form.errors:
                med["dose"] = {"value": amount, "unit": unit}
        if form.get(f"{base}.last_given").strip():
            med["last_given"] = form.get(f"{base}.last_given").strip()
        form.med_rows.append(row)
        meds.append(med)
    state["current_medications"] = meds
    history: list[dict[str, Any]] = []
    history_rows = _rows_in(form.values, "treatment_history")
    for row in history_rows:
        agent = form.get(f"treatment_history[{row}].agent")
        if not agent:
            continue
        outcome = form.get(f"treatment_history[{row}].outcome") or "unknown"
        form.history_rows.append(row)
        history.append({"agent": agent, "outcome": outcome})
    state["treatment_history"] = history
    if form.get("ild.present") == "on":
        state["ild"] = {"present": True, "refractory": form.get("ild.refractory") == "on"}
    if form.get("skin_predominant") == "on":
        state["skin_predominant"] = True
    unresolved = [label for _, label in form.unresolved()]
    if unresolved:
        # Kept until the clinician unticks them: the engine then assumes no drug it could not read.
        state[UNRESOLVED] = unresolved
    form.med_count = _shown_rows(med_rows, form.med_rows)
    form.history_count = _shown_rows(history_rows, form.history_rows)
    return state, form


def _shown_rows(posted: list[int], filled: list[int]) -> int:
    # The rows posted stay (with what was typed), and one empty row is kept for the next entry.
    return max([MIN_ROWS, *(r + 1 for r in posted), *(r + 2 for r in filled)])


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
                if rest in (".dose", ".agents") or rest.startswith(".agents["):
                    rest = ".dose.value" if rest == ".dose" else ".agent"
                return f"{key}[{rows[int(index_text)]}]{rest}"
    if name in ("weight", "weight.unit"):
        return "weight.value"
    if name in ("height", "height.unit"):
        return "height.value"
    if name.startswith("ild"):
        return "ild.present"
    return name


def collect_errors(
    parse: Callable[[object], T], state: dict[str, Any], form: FormData, age_stand_in: float
) -> T | None:
    """Record every field the validator refuses; return the state validated if none is.

    The validator stops at the first bad field; that field is then taken out of a copy of the
    state (or, if required, given `age_stand_in` or a placeholder) and the copy validated again,
    until it passes. The limits stay the validator's own: nothing here judges a value.
    """
    if state.get("age_years") is not None and state.get("diagnosis"):
        # The usual case, a state that passes as typed: validated once, and no copy made.
        try:
            return parse(state)
        except InputError:
            pass
    work = copy.deepcopy(state)
    med_rows, history_rows = list(form.med_rows), list(form.history_rows)
    if work.get("age_years") is None:
        work["age_years"] = age_stand_in
    if not work.get("diagnosis"):
        work["diagnosis"] = "dermatomyositis"
    for _ in range(4 * MAX_ROWS):
        try:
            parse(work)
            return None
        except InputError as exc:
            shown = FormData(med_rows=med_rows, history_rows=history_rows)
            form.error(form_field(exc, shown), exc.message)
            if not _take_out(work, exc.field, med_rows, history_rows, age_stand_in):
                return None
    return None


def _take_out(
    work: dict[str, Any],
    path: str,
    med_rows: list[int],
    history_rows: list[int],
    age_stand_in: float,
) -> bool:
    """Remove the refused field from the working state; False if that cannot be done."""
    head = re.match(r"^(current_medications|treatment_history)\[(\d+)\](.*)$", path)
    if head:
        key, index, rest = head.group(1), int(head.group(2)), head.group(3)
        items = work.get(key)
        if not isinstance(items, list) or index >= len(items):
            return False
        if key == "current_medications" and rest.startswith(".dose"):
            items[index].pop("dose", None)
        else:
            del items[index]
            (med_rows if key == "current_medications" else history_rows).pop(index)
        return True
    top = path.split(".")[0].split("[")[0]
    if top == "age_years":
        if work.get("age_years") == age_stand_in:
            return False
        work["age_years"] = age_stand_in
        return True
    if top == "diagnosis":
        if work.get("diagnosis") == "dermatomyositis":
            return False
        work["diagnosis"] = "dermatomyositis"
        return True
    if top in work and top not in ("current_medications", "treatment_history"):
        del work[top]
        return True
    return False


def blank_form() -> FormData:
    """Return the empty form: nothing chosen (the diagnosis too), one row of each list."""
    return FormData()


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
            unit = item.get("unit")
            suffix = f" {unit}" if unit and unit != _DEFAULT_UNIT[key] else ""
            put(f"{key}.value", f"{_text(item.get('value'))}{suffix}")
    for key in ("disease_control_achieved", "flare", "alternative_diagnoses_excluded"):
        value = state.get(key)
        v[key] = "yes" if value is True else "no" if value is False else "unknown"
    put("severity", state.get("severity"))
    meds = list(state.get("current_medications") or [])[:MAX_ROWS]
    for i, med in enumerate(meds):
        put(f"current_medications[{i}].agent", med.get("agent"))
        dose = med.get("dose")
        if isinstance(dose, Mapping):
            put(f"current_medications[{i}].dose.value", dose.get("value"))
            put(f"current_medications[{i}].dose.unit", dose.get("unit"))
        put(f"current_medications[{i}].last_given", med.get("last_given"))
    history = [h for h in list(state.get("treatment_history") or [])[:MAX_ROWS] if h.get("agent")]
    for i, item in enumerate(history):
        put(f"treatment_history[{i}].agent", item.get("agent"))
        put(f"treatment_history[{i}].outcome", item.get("outcome"))
    ild = state.get("ild")
    if isinstance(ild, Mapping) and ild.get("present"):
        v["ild.present"] = "on"
        if ild.get("refractory"):
            v["ild.refractory"] = "on"
    if state.get("skin_predominant"):
        v["skin_predominant"] = "on"
    for i, label in enumerate(state.get(UNRESOLVED) or []):
        v[f"{UNRESOLVED}[{i}]"] = _text(label)
    return FormData(
        values=v,
        med_count=max(MIN_ROWS, len(meds) + 1),
        history_count=max(MIN_ROWS, len(history) + 1),
    )


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
