"""Which patient a Bulk Data resource belongs to, and which resource types the export may hold."""

from __future__ import annotations

from typing import Any

# Fields that point at the patient a resource is about (FHIR R4 Patient compartment, the common
# ones: subject, patient, beneficiary).
PATIENT_FIELDS = ("subject", "patient", "beneficiary")
# Resource types that belong to no patient: kept aside (Medication is read through references)
# or ignored, never counted as a problem.
SHARED_TYPES = frozenset(
    {
        "Medication",
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "Device",
        "Substance",
        "HealthcareService",
        "Endpoint",
        "Group",
    }
)
# Resource types a Bulk Data Patient/Group export holds about patients (FHIR R4).
PATIENT_TYPES = frozenset(
    {
        "Patient",
        "AllergyIntolerance",
        "CarePlan",
        "CareTeam",
        "Claim",
        "ClinicalImpression",
        "Communication",
        "Composition",
        "Condition",
        "Coverage",
        "DetectedIssue",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "EpisodeOfCare",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "ImagingStudy",
        "Immunization",
        "ImmunizationRecommendation",
        "List",
        "MeasureReport",
        "Media",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationRequest",
        "MedicationStatement",
        "NutritionOrder",
        "Observation",
        "Procedure",
        "Provenance",
        "QuestionnaireResponse",
        "RelatedPerson",
        "RiskAssessment",
        "ServiceRequest",
        "Specimen",
        "SupplyDelivery",
        "SupplyRequest",
        "VisionPrescription",
    }
)
KNOWN_TYPES = PATIENT_TYPES | SHARED_TYPES


def reference_id(ref: object, kind: str = "Patient") -> str | None:
    """Return the id of a `kind` reference ('Patient/x', 'https://.../Patient/x/_history/2')."""
    if not isinstance(ref, dict):
        return None
    target = ref.get("reference")
    if not isinstance(target, str):
        return None
    marker = kind + "/"
    at = target.rfind(marker, 0)
    # The last occurrence, but a version suffix follows the id: take the segment after the type.
    at = target.find(marker) if "/_history/" in target else at
    if at < 0 or (at > 0 and target[at - 1] != "/"):
        return None
    rid = target[at + len(marker) :].split("/", 1)[0]
    return rid or None


def patient_of(res: dict[str, Any]) -> str | None:
    """Return the id of the patient a resource is about, or None."""
    if res.get("resourceType") == "Patient":
        rid = res.get("id")
        return rid if isinstance(rid, str) and rid else None
    for name in PATIENT_FIELDS:
        pid = reference_id(res.get(name))
        if pid is not None:
            return pid
    return None
