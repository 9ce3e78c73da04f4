"""FHIR code systems, the codes and extensions the mapping reads, and its lookup tables."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
MEDREQ_STATUS_REASON = "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason"

# The resource types that carry a patient's medications, each with its CDS Hooks prefetch key:
# the reader, the prefetch, the card's usage text and the batch's Medication look-ups read this.
MEDICATION_RESOURCES: Mapping[str, str] = {
    "MedicationRequest": "medicationRequests",
    "MedicationStatement": "medicationStatements",
    "MedicationAdministration": "medicationAdministrations",
}
# The same types as a tuple: membership by equality, so an unhashable resourceType is no error.
MEDICATION_RESOURCE_TYPES: tuple[str, ...] = tuple(MEDICATION_RESOURCES)

# Facts standard FHIR cannot carry, stated explicitly by a record through these extensions
# (valueBoolean). An absent extension leaves the fact unknown, exactly as before.
_EXTENSION_BASE = "https://myoguide.example/fhir/StructureDefinition/"
EXT_ILD_REFRACTORY = _EXTENSION_BASE + "ild-refractory"
EXT_ALTERNATIVES_EXCLUDED = _EXTENSION_BASE + "alternative-diagnoses-excluded"
EXT_CONTROL_ACHIEVED = _EXTENSION_BASE + "disease-control-achieved"
STATED_EXTENSIONS = frozenset({EXT_ILD_REFRACTORY, EXT_ALTERNATIVES_EXCLUDED, EXT_CONTROL_ACHIEVED})

# Diagnosis codes come from the terminology (knowledge/data/terminology.yaml); its meanings
# other than DM and PM become these out-of-scope diagnosis strings. IBM keeps its own string, as
# before the terminology, because the state has always named it.
JUVENILE_DIAGNOSIS = "juvenile_dermatomyositis"
OTHER_MYOSITIS_DIAGNOSIS = "other_myositis"
IBM_CODES = frozenset({("http://snomed.info/sct", "72315009"), (ICD10CM, "G72.41")})
IBM_DIAGNOSIS = "inclusion_body_myositis"
# Not in the terminology (it holds myositis codes only); used since the first mapping.
ILD_CODE = "233703007"
SEVERITIES: Mapping[str, str] = {
    "255604002": "mild",
    "6736007": "moderate",
    "24484000": "severe",
}

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

# (multiplier, divisor) turning "per period of this unit" into per day / per week.
PER_DAY: Mapping[str, tuple[int, int]] = {"h": (24, 1), "d": (1, 1), "wk": (1, 7)}
PER_WEEK: Mapping[str, tuple[int, int]] = {"h": (168, 1), "d": (7, 1), "wk": (1, 1)}

WEIGHT_UNITS: Mapping[str, tuple[Decimal, str]] = {
    "kg": (Decimal(1), "kg"),
    "g": (Decimal("0.001"), "kg"),
    "[lb_av]": (Decimal(1), "lb"),
}
HEIGHT_UNITS: Mapping[str, tuple[Decimal, str]] = {
    "cm": (Decimal(1), "cm"),
    "m": (Decimal(100), "cm"),
    "[in_i]": (Decimal(1), "in"),
}

# Dose-quantity units that count units of a dose form (FHIR examples use UCUM annotations such as
# {tbl} and v3-orderableDrugForm codes such as TAB), to multiply by the product's strength.
FORM_UNITS: Mapping[str, str] = {
    "{tbl}": "tablet",
    "{tablet}": "tablet",
    "{tablets}": "tablet",
    "tab": "tablet",
    "tabs": "tablet",
    "tablet": "tablet",
    "tablets": "tablet",
    "{cap}": "capsule",
    "{capsule}": "capsule",
    "{capsules}": "capsule",
    "cap": "capsule",
    "caps": "capsule",
    "capsule": "capsule",
    "capsules": "capsule",
}
# mg per unit of each mass unit the dose may be written in (after spelling -> UCUM).
MASS_UNITS: Mapping[str, tuple[Decimal, str]] = {
    "mg": (Decimal(1), "mg"),
    "g": (Decimal(1), "g"),
    "ug": (Decimal("0.001"), "mg"),
}

MEDREQ_ROLE: Mapping[str, str] = {
    "active": "current",
    "on-hold": "current",
    "completed": "history",
    "stopped": "history",
    "cancelled": "ignore",
    "entered-in-error": "ignore",
}
# An administration shows the drug was given, not how the disease answered or that it continues.
MEDADMIN_ROLE: Mapping[str, str] = {
    "completed": "history",
    "in-progress": "history",
    "on-hold": "history",
    "stopped": "history",
    "not-done": "ignore",
    "entered-in-error": "ignore",
}
MEDSTATEMENT_ROLE: Mapping[str, str] = {
    "active": "current",
    "completed": "history",
    "stopped": "history",
    "entered-in-error": "ignore",
    "not-taken": "ignore",
    "intended": "ignore",
}
