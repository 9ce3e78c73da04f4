"""Which patient a Bulk Data resource belongs to, and which resource types the export may hold."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

# Fields that point at the patient a resource is about (FHIR R4 Patient compartment, the common
# ones: subject, patient, beneficiary); Provenance names its patient among its `target[]`.
PATIENT_FIELDS = ("subject", "patient", "beneficiary")
# The resource types the FHIR reader uses: a line of one of these that names no patient is a real
# problem; any other line that names none is normal content, passed over.
NEEDED_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "AllergyIntolerance",
        "Medication",
    }
)
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


def unresolved_cause(targets: list[str]) -> str:
    """Return why none of a resource's patient references names a patient in the export."""
    if any(t.startswith("urn:uuid:") for t in targets):
        return "urn_uuid"  # resolves only inside a Bundle, by fullUrl; an export has none
    if any(t.startswith("Patient?") for t in targets):
        return "conditional_reference"
    return "not_a_patient" if targets else "no_patient"


def pass_over(kind: str, resource_type: str) -> str:
    """Return the problem kind of a line naming no patient: a note unless the audit reads it."""
    return kind if resource_type in NEEDED_TYPES else "about_no_patient"


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


def patient_refs(res: dict[str, Any]) -> list[str]:
    """Return the reference strings of a resource's patient-compartment fields, in order."""
    refs = [res.get(name) for name in PATIENT_FIELDS]
    if res.get("resourceType") == "Provenance" and isinstance(res.get("target"), list):
        refs += res["target"]
    return [
        r["reference"] for r in refs if isinstance(r, dict) and isinstance(r.get("reference"), str)
    ]


def patient_of(res: dict[str, Any]) -> str | None:
    """Return the id of the patient a resource is about, or None."""
    if res.get("resourceType") == "Patient":
        rid = res.get("id")
        return rid if isinstance(rid, str) and rid else None
    for target in patient_refs(res):
        pid = target_id(target)
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
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):  # orjson refuses nesting deeper than 1024 with this message
            return "problem", "too_deep"
        # A line the file ends inside of, or one that opens an object it never closes, was cut.
        cut = not complete or (stripped.startswith(b"{") and not stripped.endswith(b"}"))
        return "problem", "truncated" if cut else "not_json"
    except RecursionError:  # pragma: no cover - orjson bounds its depth itself (1024)
        return "problem", "too_deep"
    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
        return "problem", "not_a_resource"
    rt = res["resourceType"]
    if rt not in KNOWN_TYPES:
        return "problem", "not_read"
    if rt != file_type and file_type in KNOWN_TYPES:
        return "problem", "type_mismatch"
    if rt in SHARED_TYPES:
        return "shared", res
    pid = patient_of(res)
    if pid is None:
        return "problem", pass_over(unresolved_cause(patient_refs(res)), rt)
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
    target: list[_Ref] | None = None
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
    except (msgspec.DecodeError, RecursionError):
        # RecursionError: msgspec's own depth bound (deep nesting); orjson then names it.
        # Not JSON, or a shape the key fields do not fit: parse_line classifies it exactly.
        return _slow(line, file_type, complete)
    rt = k.resourceType
    if rt not in KNOWN_TYPES:
        return "problem", "not_read", None
    if rt != file_type and file_type in KNOWN_TYPES:
        return "problem", "type_mismatch", None
    if rt in SHARED_TYPES:
        return "shared", rt, k.id
    pid: str | None = None
    targets: list[str] = []
    if rt == "Patient":
        pid = k.id or None
    else:
        refs = [k.subject, k.patient, k.beneficiary]
        if rt == "Provenance" and k.target:
            refs += k.target
        targets = [r.reference for r in refs if r is not None and r.reference is not None]
        for target in targets:
            pid = target_id(target)
            if pid is not None:
                break
    if pid is None:
        return "problem", pass_over(unresolved_cause(targets), rt), None
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
