"""Which patient a Bulk Data resource belongs to, and which resource types the export may hold."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

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
    return target_id(target, kind)


def target_id(target: str, kind: str = "Patient") -> str | None:
    """Return the id of a `kind` reference's target string, or None."""
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


def medication_refs(res: dict[str, Any]) -> list[str]:
    """Return the Medication ids a medication resource references."""
    rid = reference_id(res.get("medicationReference"), "Medication")
    return [rid] if rid else []


def parse_line(line: bytes, file_type: str, complete: bool = True) -> tuple[str, Any]:
    """Classify one NDJSON line: ('patient', (id, resource)), ('shared', resource), ('blank', None)
    or ('problem', kind); `complete` is False for a last line the file ends inside of."""
    stripped = line.strip()
    if not stripped:
        return "blank", None
    try:
        res = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        # A line the file ends inside of, or one that opens an object it never closes, was cut.
        cut = not complete or (stripped.startswith(b"{") and not stripped.endswith(b"}"))
        return "problem", "truncated" if cut else "not_json"
    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
        return "problem", "not_a_resource"
    rt = res["resourceType"]
    if rt not in KNOWN_TYPES:
        return "problem", "unknown_type"
    if rt != file_type and file_type in KNOWN_TYPES:
        return "problem", "type_mismatch"
    if rt in SHARED_TYPES:
        return "shared", res
    pid = patient_of(res)
    if pid is None:
        return "problem", "no_patient"
    return "patient", (pid, res)


class _Ref(msgspec.Struct):
    reference: str | None = None


class _Keys(msgspec.Struct):
    """The few fields that key a line; msgspec validates the whole line but builds only these."""

    resourceType: str
    id: str | None = None
    subject: _Ref | None = None
    patient: _Ref | None = None
    beneficiary: _Ref | None = None
    medicationReference: _Ref | None = None


_KEYS = msgspec.json.Decoder(_Keys)


def key_line(line: bytes, file_type: str, complete: bool = True) -> tuple[str, Any, Any]:
    """Key one NDJSON line without building the resource, as parse_line would classify it.

    Returns ('patient', patient id, referenced Medication id or None), ('shared', type, id),
    ('blank', None, None) or ('problem', kind, None).
    """
    if not line.isascii():
        # msgspec does not check UTF-8 inside the strings it skips; orjson (parse_line) does.
        return _slow(line, file_type, complete)
    try:
        k = _KEYS.decode(line)
    except msgspec.DecodeError:
        # Not JSON, or a shape the key fields do not fit: parse_line classifies it exactly.
        return _slow(line, file_type, complete)
    rt = k.resourceType
    if rt not in KNOWN_TYPES:
        return "problem", "unknown_type", None
    if rt != file_type and file_type in KNOWN_TYPES:
        return "problem", "type_mismatch", None
    if rt in SHARED_TYPES:
        return "shared", rt, k.id
    pid: str | None = None
    if rt == "Patient":
        pid = k.id or None
    else:
        for ref in (k.subject, k.patient, k.beneficiary):
            if ref is not None and ref.reference is not None:
                pid = target_id(ref.reference)
                if pid is not None:
                    break
    if pid is None:
        return "problem", "no_patient", None
    med = k.medicationReference
    mid = target_id(med.reference, "Medication") if med is not None and med.reference else None
    return "patient", pid, mid


def _slow(line: bytes, file_type: str, complete: bool) -> tuple[str, Any, Any]:
    kind, value = parse_line(line, file_type, complete)
    if kind == "shared":
        rid = value.get("id")
        return kind, value["resourceType"], rid if isinstance(rid, str) else None
    if kind == "patient":
        pid, res = value
        refs = medication_refs(res)
        return kind, pid, refs[0] if refs else None
    return kind, value, None
