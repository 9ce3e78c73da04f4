"""Read a Bundle's resources in one pass, then derive the state the whole Bundle supports.

The Patient gives the age and Observations weight and height; Conditions are left to
ConditionReader and medication resources to MedicationReader.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from myoguide.adapters.fhir.codes import (
    HEIGHT_UNITS,
    LOINC,
    MEDICATION_RESOURCE_TYPES,
    OBSERVATION_USABLE,
    WEIGHT_STALE_DAYS,
    WEIGHT_UNITS,
)
from myoguide.adapters.fhir.conditions import ConditionReader
from myoguide.adapters.fhir.medications import MedicationReader
from myoguide.adapters.fhir.primitives import (
    DECIMAL_CONTEXT,
    SortKey,
    Warn,
    birth_span,
    effective_time,
    entry_at,
    resource_label,
    sort_key,
    to_date,
    to_decimal,
    to_number,
    ucum_code,
)
from myoguide.knowledge.terminology import Terminology


class LatestObservation(NamedTuple):
    """The latest weight or height Observation so far and its valueQuantity."""

    key: SortKey
    quantity: dict[str, Any]
    resource: dict[str, Any]


def body_kind(res: dict[str, Any], body: Mapping[str, str]) -> str | None:
    """Return "weight" or "height" for an Observation with such a LOINC code, else None."""
    # Most entries of a chart are labs and pass through here, so fields are read without
    # checks: a missing or odd field raises and means "not a body measure".
    try:
        codings = res["code"]["coding"]
    except (TypeError, KeyError, IndexError):
        return None
    if not isinstance(codings, list):
        return None
    for coding in codings:
        try:
            if coding["system"] == LOINC and (kind := body.get(coding["code"])):
                return kind
        except (TypeError, KeyError, IndexError):
            continue  # not an object, no system or code, or a code that cannot be hashed
    return None


class BundleReader:
    """The state of one mapping run: one pass over the entries, then the finishing rules."""

    __slots__ = (
        "conditions",
        "medication_index",
        "medications",
        "observations",
        "patient",
        "rx",
        "term",
        "today",
        "warn",
    )

    def __init__(
        self, today: datetime.date, rx: Mapping[str, str], term: Terminology, warn: Warn
    ) -> None:
        self.today = today
        self.rx = rx
        self.term = term
        self.warn = warn
        self.patient: dict[str, Any] | None = None
        self.conditions = ConditionReader(term, warn)
        # Medication resources and allergies with their entry positions, read once the whole
        # Bundle is known (a plain pair: a big chart holds a thousand of them).
        self.medications: list[tuple[dict[str, Any], int]] = []
        self.medication_index: dict[str, dict[str, Any]] = {}
        self.observations: dict[str, list[LatestObservation]] = {}

    def read(self, entries: list[Any]) -> None:
        """Walk the entries once, keeping what the finishing rules need."""
        body = self.term.body_codes
        medications = self.medications
        for i, entry in enumerate(entries):
            # The common shape (an object entry holding an object resource) is read without
            # checks; anything else raises here and takes the checked path, which warns.
            try:
                res = entry["resource"]
                rt = res["resourceType"]
            except (TypeError, KeyError, IndexError):
                self.read_checked(entry, i)
                continue
            if type(res) is not dict:
                self.read_checked(entry, i)
            elif rt == "Observation":
                # Most entries of a chart are labs: the body_kind test is written out here, as
                # one call per lab is a good part of reading a big chart.
                try:
                    codings = res["code"]["coding"]
                except (TypeError, KeyError, IndexError):
                    continue
                # Operators rather than calls (isinstance, get) where a lab passes: each call
                # costs a little, a thousand times in a big chart.
                if type(codings) is not list and not isinstance(codings, list):
                    continue
                for coding in codings:
                    try:
                        # The code first: a lab's code is rarely a body measure's.
                        code = coding["code"]
                        if code not in body:
                            continue
                        kind = body[code]
                        if not kind or coding["system"] != LOINC:
                            continue
                    except (TypeError, KeyError, IndexError):
                        continue  # not an object, no system or code, or an unhashable code
                    self.observation(res, i, kind)
                    break
            elif rt in MEDICATION_RESOURCE_TYPES or rt == "AllergyIntolerance":
                medications.append((res, i))
            else:
                self.dispatch(res, rt, entry, i)

    def read_checked(self, entry: object, i: int) -> None:
        """Read one entry of an unusual shape, warning about what cannot be used."""
        if not isinstance(entry, dict):
            self.warn(
                "entry_invalid", "one item of the record is not readable; skipped", entry_at(i)
            )
            return
        res = entry.get("resource")
        if not isinstance(res, dict):
            self.warn(
                "entry_without_resource", "one item of the record is empty; skipped", entry_at(i)
            )
            return
        rt = res.get("resourceType")
        if rt == "Observation":
            kind = body_kind(res, self.term.body_codes)
            if kind is not None:
                self.observation(res, i, kind)
        else:
            self.dispatch(res, rt, entry, i)

    def dispatch(self, res: dict[str, Any], rt: object, entry: dict[str, Any], i: int) -> None:
        """Hand a resource other than an Observation to the reader of its type."""
        if rt in MEDICATION_RESOURCE_TYPES or rt == "AllergyIntolerance":
            self.medications.append((res, i))
        elif rt == "Condition":
            self.conditions.read(res, i)
        elif rt == "Medication":
            self.index_medication(res, entry.get("fullUrl"))
        elif rt == "Patient":
            if self.patient is None:
                self.patient = res
            else:
                self.warn(
                    "multiple_patients",
                    "the record holds more than one patient; the first was used",
                    "Patient",
                )
        elif not isinstance(rt, str):
            self.warn(
                "resource_type_missing",
                "one item of the record does not say what it is; skipped",
                entry_at(i),
            )

    def index_medication(self, res: dict[str, Any], full_url: object) -> None:
        """Make a Medication findable by 'Medication/id' and by its entry's fullUrl."""
        rid = res.get("id")
        if isinstance(rid, str):
            self.medication_index[f"Medication/{rid}"] = res
        if isinstance(full_url, str):
            self.medication_index[full_url] = res

    def observation(self, res: dict[str, Any], i: int, kind: str) -> None:
        """Keep a weight or height Observation that is a final (or amended, corrected) result."""
        status = res.get("status")
        if not isinstance(status, str) or status not in OBSERVATION_USABLE:
            return  # preliminary, registered, cancelled, entered in error: not a measurement
        quantity = res.get("valueQuantity")
        if not isinstance(quantity, dict):
            self.warn(
                "observation_no_value",
                f"a {kind} result states no measured value; not used",
                resource_label(res, i),
            )
            return
        key = sort_key(effective_time(res), i)
        self.observations.setdefault(kind, []).append(LatestObservation(key, quantity, res))

    def finish(self) -> dict[str, Any]:
        """Apply the rules that need the whole Bundle and return the patient state."""
        state: dict[str, Any] = {}
        self.finish_patient(state)
        self.conditions.finish_diagnosis(state)
        self.finish_observation(state, "weight", WEIGHT_UNITS, "kilograms, grams, pounds or ounces")
        self.finish_observation(
            state, "height", HEIGHT_UNITS, "centimetres, metres, inches or feet"
        )
        medications = MedicationReader(
            self.rx, self.term, self.medication_index, self.warn, self.today
        )
        for res, i in self.medications:
            medications.read(res, i)
        medications.finish()
        state["current_medications"] = list(medications.current.values())
        if medications.history:
            state["treatment_history"] = medications.history
        if medications.unresolved:
            state["unresolved_medications"] = list(dict.fromkeys(medications.unresolved))
        if self.conditions.ild:
            self.conditions.finish_ild(state)
        return state

    def finish_patient(self, state: dict[str, Any]) -> None:
        """Set age_years from the Patient's birthDate."""
        if self.patient is None:
            self.warn("patient_missing", "the record holds no patient details; age not known", None)
            return
        death = self.death(state)
        birth = self.patient.get("birthDate")
        if birth is None:
            self.warn(
                "birth_date_missing",
                "the patient's date of birth is not recorded; age not known",
                "Patient",
            )
            return
        span = birth_span(birth)
        if span is None:
            self.warn(
                "birth_date_invalid",
                "the patient's date of birth is not a valid date; age not known",
                "Patient",
            )
            return
        earliest, latest = span
        today = self.today
        if death is not None and death < today:
            today = death  # the age reached, not the age the patient would have now
        if earliest > today:
            self.warn(
                "birth_date_future",
                "the patient's date of birth is after the evaluation date; age not known",
                "Patient",
            )
            return
        if earliest != latest:
            # The youngest possible age, so a possible minor is never taken for an adult.
            latest = min(latest, today)
            self.warn(
                "birth_date_partial",
                "the patient's date of birth is incomplete; the youngest possible age was used",
                "Patient",
            )
        state["age_years"] = (
            today.year - latest.year - ((today.month, today.day) < (latest.month, latest.day))
        )

    def death(self, state: dict[str, Any]) -> datetime.date | None:
        """Set deceased from the Patient and return the day of death when it is stated."""
        # As the batch door reads it: a date to the year or month counts from its first day; an
        # unreadable date leaves the flag to decide.
        assert self.patient is not None
        flag = self.patient.get("deceasedBoolean")
        when = self.patient.get("deceasedDateTime")
        span = birth_span(when) if isinstance(when, str) else None
        if span is not None:
            if span.earliest <= self.today:
                state["deceased"] = True
                return span.earliest if span.earliest == span.latest else None
            return None
        if flag is True:
            state["deceased"] = True
        return None

    def finish_observation(
        self,
        state: dict[str, Any],
        kind: str,
        units: Mapping[str, tuple[Decimal, str]],
        expected: str,
    ) -> None:
        """Set weight or height from the latest usable Observation of that kind."""
        found = sorted(self.observations.get(kind, ()), key=lambda o: o.key, reverse=True)
        skipped: tuple[str, str] | None = None
        for key, quantity, res in found:
            label = resource_label(res, key.position)
            measure = self.measure(quantity, units)
            if isinstance(measure, str):
                skipped = skipped or (measure, label)
                continue
            if skipped is not None:
                self.warn(
                    skipped[0],
                    f"the newest {kind} result has no usable value or unit ({expected}); the "
                    "latest usable one was used",
                    skipped[1],
                )
            if not key.dated:
                self.warn("observation_undated", f"the {kind} used has no date", label)
            elif kind == "weight":
                taken = to_date(effective_time(res))
                if taken is not None and (self.today - taken).days > WEIGHT_STALE_DAYS:
                    self.warn(
                        "weight_old",
                        f"the latest weight was measured on {taken.isoformat()}, more than 12 "
                        "months before the evaluation date; it was used for weight-based doses",
                        label,
                    )
            state[kind] = measure
            return
        if skipped is not None:
            self.warn(
                skipped[0],
                f"no {kind} result has a usable value and unit ({expected}); {kind} not known",
                skipped[1],
            )

    def measure(
        self, quantity: dict[str, Any], units: Mapping[str, tuple[Decimal, str]]
    ) -> dict[str, Any] | str:
        """Return a quantity in the state's units, or the warning code saying why it is unusable."""
        value = to_decimal(quantity.get("value"))
        if value is None or value <= 0:
            return "observation_value_invalid"
        unit = ucum_code(quantity)
        factor = units.get(unit) if unit is not None else None
        if factor is None and unit is not None:
            spelled = self.term.ucum(unit)
            factor = units.get(spelled) if spelled is not None else None
        if factor is None:
            return "observation_unit_unknown"
        number = to_number(DECIMAL_CONTEXT.multiply(value, factor[0]))
        if number is None:
            return "observation_value_invalid"
        return {"value": number, "unit": factor[1]}
