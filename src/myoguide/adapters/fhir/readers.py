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
    EXT_ALTERNATIVES_EXCLUDED,
    HEIGHT_UNITS,
    LOINC,
    MEDICATION_RESOURCE_TYPES,
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
    to_decimal,
    to_number,
    ucum_code,
)
from myoguide.knowledge.terminology import Terminology


class Located(NamedTuple):
    """A resource and its position among the Bundle's entries."""

    resource: dict[str, Any]
    position: int


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
        self.medications: list[Located] = []
        self.medication_index: dict[str, dict[str, Any]] = {}
        self.observations: dict[str, LatestObservation] = {}

    def read(self, entries: list[Any]) -> None:
        """Walk the entries once, keeping what the finishing rules need."""
        body = self.term.body_codes
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
                kind = body_kind(res, body)
                if kind is not None:
                    self.observation(res, i, kind)
            else:
                self.dispatch(res, rt, entry, i)

    def read_checked(self, entry: object, i: int) -> None:
        """Read one entry of an unusual shape, warning about what cannot be used."""
        if not isinstance(entry, dict):
            self.warn("entry_invalid", "a Bundle entry is not an object; skipped", entry_at(i))
            return
        res = entry.get("resource")
        if not isinstance(res, dict):
            self.warn(
                "entry_without_resource", "a Bundle entry has no resource; skipped", entry_at(i)
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
            self.medications.append(Located(res, i))
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
                    "the Bundle holds more than one Patient; the first was used",
                    "Patient",
                )
        elif not isinstance(rt, str):
            self.warn(
                "resource_type_missing", "a resource has no resourceType; skipped", entry_at(i)
            )

    def index_medication(self, res: dict[str, Any], full_url: object) -> None:
        """Make a Medication findable by 'Medication/id' and by its entry's fullUrl."""
        rid = res.get("id")
        if isinstance(rid, str):
            self.medication_index[f"Medication/{rid}"] = res
        if isinstance(full_url, str):
            self.medication_index[full_url] = res

    def observation(self, res: dict[str, Any], i: int, kind: str) -> None:
        """Keep the latest Observation of a kind (weight or height)."""
        status = res.get("status")
        if status == "entered-in-error" or status == "cancelled":
            return
        quantity = res.get("valueQuantity")
        if not isinstance(quantity, dict):
            self.warn(
                "observation_no_value",
                f"the {kind} Observation has no valueQuantity",
                resource_label(res, i),
            )
            return
        key = sort_key(effective_time(res), i)
        best = self.observations.get(kind)
        if best is None or key >= best.key:
            self.observations[kind] = LatestObservation(key, quantity, res)

    def finish(self) -> dict[str, Any]:
        """Apply the rules that need the whole Bundle and return the patient state."""
        state: dict[str, Any] = {}
        self.finish_patient(state)
        self.conditions.finish_diagnosis(state)
        self.finish_observation(state, "weight", WEIGHT_UNITS, "kg, g or [lb_av]")
        self.finish_observation(state, "height", HEIGHT_UNITS, "cm, m or [in_i]")
        medications = MedicationReader(self.rx, self.term, self.medication_index, self.warn)
        for located in self.medications:
            medications.read(located.resource, located.position)
        state["current_medications"] = list(medications.current.values())
        if medications.history:
            state["treatment_history"] = medications.history
        if medications.unresolved:
            state["unresolved_medications"] = list(dict.fromkeys(medications.unresolved))
        if self.conditions.ild:
            self.conditions.finish_ild(state)
        if "alternative_diagnoses_excluded" not in state:
            self.warn(
                "alternative_diagnoses_unknown",
                "whether other diagnoses were excluded is not stated (extension "
                f"{EXT_ALTERNATIVES_EXCLUDED}); alternative_diagnoses_excluded left out",
                None,
            )
        return state

    def finish_patient(self, state: dict[str, Any]) -> None:
        """Set age_years from the Patient's birthDate."""
        if self.patient is None:
            self.warn("patient_missing", "the Bundle has no Patient; age_years left out", None)
            return
        birth = self.patient.get("birthDate")
        if birth is None:
            self.warn(
                "birth_date_missing", "the Patient has no birthDate; age_years left out", "Patient"
            )
            return
        span = birth_span(birth)
        if span is None:
            self.warn(
                "birth_date_invalid",
                "the Patient's birthDate is not a date; age_years left out",
                "Patient",
            )
            return
        earliest, latest = span
        today = self.today
        if earliest > today:
            self.warn(
                "birth_date_future",
                "the Patient's birthDate is after the evaluation date; age_years left out",
                "Patient",
            )
            return
        if earliest != latest:
            # The youngest possible age, so a possible minor is never taken for an adult.
            latest = min(latest, today)
            self.warn(
                "birth_date_partial",
                "the Patient's birthDate gives no full date; the youngest possible age was used",
                "Patient",
            )
        state["age_years"] = (
            today.year - latest.year - ((today.month, today.day) < (latest.month, latest.day))
        )

    def finish_observation(
        self,
        state: dict[str, Any],
        kind: str,
        units: Mapping[str, tuple[Decimal, str]],
        expected: str,
    ) -> None:
        """Set weight or height from the latest Observation of that kind."""
        chosen = self.observations.get(kind)
        if chosen is None:
            return
        key, quantity, res = chosen
        label = resource_label(res, key.position)
        if not key.dated:
            self.warn(
                "observation_undated",
                f"the {kind} Observation used has no effective or issued time",
                label,
            )
        value = to_decimal(quantity.get("value"))
        if value is None or value <= 0:
            self.warn(
                "observation_value_invalid",
                f"the latest {kind} is not a positive number; {kind} left out",
                label,
            )
            return
        unit = ucum_code(quantity)
        factor = units.get(unit) if unit is not None else None
        if factor is None and unit is not None:
            spelled = self.term.ucum(unit)
            factor = units.get(spelled) if spelled is not None else None
        if factor is None:
            self.warn(
                "observation_unit_unknown",
                f"the latest {kind} has a unit other than {expected}; {kind} left out",
                label,
            )
            return
        number = to_number(DECIMAL_CONTEXT.multiply(value, factor[0]))
        if number is None:
            self.warn(
                "observation_value_invalid",
                f"the latest {kind} is not a usable number; {kind} left out",
                label,
            )
            return
        state[kind] = {"value": number, "unit": factor[1]}
