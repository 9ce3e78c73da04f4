"""Map a FHIR R4 Bundle to the contract's patient state, collecting data problems as warnings.

The mapping is written down in docs/fhir-mapping.md. It is pure (no I/O, no clock) and tolerant:
any JSON shape gives a MappingResult, never an exception. Warning messages never echo free text
from the Bundle (names, identifiers or notes could hide there); only codes made of digits are shown.
"""

from __future__ import annotations

import calendar
import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
MEDREQ_STATUS_REASON = "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason"

# Facts standard FHIR cannot carry, stated explicitly by a record through these extensions
# (valueBoolean). An absent extension leaves the fact unknown, exactly as before.
_EXTENSION_BASE = "https://myoguide.example/fhir/StructureDefinition/"
EXT_ILD_REFRACTORY = _EXTENSION_BASE + "ild-refractory"
EXT_ALTERNATIVES_EXCLUDED = _EXTENSION_BASE + "alternative-diagnoses-excluded"
EXT_CONTROL_ACHIEVED = _EXTENSION_BASE + "disease-control-achieved"
_STATED_EXTENSIONS = frozenset(
    {EXT_ILD_REFRACTORY, EXT_ALTERNATIVES_EXCLUDED, EXT_CONTROL_ACHIEVED}
)

DIAGNOSES: Mapping[str, str] = {
    "396230008": "dermatomyositis",
    "31384009": "polymyositis",
    "72315009": "inclusion_body_myositis",
}
ILD_CODE = "233703007"
SEVERITIES: Mapping[str, str] = {
    "255604002": "mild",
    "6736007": "moderate",
    "24484000": "severe",
}
WEIGHT_LOINC = "29463-7"
HEIGHT_LOINC = "8302-2"

# Text matching for why a drug was stopped: no SNOMED CT code for "stopped, ineffective" could be
# verified, so lack of effect is recognised by words only; the two HL7 status-reason codes below
# (Allergy, Suspected intolerance) were checked against terminology.hl7.org.
INADEQUATE_WORDS: tuple[str, ...] = (
    "ineffective",
    "inadequate",
    "no response",
    "not effective",
    "failed",
    "lack of efficacy",
    "non-response",
    "nonresponse",
    "not respond",
)
INTOLERANCE_WORDS: tuple[str, ...] = (
    "intoleran",
    "adverse",
    "side effect",
    "side-effect",
    "allerg",
)
INTOLERANCE_CODES: frozenset[str] = frozenset({"salg", "sintol"})

# The state validator wants methotrexate per week and prednisone and azathioprine per day; any
# other agent keeps the period its timing is written in (weekly timing gives a weekly dose).
_WEEKLY_AGENTS = frozenset({"methotrexate"})
_DAILY_AGENTS = frozenset({"prednisone", "azathioprine"})

# (multiplier, divisor) turning "per period of this unit" into per day / per week.
_PER_DAY: Mapping[str, tuple[int, int]] = {"h": (24, 1), "d": (1, 1), "wk": (1, 7)}
_PER_WEEK: Mapping[str, tuple[int, int]] = {"h": (168, 1), "d": (7, 1), "wk": (1, 1)}

_WEIGHT_UNITS: Mapping[str, tuple[Decimal, str]] = {
    "kg": (Decimal(1), "kg"),
    "g": (Decimal("0.001"), "kg"),
    "[lb_av]": (Decimal(1), "lb"),
    "lb": (Decimal(1), "lb"),
    "lbs": (Decimal(1), "lb"),
}
_HEIGHT_UNITS: Mapping[str, tuple[Decimal, str]] = {
    "cm": (Decimal(1), "cm"),
    "m": (Decimal(100), "cm"),
    "[in_i]": (Decimal(1), "in"),
    "in": (Decimal(1), "in"),
}

_MEDREQ_ROLE: Mapping[str, str] = {
    "active": "current",
    "on-hold": "current",
    "completed": "history",
    "stopped": "history",
    "cancelled": "ignore",
    "entered-in-error": "ignore",
}
_MEDSTATEMENT_ROLE: Mapping[str, str] = {
    "active": "current",
    "completed": "history",
    "stopped": "history",
    "entered-in-error": "ignore",
    "not-taken": "ignore",
    "intended": "ignore",
}

_BIRTH_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})(?:T[0-9:.+\-Z]*)?)?)?")
_PARTIAL_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2}))?")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_DIGITS = re.compile(r"[0-9]{1,18}")

# A private context so no caller's decimal settings can change a dose.
_CTX = Context(prec=28, rounding=ROUND_HALF_EVEN)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# FHIR times carry a zone; one without is read as UTC rather than dropped.
_NAIVE_EPOCH = datetime.datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class FhirWarning:
    """A data-quality problem met while mapping, and the resource it concerns."""

    code: str
    message: str
    resource: str | None


@dataclass(frozen=True, slots=True)
class MappingResult:
    """The patient state derived from a Bundle, with the problems met on the way."""

    state: dict[str, Any]
    warnings: tuple[FhirWarning, ...]


def bundle_to_state(
    bundle: Mapping[str, Any],
    *,
    evaluation_date: datetime.date,
    rxnorm_to_agent: Mapping[str, str],
) -> MappingResult:
    """Map a parsed FHIR R4 Bundle to a contract patient state, with warnings for data problems."""
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        return MappingResult(
            {"current_medications": []},
            (
                FhirWarning(
                    "not_a_bundle",
                    "the input is not a FHIR Bundle (resourceType 'Bundle'); nothing was mapped",
                    None,
                ),
            ),
        )
    if isinstance(evaluation_date, datetime.datetime):
        # A datetime is a date subclass but cannot be compared with a plain date.
        evaluation_date = evaluation_date.date()
    mapper = _Mapper(evaluation_date, rxnorm_to_agent)
    entries = bundle.get("entry")
    if isinstance(entries, list):
        mapper.read(entries)
    elif entries is None:
        mapper.warn("bundle_empty", "the Bundle has no entries", "Bundle")
    else:
        mapper.warn(
            "bundle_entries_invalid", "Bundle.entry is not a list; nothing was read", "Bundle"
        )
    return MappingResult(mapper.finish(), tuple(mapper.warnings))


class _Mapper:
    """The state of one mapping run: one pass over the entries, then the finishing rules."""

    __slots__ = (
        "current",
        "diagnoses",
        "history",
        "ild",
        "ild_stated",
        "medication_index",
        "medications",
        "observations",
        "patient",
        "rx",
        "today",
        "warnings",
    )

    def __init__(self, today: datetime.date, rx: Mapping[str, str]) -> None:
        self.today = today
        self.rx = rx
        self.warnings: list[FhirWarning] = []
        self.patient: dict[str, Any] | None = None
        self.diagnoses: list[tuple[tuple[bool, float, int], str, dict[str, Any], int]] = []
        self.ild = False
        self.ild_stated: set[bool] = set()
        self.medications: list[tuple[dict[str, Any], int]] = []
        self.medication_index: dict[str, dict[str, Any]] = {}
        self.observations: dict[
            str, tuple[tuple[bool, float, int], dict[str, Any], dict[str, Any]]
        ] = {}
        self.current: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, str]] = []

    def warn(self, code: str, message: str, resource: str | None) -> None:
        """Record one warning."""
        self.warnings.append(FhirWarning(code, message, resource))

    def read(self, entries: list[Any]) -> None:
        """Walk the entries once, keeping what the finishing rules need."""
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.warn("entry_invalid", "a Bundle entry is not an object; skipped", _at(i))
                continue
            res = entry.get("resource")
            if not isinstance(res, dict):
                self.warn(
                    "entry_without_resource", "a Bundle entry has no resource; skipped", _at(i)
                )
                continue
            rt = res.get("resourceType")
            if rt == "Observation":
                self.observation(res, i)
            elif rt == "MedicationRequest" or rt == "MedicationStatement":
                self.medications.append((res, i))
            elif rt == "Condition":
                self.condition(res, i)
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
                    "resource_type_missing", "a resource has no resourceType; skipped", _at(i)
                )

    def index_medication(self, res: dict[str, Any], full_url: object) -> None:
        """Make a Medication findable by 'Medication/id' and by its entry's fullUrl."""
        rid = res.get("id")
        if isinstance(rid, str):
            self.medication_index[f"Medication/{rid}"] = res
        if isinstance(full_url, str):
            self.medication_index[full_url] = res

    def condition(self, res: dict[str, Any], i: int) -> None:
        """Note a myositis diagnosis or interstitial lung disease from a Condition."""
        verification = _status_code(res.get("verificationStatus"), CONDITION_VERIFICATION)
        if verification == "refuted" or verification == "entered-in-error":
            return
        diagnosis: str | None = None
        ild = False
        for code in _codes(res.get("code"), SNOMED):
            if code == ILD_CODE:
                ild = True
            elif diagnosis is None:
                diagnosis = DIAGNOSES.get(code)
        if ild:
            self.ild = True
            stated = _stated(res)
            if EXT_ILD_REFRACTORY in stated:
                refractory = stated[EXT_ILD_REFRACTORY]
                if refractory is None:
                    self.warn_extension_invalid(
                        EXT_ILD_REFRACTORY, "ild.refractory", _label(res, i)
                    )
                else:
                    self.ild_stated.add(refractory)
        if diagnosis is not None:
            key = _sort_key(res.get("recordedDate"), i)
            self.diagnoses.append((key, diagnosis, res, i))

    def observation(self, res: dict[str, Any], i: int) -> None:
        """Keep the latest body weight and body height Observation."""
        kind: str | None = None
        for code in _codes(res.get("code"), LOINC):
            if code == WEIGHT_LOINC:
                kind = "weight"
                break
            if code == HEIGHT_LOINC:
                kind = "height"
                break
        if kind is None:
            return
        status = res.get("status")
        if status == "entered-in-error" or status == "cancelled":
            return
        quantity = res.get("valueQuantity")
        if not isinstance(quantity, dict):
            self.warn(
                "observation_no_value",
                f"the {kind} Observation has no valueQuantity",
                _label(res, i),
            )
            return
        key = _sort_key(_effective(res), i)
        best = self.observations.get(kind)
        if best is None or key >= best[0]:
            self.observations[kind] = (key, quantity, res)

    def finish(self) -> dict[str, Any]:
        """Apply the rules that need the whole Bundle and return the patient state."""
        state: dict[str, Any] = {}
        self.finish_patient(state)
        self.finish_diagnosis(state)
        self.finish_observation(state, "weight", _WEIGHT_UNITS, "kg, g or [lb_av]")
        self.finish_observation(state, "height", _HEIGHT_UNITS, "cm, m or [in_i]")
        for res, i in self.medications:
            self.medication(res, i)
        state["current_medications"] = list(self.current.values())
        if self.history:
            state["treatment_history"] = self.history
        if self.ild:
            self.finish_ild(state)
        if "alternative_diagnoses_excluded" not in state:
            self.warn(
                "alternative_diagnoses_unknown",
                "whether other diagnoses were excluded is not stated (extension "
                f"{EXT_ALTERNATIVES_EXCLUDED}); alternative_diagnoses_excluded left out",
                None,
            )
        return state

    def finish_ild(self, state: dict[str, Any]) -> None:
        """Set ild, refractory only when the ILD Conditions state it and agree."""
        if len(self.ild_stated) == 1:
            state["ild"] = {"present": True, "refractory": next(iter(self.ild_stated))}
            return
        state["ild"] = {"present": True, "refractory": False}
        if self.ild_stated:
            self.warn(
                "ild_refractory_conflict",
                f"interstitial lung disease Conditions disagree in {EXT_ILD_REFRACTORY}",
                None,
            )
        self.warn(
            "ild_refractory_unknown",
            "whether the interstitial lung disease is refractory is not stated (extension "
            f"{EXT_ILD_REFRACTORY}); ild.refractory set to false",
            None,
        )

    def warn_extension_invalid(self, url: str, field: str, label: str) -> None:
        """Warn that a stating extension carries no single boolean."""
        self.warn(
            "extension_invalid",
            f"the extension {url} does not carry one valueBoolean; {field} left as unknown",
            label,
        )

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
        span = _birth_span(birth)
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

    def finish_diagnosis(self, state: dict[str, Any]) -> None:
        """Set diagnosis, flare, disease control and severity from the chosen myositis Condition."""
        if not self.diagnoses:
            self.warn(
                "diagnosis_missing",
                "no dermatomyositis, polymyositis or inclusion body myositis Condition (SNOMED CT) "
                "was found; diagnosis left out",
                None,
            )
            self.warn_control_unknown(None)
            return
        key, diagnosis, res, _ = max(self.diagnoses, key=lambda d: d[0])
        label = _label(res, key[2])
        if len({d[1] for d in self.diagnoses}) > 1:
            self.warn(
                "multiple_diagnoses",
                "more than one myositis diagnosis; the most recently recorded "
                f"({diagnosis}) was used",
                label,
            )
        state["diagnosis"] = diagnosis
        verification = _status_code(res.get("verificationStatus"), CONDITION_VERIFICATION)
        if verification in ("unconfirmed", "provisional", "differential"):
            self.warn(
                "diagnosis_unconfirmed",
                f"the myositis diagnosis is {verification}, not confirmed",
                label,
            )
        stated = _stated(res)
        if EXT_ALTERNATIVES_EXCLUDED in stated:
            excluded = stated[EXT_ALTERNATIVES_EXCLUDED]
            if excluded is None:
                self.warn_extension_invalid(
                    EXT_ALTERNATIVES_EXCLUDED, "alternative_diagnoses_excluded", label
                )
            else:
                state["alternative_diagnoses_excluded"] = excluded
        control = stated.get(EXT_CONTROL_ACHIEVED)
        if EXT_CONTROL_ACHIEVED in stated and control is None:
            self.warn_extension_invalid(EXT_CONTROL_ACHIEVED, "disease_control_achieved", label)
        clinical = _status_code(res.get("clinicalStatus"), CONDITION_CLINICAL)
        if clinical in ("relapse", "recurrence", "remission", "resolved"):
            # The clinical status settles both facts; the extension may only confirm them.
            state["disease_control_achieved"] = True
            state["flare"] = clinical == "relapse" or clinical == "recurrence"
            if control is False:
                self.warn(
                    "control_conflict",
                    f"{EXT_CONTROL_ACHIEVED} says control was never reached but the clinical "
                    f"status is {clinical}; the clinical status was used",
                    label,
                )
        elif control is True:
            state["disease_control_achieved"] = True
            if clinical == "active":
                state["flare"] = True  # active again after control
            else:
                self.warn_flare_unknown(label)
        elif control is False:
            # Never under control, so not active again after control.
            state["disease_control_achieved"] = False
            state["flare"] = False
        else:
            self.warn_control_unknown(label)
        severity = res.get("severity")
        if severity is not None:
            found = [SEVERITIES[c] for c in _codes(severity, SNOMED) if c in SEVERITIES]
            if found:
                state["severity"] = found[0]
            else:
                self.warn(
                    "severity_unknown",
                    "the Condition's severity is not SNOMED CT mild, moderate or severe; left out",
                    label,
                )

    def warn_control_unknown(self, label: str | None) -> None:
        """Warn that neither disease control nor flare could be derived."""
        self.warn(
            "control_unknown",
            "whether the disease was ever under control cannot be told without a relapse, "
            "recurrence, remission or resolved clinical status or the extension "
            f"{EXT_CONTROL_ACHIEVED}; disease_control_achieved left out",
            label,
        )
        self.warn_flare_unknown(label)

    def warn_flare_unknown(self, label: str | None) -> None:
        """Warn that whether the disease is flaring could not be derived."""
        self.warn(
            "flare_unknown",
            "whether the disease is flaring cannot be told without a relapse, recurrence, "
            "remission or resolved clinical status, or an active one with control stated as "
            "reached; flare left out",
            label,
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
        label = _label(res, key[2])
        if not key[0]:
            self.warn(
                "observation_undated",
                f"the {kind} Observation used has no effective or issued time",
                label,
            )
        value = _decimal(quantity.get("value"))
        if value is None or value <= 0:
            self.warn(
                "observation_value_invalid",
                f"the latest {kind} is not a positive number; {kind} left out",
                label,
            )
            return
        unit = _ucum(quantity)
        factor = units.get(unit) if unit is not None else None
        if factor is None and unit is not None:
            factor = units.get(unit.strip().lower())
        if factor is None:
            self.warn(
                "observation_unit_unknown",
                f"the latest {kind} has a unit other than {expected}; {kind} left out",
                label,
            )
            return
        number = _number(_CTX.multiply(value, factor[0]))
        if number is None:
            self.warn(
                "observation_value_invalid",
                f"the latest {kind} is not a usable number; {kind} left out",
                label,
            )
            return
        state[kind] = {"value": number, "unit": factor[1]}

    def medication(self, res: dict[str, Any], i: int) -> None:
        """Turn a MedicationRequest or MedicationStatement into a current drug or history."""
        status = res.get("status")
        if res.get("resourceType") == "MedicationRequest":
            if res.get("doNotPerform") is True:
                return
            role = _MEDREQ_ROLE.get(status) if isinstance(status, str) else None
            dosages = res.get("dosageInstruction")
        else:
            role = _MEDSTATEMENT_ROLE.get(status) if isinstance(status, str) else None
            dosages = res.get("dosage")
        if role is None:
            self.warn(
                "medication_status_unclear",
                "the medication's status is missing or says neither current nor past; skipped",
                _label(res, i),
            )
            return
        if role == "ignore":
            return
        resolved = self.agent(res, i)
        if resolved is None:
            return
        agent, medication = resolved
        if role == "current":
            self.add_current(agent, dosages, medication, res, i)
        else:
            self.add_history(agent, res, i)

    def agent(self, res: dict[str, Any], i: int) -> tuple[str, dict[str, Any] | None] | None:
        """Return the agent a medication resource names, and its Medication resource if any."""
        medication: dict[str, Any] | None = None
        concept = res.get("medicationCodeableConcept")
        if not isinstance(concept, dict):
            ref = res.get("medicationReference")
            target = ref.get("reference") if isinstance(ref, dict) else None
            if not isinstance(target, str):
                self.warn(
                    "medication_missing",
                    "no medicationCodeableConcept or medicationReference; skipped",
                    _label(res, i),
                )
                return None
            medication = self.resolve(target, res)
            if medication is None:
                self.warn(
                    "medication_reference_unresolved",
                    "medicationReference does not point to a Medication in the Bundle; skipped",
                    _label(res, i),
                )
                return None
            concept = medication.get("code")
        codes = _codes(concept, RXNORM)
        agents = {self.rx[c] for c in codes if c in self.rx}
        if not agents and medication is not None:
            ingredients = medication.get("ingredient")
            if isinstance(ingredients, list):
                for ingredient in ingredients:
                    if isinstance(ingredient, dict):
                        found = _codes(ingredient.get("itemCodeableConcept"), RXNORM)
                        codes.extend(found)
                        agents.update(self.rx[c] for c in found if c in self.rx)
        if len(agents) == 1:
            return agents.pop(), medication
        if agents:
            self.warn(
                "medication_ambiguous",
                f"the medication codes name more than one agent ({', '.join(sorted(agents))}); "
                "skipped",
                _label(res, i),
            )
        elif codes:
            shown = ", ".join(c for c in codes if _DIGITS.fullmatch(c)) or "(not shown)"
            self.warn(
                "medication_code_unknown",
                f"RxNorm code(s) {shown} are not agents of this guideline; skipped",
                _label(res, i),
            )
        else:
            self.warn(
                "medication_not_coded", "the medication has no RxNorm code; skipped", _label(res, i)
            )
        return None

    def resolve(self, target: str, res: dict[str, Any]) -> dict[str, Any] | None:
        """Find the Medication a reference points to: contained, by fullUrl or by type and id."""
        if target.startswith("#"):
            contained = res.get("contained")
            if isinstance(contained, list):
                for item in contained:
                    if (
                        isinstance(item, dict)
                        and item.get("resourceType") == "Medication"
                        and item.get("id") == target[1:]
                    ):
                        return item
            return None
        found = self.medication_index.get(target)
        if found is None and "Medication/" in target:
            tail = target.rsplit("Medication/", 1)[1].split("/", 1)[0]
            found = self.medication_index.get(f"Medication/{tail}")
        return found

    def add_current(
        self,
        agent: str,
        dosages: object,
        medication: dict[str, Any] | None,
        res: dict[str, Any],
        i: int,
    ) -> None:
        """Add a current medication, with its dose when one can be worked out."""
        existing = self.current.get(agent)
        if existing is not None:
            existing.pop("dose", None)
            self.warn(
                "medication_duplicate",
                f"{agent} is current in more than one resource; listed once without a dose",
                _label(res, i),
            )
            return
        dose, code, message = _dose(dosages, agent, medication)
        if dose is None:
            self.warn(code, f"{message}; {agent} listed without a dose", _label(res, i))
            self.current[agent] = {"agent": agent}
        else:
            self.current[agent] = {"agent": agent, "dose": dose}

    def add_history(self, agent: str, res: dict[str, Any], i: int) -> None:
        """Add a treatment history entry with the outcome its stopping reason gives."""
        outcome, problem = _outcome(res)
        if problem:
            self.warn(
                "history_outcome_unknown",
                f"{problem}; {agent} outcome set to unknown",
                _label(res, i),
            )
        entry = {"agent": agent, "outcome": outcome}
        if entry not in self.history:
            self.history.append(entry)


def _birth_span(birth: object) -> tuple[datetime.date, datetime.date] | None:
    """Return the earliest and latest day a FHIR birthDate (YYYY, YYYY-MM or full) can mean."""
    m = _BIRTH_DATE.fullmatch(birth) if isinstance(birth, str) else None
    if m is None:
        return None
    try:
        year = int(m[1])
        if m[3] is not None:
            day = datetime.date(year, int(m[2]), int(m[3]))
            return day, day
        if m[2] is not None:
            month = int(m[2])
            last = calendar.monthrange(year, month)[1]
            return datetime.date(year, month, 1), datetime.date(year, month, last)
        return datetime.date(year, 1, 1), datetime.date(year, 12, 31)
    except ValueError:
        return None


def _at(i: int) -> str:
    """Return the location of a Bundle entry."""
    return f"Bundle.entry[{i}]"


def _label(res: dict[str, Any], i: int) -> str:
    """Return 'Type/id' for a resource, or its type and entry position when the id is unusable."""
    rt = res.get("resourceType")
    kind = rt if isinstance(rt, str) and _RESOURCE_TYPE.fullmatch(rt) else "resource"
    rid = res.get("id")
    if isinstance(rid, str) and _FHIR_ID.fullmatch(rid):
        return f"{kind}/{rid}"
    return f"{kind} at {_at(i)}"


def _stated(res: dict[str, Any]) -> dict[str, bool | None]:
    """Return the stating extensions a resource carries: url to its boolean, None if unusable.

    An extension whose value is not a boolean, or that is repeated with different values, is
    unusable. Other extensions are not looked at.
    """
    out: dict[str, bool | None] = {}
    extensions = res.get("extension")
    if isinstance(extensions, list):
        for ext in extensions:
            if not isinstance(ext, dict):
                continue
            url = ext.get("url")
            if not isinstance(url, str) or url not in _STATED_EXTENSIONS:
                continue
            value = ext.get("valueBoolean")
            if not isinstance(value, bool) or out.get(url, value) != value:
                out[url] = None
            else:
                out[url] = value
    return out


def _codes(concept: object, system: str) -> list[str]:
    """Return the codes of a CodeableConcept's codings in one code system."""
    out: list[str] = []
    if isinstance(concept, dict):
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, dict) and coding.get("system") == system:
                    code = coding.get("code")
                    if isinstance(code, str):
                        out.append(code)
    return out


def _status_code(concept: object, system: str) -> str | None:
    """Return the first code of a status CodeableConcept in its system (or with no system)."""
    if isinstance(concept, dict):
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, dict) and coding.get("system") in (system, None):
                    code = coding.get("code")
                    if isinstance(code, str):
                        return code
    return None


def _effective(res: dict[str, Any]) -> object:
    """Return the time an Observation applies to: effective[x], else issued."""
    for name in ("effectiveDateTime", "effectiveInstant"):
        value = res.get(name)
        if value is not None:
            return value
    period = res.get("effectivePeriod")
    if isinstance(period, dict):
        value = period.get("end") or period.get("start")
        if value is not None:
            return value
    return res.get("issued")


def _sort_key(value: object, i: int) -> tuple[bool, float, int]:
    """Return a key ordering resources by a FHIR date/dateTime, undated first, then by position."""
    seconds = _seconds(value)
    return (seconds is not None, seconds or 0.0, i)


def _seconds(value: object) -> float | None:
    """Return a FHIR date, dateTime or instant as seconds from the epoch (UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        if len(value) < 10:
            partial = _PARTIAL_DATE.fullmatch(value)
            if partial is None:
                return None
            moment = datetime.datetime(int(partial[1]), int(partial[2] or 1), 1)
        else:
            moment = datetime.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return (moment - _NAIVE_EPOCH).total_seconds()
        return (moment - _EPOCH).total_seconds()
    except (ValueError, OverflowError):
        return None


def _decimal(value: object) -> Decimal | None:
    """Return a JSON number as an exact Decimal (floats by their shortest repr), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    return None


def _number(value: Decimal) -> int | float | None:
    """Return a Decimal as an int when integral, a float otherwise, or None when not finite."""
    if not value.is_finite():
        return None
    if value.adjusted() < 16 and value == value.to_integral_value():
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _ucum(quantity: dict[str, Any]) -> str | None:
    """Return a Quantity's UCUM code, or its unit text when it has no UCUM code."""
    code = quantity.get("code")
    if isinstance(code, str) and quantity.get("system") in (UCUM, None):
        return code
    unit = quantity.get("unit")
    return unit if isinstance(unit, str) else None


def _unit_key(quantity: dict[str, Any]) -> tuple[object, str] | None:
    """Return what identifies a Quantity's unit for matching: system and code, else unit text."""
    code = quantity.get("code")
    if isinstance(code, str):
        return (quantity.get("system"), code)
    unit = quantity.get("unit")
    return (None, unit.strip().lower()) if isinstance(unit, str) else None


def _dose(
    dosages: object, agent: str, medication: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str, str]:
    """Return a normalised dose {value, unit}, or None with a warning code and message."""
    if not isinstance(dosages, list) or not dosages:
        return None, "dose_missing", "no dosage is given"
    if len(dosages) > 1:
        return None, "dose_ambiguous", "more than one dosage instruction is given"
    dosage = dosages[0]
    if not isinstance(dosage, dict):
        return None, "dose_unparseable", "the dosage is not an object"
    if dosage.get("asNeededBoolean") is True or dosage.get("asNeededCodeableConcept") is not None:
        return None, "dose_as_needed", "the dose is taken as needed, not regularly"
    rates = dosage.get("doseAndRate")
    first = rates[0] if isinstance(rates, list) and rates else None
    quantity = first.get("doseQuantity") if isinstance(first, dict) else None
    if not isinstance(quantity, dict):
        return None, "dose_missing", "the dosage has no doseQuantity"
    amount = _decimal(quantity.get("value"))
    if amount is None or amount < 0:
        return None, "dose_unparseable", "doseQuantity.value is not a non-negative number"
    mass = _ucum(quantity)
    if mass != "mg" and mass != "g":
        converted = _by_strength(amount, quantity, medication)
        if converted is None:
            return (
                None,
                "dose_unit_unknown",
                "the dose unit is neither mg nor g, and no single ingredient strength converts it",
            )
        amount, mass = converted
    timing = dosage.get("timing")
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict):
        return None, "dose_timing_missing", "the dosage has no timing.repeat"
    frequency = _decimal(repeat.get("frequency", 1))
    period = _decimal(repeat.get("period"))
    period_unit = repeat.get("periodUnit")
    if frequency is None or frequency <= 0 or period is None or period <= 0:
        return (
            None,
            "dose_timing_unparseable",
            "timing.repeat lacks a positive frequency and period",
        )
    if not isinstance(period_unit, str) or period_unit not in _PER_DAY:
        return None, "dose_timing_unsupported", "timing.repeat.periodUnit is not h, d or wk"
    weekly = agent in _WEEKLY_AGENTS or (agent not in _DAILY_AGENTS and period_unit == "wk")
    multiplier, divisor = (_PER_WEEK if weekly else _PER_DAY)[period_unit]
    try:
        total = _CTX.divide(
            _CTX.multiply(_CTX.multiply(amount, frequency), Decimal(multiplier)),
            _CTX.multiply(period, Decimal(divisor)),
        )
    except ArithmeticError:
        total = Decimal("NaN")
    number = _number(total)
    if number is None:
        return None, "dose_unparseable", "the dose does not give a usable number"
    return {"value": number, "unit": f"{mass}/{'week' if weekly else 'day'}"}, "", ""


def _by_strength(
    amount: Decimal, quantity: dict[str, Any], medication: dict[str, Any] | None
) -> tuple[Decimal, str] | None:
    """Convert a dose in units of a form (tablets) to mg or g by the Medication's one strength."""
    unit = _unit_key(quantity)
    if medication is None or unit is None:
        return None
    ingredients = medication.get("ingredient")
    if not isinstance(ingredients, list):
        return None
    strengths = [
        s
        for s in (i.get("strength") for i in ingredients if isinstance(i, dict))
        if isinstance(s, dict)
    ]
    if len(strengths) != 1:
        return None
    numerator, denominator = strengths[0].get("numerator"), strengths[0].get("denominator")
    if not isinstance(numerator, dict) or not isinstance(denominator, dict):
        return None
    mass = _ucum(numerator)
    per = _decimal(numerator.get("value"))
    each = _decimal(denominator.get("value", 1))
    if (
        (mass != "mg" and mass != "g")
        or per is None
        or per < 0
        or each is None
        or each <= 0
        or _unit_key(denominator) != unit
    ):
        return None
    try:
        return _CTX.divide(_CTX.multiply(amount, per), each), mass
    except ArithmeticError:
        return None


def _outcome(res: dict[str, Any]) -> tuple[str, str]:
    """Return the outcome a stopping reason gives, and why it is unknown when it is."""
    concepts: list[dict[str, Any]] = []
    for name in ("statusReason", "reasonCode"):
        value = res.get(name)
        if isinstance(value, dict):
            concepts.append(value)
        elif isinstance(value, list):
            concepts.extend(v for v in value if isinstance(v, dict))
        if concepts:
            break
    if not concepts:
        return "unknown", "no reason for stopping is given"
    texts: list[str] = []
    intolerance = False
    for concept in concepts:
        text = concept.get("text")
        if isinstance(text, str):
            texts.append(text.lower())
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if not isinstance(coding, dict):
                    continue
                code = coding.get("code")
                if (
                    isinstance(code, str)
                    and code in INTOLERANCE_CODES
                    and coding.get("system") == MEDREQ_STATUS_REASON
                ):
                    intolerance = True
                display = coding.get("display")
                if isinstance(display, str):
                    texts.append(display.lower())
    blob = " | ".join(texts)
    inadequate = any(word in blob for word in INADEQUATE_WORDS)
    intolerance = intolerance or any(word in blob for word in INTOLERANCE_WORDS)
    if inadequate and intolerance:
        return "unknown", "the stopping reason names both lack of effect and intolerance"
    if inadequate:
        return "inadequate_response", ""
    if intolerance:
        return "intolerance", ""
    return "unknown", "the stopping reason names neither lack of effect nor intolerance"
