"""Builds CDS Hooks requests shaped like those the public CDS Hooks sandbox sends."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

BUNDLES = Path(__file__).resolve().parents[1] / "fhir" / "bundles"
LOINC_WEIGHT, LOINC_HEIGHT = "29463-7", "8302-2"


def load_bundle(name: str) -> dict[str, Any]:
    """Return a synthetic test bundle file (with about, evaluation_date, bundle)."""
    data: dict[str, Any] = json.loads((BUNDLES / f"{name}.json").read_text())
    return data


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def _loinc(res: dict[str, Any]) -> set[str]:
    return {c.get("code") for c in (res.get("code") or {}).get("coding") or []}


def prefetch_from(bundle: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split a collection Bundle into the service's prefetch keys; return (patient id, prefetch)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle.get("entry", []):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            continue  # the messy test bundle has junk entries; a server would not send them
        by_type.setdefault(res.get("resourceType", "?"), []).append(res)
    patient = (by_type.get("Patient") or [{"resourceType": "Patient", "id": "p1"}])[0]
    obs = by_type.get("Observation", [])
    meds = by_type.get("Medication", [])  # as a server would _include them
    prefetch = {
        "patient": patient,
        "conditions": _searchset(by_type.get("Condition", [])),
        "medicationRequests": _searchset(by_type.get("MedicationRequest", []) + meds),
        "medicationStatements": _searchset(by_type.get("MedicationStatement", [])),
        "weight": _searchset([o for o in obs if LOINC_WEIGHT in _loinc(o)]),
        "height": _searchset([o for o in obs if LOINC_HEIGHT in _loinc(o)]),
    }
    return str(patient.get("id", "p1")), prefetch


def hook_request(
    hook: str, patient_id: str, prefetch: dict[str, Any] | None, **context: Any
) -> dict[str, Any]:
    """Return a hook request body like the sandbox's."""
    body: dict[str, Any] = {
        "hookInstance": str(uuid.uuid4()),
        "hook": hook,
        "context": {"userId": "Practitioner/example", "patientId": patient_id, **context},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def medication_request(
    rid: str, rxnorm: str, value: float, unit: str, per: str, frequency: int = 1
) -> dict[str, Any]:
    """Return a draft MedicationRequest with a dose and a timing (per 'd' or 'wk')."""
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rxnorm}]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": frequency, "period": 1, "periodUnit": per}},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": value,
                            "unit": unit,
                            "system": "http://unitsofmeasure.org",
                            "code": unit,
                        }
                    }
                ],
            }
        ],
    }


def draft_orders(*requests: dict[str, Any]) -> dict[str, Any]:
    """Return the draftOrders Bundle of an order hook."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in requests],
    }
