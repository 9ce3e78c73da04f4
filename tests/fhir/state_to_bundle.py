"""The inverse of the FHIR mapping, for tests only: a patient state written as a FHIR R4 Bundle.

`state_to_bundle(state, evaluation_date)` writes what docs/fhir-mapping.md reads, so that
`bundle_to_state(state_to_bundle(s, d), evaluation_date=d, ...)` gives back `s` wherever FHIR (with
the three myoguide extensions) can say it. What it cannot say is written the way a real record
would hold it, and the mapping then leaves it out or changes it:

- a fractional `age_years` becomes the birthDate of the whole-year floor (the mapping yields whole
  years only);
- a diagnosis other than DM, PM or IBM becomes a Condition with text only (not recognised);
- `disease_control_achieved: false` with `flare: true` (active "again" but never controlled)
  has no FHIR form: the mapping reads "never controlled" as "not flaring";
- an agent without an RxNorm code (IVIG) becomes a medication with text only (not recognised);
- the outcome `responded` becomes a completed course with no reason (the mapping says `unknown`);
- `skin_predominant` and `ild.present: false` are not written at all;
- an explicitly empty `treatment_history` cannot be told from an absent one.
"""

from __future__ import annotations

import datetime
import uuid
from functools import cache
from typing import Any

from myoguide.knowledge.loader import load_packaged

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
STATUS_REASON = "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason"
EXT = "https://myoguide.example/fhir/StructureDefinition/"
EXT_REFRACTORY = EXT + "ild-refractory"
EXT_EXCLUDED = EXT + "alternative-diagnoses-excluded"
EXT_CONTROL = EXT + "disease-control-achieved"

DIAGNOSIS_CODES = {
    "dermatomyositis": ("396230008", "Dermatomyositis"),
    "polymyositis": ("31384009", "Polymyositis"),
    "inclusion_body_myositis": ("72315009", "Inclusion body myositis"),
}
ILD = ("233703007", "Interstitial lung disease")
SEVERITY_CODES = {"mild": "255604002", "moderate": "6736007", "severe": "24484000"}
WEIGHT = ("29463-7", "Body weight", {"kg": ("kg", "kg"), "lb": ("[lb_av]", "lb")})
HEIGHT = ("8302-2", "Body height", {"cm": ("cm", "cm"), "in": ("[in_i]", "in")})
PERIOD_UNITS = {"day": "d", "week": "wk"}

# One case per scenario (and out of scope) for the real doors: the command and the service.
HANDFUL = (
    "example-flare-above-10mg",  # R1
    "example-flare-below-10mg",  # R2
    "example-flare-at-10mg",  # boundary
    "vignette-r3-on-aza",  # R3
    "vignette-r4-off-all",  # R4
    "example-resistant-dm",  # resistant
    "example-ild-refractory",  # ILD refractory
    "vignette-out-of-scope-ibm",  # out of scope
    "vignette-controlled",  # controlled
)


@cache
def rxnorm_to_agent() -> dict[str, str]:
    """Return the guideline's RxNorm ingredient codes, each to its agent id."""
    return {a.rxnorm: a.id for a in load_packaged().agents if a.rxnorm}


@cache
def _agents() -> dict[str, tuple[str, str | None]]:
    """Return agent id to (display, RxNorm code or None)."""
    return {a.id: (a.display, a.rxnorm) for a in load_packaged().agents}


def agent_id(name: str) -> str:
    """Return the agent id for a state's agent, which may be given as an RxNorm code."""
    return rxnorm_to_agent().get(name, name)


def uncoded_agents(state: dict[str, Any]) -> list[str]:
    """Return the agents of a state that have no RxNorm code, so no FHIR form the mapping reads."""
    named = [m["agent"] for m in state.get("current_medications", [])]
    named += [h["agent"] for h in state.get("treatment_history", []) if "agent" in h]
    return sorted({a for a in map(agent_id, named) if _agents().get(a, ("", None))[1] is None})


def birth_date(age_years: float, evaluation_date: datetime.date) -> datetime.date:
    """Return a birthDate giving floor(age_years) whole years on evaluation_date."""
    year = evaluation_date.year - int(age_years)
    try:
        return evaluation_date.replace(year=year)
    except ValueError:  # 29 February in a common year: the 28th is already a birthday passed
        return evaluation_date.replace(year=year, day=28)


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    key = f"myoguide-test:{resource['resourceType']}/{resource['id']}"
    return {"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key)}", "resource": resource}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _clinical_status(state: dict[str, Any]) -> str:
    """Return the clinicalStatus that, with the control extension, gives control and flare."""
    control, flare = state.get("disease_control_achieved"), state.get("flare")
    if control is True and flare is True:
        return "relapse"
    if control is True and flare is False:
        return "remission"
    # Never controlled (flare then reads as false), or control unknown: the extension decides.
    return "active"


def _diagnosis(state: dict[str, Any], on: str) -> dict[str, Any]:
    diagnosis = str(state.get("diagnosis", ""))
    extension = []
    if isinstance(state.get("alternative_diagnoses_excluded"), bool):
        extension.append(
            {"url": EXT_EXCLUDED, "valueBoolean": state["alternative_diagnoses_excluded"]}
        )
    if isinstance(state.get("disease_control_achieved"), bool):
        extension.append({"url": EXT_CONTROL, "valueBoolean": state["disease_control_achieved"]})
    known = DIAGNOSIS_CODES.get(diagnosis)
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "id": "cond-myositis",
        "extension": extension,
        "verificationStatus": _status(VERIFICATION, "confirmed"),
        # Text only when SNOMED CT has no code the mapping knows: it cannot be recognised.
        "code": _concept(SNOMED, *known) if known else {"text": diagnosis},
        "subject": {"reference": "Patient/pat-1"},
        "recordedDate": on,
    }
    # Control reached with the flare status unknown has no clinical status that says so: none.
    if not (state.get("disease_control_achieved") is True and state.get("flare") is None):
        condition["clinicalStatus"] = _status(CLINICAL, _clinical_status(state))
    if "severity" in state:
        severity = str(state["severity"])
        condition["severity"] = _concept(SNOMED, SEVERITY_CODES[severity], severity.title())
    return condition


def _ild(ild: dict[str, Any], on: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": "cond-ild",
        "extension": [{"url": EXT_REFRACTORY, "valueBoolean": bool(ild.get("refractory"))}],
        "clinicalStatus": _status(CLINICAL, "active"),
        "verificationStatus": _status(VERIFICATION, "confirmed"),
        "code": _concept(SNOMED, *ILD),
        "subject": {"reference": "Patient/pat-1"},
        "recordedDate": on,
    }


def _medication(agent: str) -> dict[str, Any]:
    display, code = _agents()[agent]
    return _concept(RXNORM, code, display) if code else {"text": display}


def _dosage(dose: dict[str, Any]) -> list[dict[str, Any]]:
    mass, per = str(dose["unit"]).split("/")
    return [
        {
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": PERIOD_UNITS[per]}},
            "doseAndRate": [
                {
                    "doseQuantity": {
                        "value": dose["value"],
                        "unit": mass,
                        "system": UCUM,
                        "code": mass,
                    }
                }
            ],
        }
    ]


def _current(i: int, med: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": f"med-current-{i}",
        "status": "active",
        "medicationCodeableConcept": _medication(agent_id(med["agent"])),
        "subject": {"reference": "Patient/pat-1"},
    }
    if "dose" in med:
        statement["dosage"] = _dosage(med["dose"])
    if "last_given" in med:
        statement["effectiveDateTime"] = med["last_given"]
    return statement


def _past(i: int, item: dict[str, Any]) -> dict[str, Any]:
    outcome = item["outcome"]
    statement: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": f"med-past-{i}",
        # "responded" has no FHIR reason the mapping reads: a completed course, reason unstated.
        "status": "completed" if outcome == "responded" else "stopped",
        "medicationCodeableConcept": _medication(agent_id(item["agent"])),
        "subject": {"reference": "Patient/pat-1"},
    }
    if "last_given" in item:
        statement["effectivePeriod"] = {"end": item["last_given"]}
    if outcome == "inadequate_response":
        statement["statusReason"] = [{"text": "Inadequate response"}]
    elif outcome == "intolerance":
        statement["statusReason"] = [
            {
                "coding": [
                    {"system": STATUS_REASON, "code": "sintol", "display": "Suspected intolerance"}
                ]
            }
        ]
    return statement


def _observation(
    kind: tuple[str, str, dict[str, tuple[str, str]]], rid: str, value: dict[str, Any], on: str
) -> dict[str, Any]:
    loinc, display, units = kind
    code, text = units[str(value["unit"])]
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": _concept(LOINC, loinc, display),
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": on,
        "valueQuantity": {"value": value["value"], "unit": text, "system": UCUM, "code": code},
    }


def state_to_bundle(state: dict[str, Any], evaluation_date: datetime.date) -> dict[str, Any]:
    """Return a collection Bundle from which the FHIR mapping gives back `state` (see above)."""
    on = evaluation_date.isoformat()
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "pat-1", "gender": "unknown"}
    if "age_years" in state:
        patient["birthDate"] = birth_date(state["age_years"], evaluation_date).isoformat()
    resources = [patient]
    if "diagnosis" in state:
        resources.append(_diagnosis(state, on))
    ild = state.get("ild")
    if isinstance(ild, dict) and ild.get("present"):
        resources.append(_ild(ild, on))
    if "weight" in state:
        resources.append(_observation(WEIGHT, "obs-weight", state["weight"], on))
    if "height" in state:
        resources.append(_observation(HEIGHT, "obs-height", state["height"], on))
    resources += [_current(i, m) for i, m in enumerate(state.get("current_medications", []))]
    # A combination entry (the `agents` form) has no FHIR form here: it is not written.
    resources += [
        _past(i, h) for i, h in enumerate(state.get("treatment_history", [])) if "agent" in h
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [_entry(r) for r in resources],
    }
