"""FHIR code systems, the codes and extensions the mapping reads, and its lookup tables."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

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
STATED_EXTENSIONS = frozenset({EXT_ILD_REFRACTORY, EXT_ALTERNATIVES_EXCLUDED, EXT_CONTROL_ACHIEVED})

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
WEEKLY_AGENTS = frozenset({"methotrexate"})
DAILY_AGENTS = frozenset({"prednisone", "azathioprine"})

# (multiplier, divisor) turning "per period of this unit" into per day / per week.
PER_DAY: Mapping[str, tuple[int, int]] = {"h": (24, 1), "d": (1, 1), "wk": (1, 7)}
PER_WEEK: Mapping[str, tuple[int, int]] = {"h": (168, 1), "d": (7, 1), "wk": (1, 1)}

WEIGHT_UNITS: Mapping[str, tuple[Decimal, str]] = {
    "kg": (Decimal(1), "kg"),
    "g": (Decimal("0.001"), "kg"),
    "[lb_av]": (Decimal(1), "lb"),
    "lb": (Decimal(1), "lb"),
    "lbs": (Decimal(1), "lb"),
}
HEIGHT_UNITS: Mapping[str, tuple[Decimal, str]] = {
    "cm": (Decimal(1), "cm"),
    "m": (Decimal(100), "cm"),
    "[in_i]": (Decimal(1), "in"),
    "in": (Decimal(1), "in"),
}

MEDREQ_ROLE: Mapping[str, str] = {
    "active": "current",
    "on-hold": "current",
    "completed": "history",
    "stopped": "history",
    "cancelled": "ignore",
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
