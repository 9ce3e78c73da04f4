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
# Each prefetched medication-bearing type once: its prefetch key and its words for a person.
_PREFETCHED_MEDICATIONS: Mapping[str, tuple[str, str]] = {
    "MedicationRequest": ("medicationRequests", "medication orders"),
    "MedicationStatement": ("medicationStatements", "medication statements"),
    "MedicationAdministration": ("medicationAdministrations", "medication administrations"),
}
MEDICATION_RESOURCES: Mapping[str, str] = {
    kind: key for kind, (key, _) in _PREFETCHED_MEDICATIONS.items()
}
MEDICATION_WORDS: Mapping[str, str] = {
    kind: words for kind, (_, words) in _PREFETCHED_MEDICATIONS.items()
}
# Every type that carries medications: the prefetched ones, and MedicationDispense, read when a
# record holds it but not yet prefetched (that would be a new discovery key). A tuple: membership
# by equality, so an unhashable resourceType is no error.
MEDICATION_RESOURCE_TYPES: tuple[str, ...] = (*MEDICATION_RESOURCES, "MedicationDispense")

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
# Every other code of that system (altchoice, clarif, drughigh, hospadm, labint, non-avail, preg,
# sddi, sdupther, surg, washout; checked in the R4/R5 value set listings, see docs/fhir-mapping.md)
# says why a drug was held or stopped for a reason other than how it worked: outcome unknown.
# Administrative reasons are not clinical outcomes: they are read first, so "prior authorization
# failed" is never a treatment failure.
ADMINISTRATIVE_WORDS: tuple[str, ...] = (
    "authori",
    "insurance",
    "coverage",
    "formulary",
    "cost",
    "afford",
    "price",
    "copay",
    "supply",
    "shortage",
    "out of stock",
    "unavailable",
    "not available",
    "pharmacy",
    "moved",
    "relocat",
    "transfer",
    "duplicate",
    "entered in error",
    "prescriber",
    "renewal",
    "renewed",
    "expired",
)

# (multiplier, divisor) turning "per period of this unit" into per day / per week; Decimals
# made once rather than per dose read.
PER_DAY: Mapping[str, tuple[Decimal, Decimal]] = {
    "h": (Decimal(24), Decimal(1)),
    "d": (Decimal(1), Decimal(1)),
    "wk": (Decimal(1), Decimal(7)),
}
PER_WEEK: Mapping[str, tuple[Decimal, Decimal]] = {
    "h": (Decimal(168), Decimal(1)),
    "d": (Decimal(7), Decimal(1)),
    "wk": (Decimal(1), Decimal(1)),
}

WEIGHT_UNITS: Mapping[str, tuple[Decimal, str]] = {
    "kg": (Decimal(1), "kg"),
    "g": (Decimal("0.001"), "kg"),
    "[lb_av]": (Decimal(1), "lb"),
    "[oz_av]": (Decimal("0.0625"), "lb"),
}
HEIGHT_UNITS: Mapping[str, tuple[Decimal, str]] = {
    "cm": (Decimal(1), "cm"),
    "m": (Decimal(100), "cm"),
    "[in_i]": (Decimal(1), "in"),
    "[ft_i]": (Decimal(12), "in"),
}
# Only a final result (or its amendment or correction) is a measurement to dose by.
OBSERVATION_USABLE = frozenset({"final", "amended", "corrected"})
# A weight older than this many days is used, with a warning naming its date.
WEIGHT_STALE_DAYS = 365
# Clinical status codes (FHIR R4 condition-clinical) and what they say about control and flare.
CLINICAL_FLARE = frozenset({"relapse", "recurrence"})
CLINICAL_CONTROLLED = frozenset({"remission", "inactive", "resolved"})
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"

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

# FHIR R4 MedicationRequest.status (active | on-hold | cancelled | completed | entered-in-error |
# stopped | draft | unknown): in use, tried, not yet ordered, or nothing at all.
MEDREQ_ROLE: Mapping[str, str] = {
    "active": "current",
    "on-hold": "current",
    "completed": "history",
    "stopped": "history",
    "draft": "not_ordered",
    "cancelled": "ignore",
    "entered-in-error": "ignore",
}
# FHIR R4 MedicationRequest.intent: only an order (or one of its kinds) says the drug is prescribed;
# a proposal, plan or option is not use.
ORDER_INTENTS = frozenset(
    {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
)
NOT_ORDER_INTENTS = frozenset({"proposal", "plan", "option"})
# FHIR R4 MedicationDispense.status: a dispense shows the drug was handed over (tried), not how
# the disease answered.
MEDDISPENSE_ROLE: Mapping[str, str] = {
    "completed": "history",
    "in-progress": "history",
    "on-hold": "history",
    "stopped": "history",
    "preparation": "ignore",
    "cancelled": "ignore",
    "declined": "ignore",
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
    "on-hold": "current",
    "completed": "history",
    "stopped": "history",
    "entered-in-error": "ignore",
    "not-taken": "ignore",
    "intended": "ignore",
}
