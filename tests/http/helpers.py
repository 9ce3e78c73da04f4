"""Builds CDS Hooks requests shaped like those the public CDS Hooks sandbox sends."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from myoguide.knowledge.terminology import load_packaged_terminology

BUNDLES = Path(__file__).resolve().parents[1] / "fhir" / "bundles"
LOINC_WEIGHT, LOINC_HEIGHT = "29463-7", "8302-2"


def terminology_codes() -> tuple[frozenset[str], frozenset[str]]:
    """Return the LOINC codes of body weight and of body height the mapping reads."""
    term = load_packaged_terminology()
    return term.weight_codes, term.height_codes


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
    weight, height = terminology_codes()
    prefetch = {
        "patient": patient,
        "conditions": _searchset(by_type.get("Condition", [])),
        "medicationRequests": _searchset(by_type.get("MedicationRequest", []) + meds),
        "medicationStatements": _searchset(by_type.get("MedicationStatement", [])),
        "medicationAdministrations": _searchset(by_type.get("MedicationAdministration", [])),
        "allergies": _searchset(by_type.get("AllergyIntolerance", [])),
        "weight": _searchset([o for o in obs if weight & _loinc(o)]),
        "height": _searchset([o for o in obs if height & _loinc(o)]),
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


# ---- the CDS Hooks 2.0 response rules, checked on every card the tests see ------------------

INDICATORS = ("info", "warning", "critical")
ACTION_TYPES = ("create", "update", "delete")
LINK_TYPES = ("absolute", "smart")
SELECTION = ("at-most-one", "any")


def check_cards(response: dict[str, Any]) -> list[dict[str, Any]]:
    """Assert the CDS Hooks 2.0 rules on a response's cards and return them."""
    assert set(response) <= {"cards", "systemActions"}, response.keys()
    cards = response["cards"]
    assert isinstance(cards, list)
    seen: set[str] = set()
    for card in cards:
        ids = [card["uuid"], *(s["uuid"] for s in card.get("suggestions", []))]
        for uid in ids:
            assert str(uuid.UUID(uid)) == uid
            assert uid not in seen, f"uuid {uid} twice in one response"
            seen.add(uid)
        assert isinstance(card["summary"], str)
        assert 0 < len(card["summary"]) < 140
        assert card["indicator"] in INDICATORS
        assert isinstance(card["source"].get("label"), str)
        assert card["source"]["label"]
        url = card["source"].get("url")
        assert url is None or url.startswith(("http://", "https://"))
        for link in card.get("links", []):
            assert link["type"] in LINK_TYPES
            assert link["label"]
            assert link["url"]
        suggestions = card.get("suggestions", [])
        if suggestions:
            assert card.get("selectionBehavior") in SELECTION
        for s in suggestions:
            assert isinstance(s["label"], str)
            assert s["label"]
            for action in s.get("actions", []):
                assert action["type"] in ACTION_TYPES
                assert isinstance(action["description"], str)
                if action["type"] in ("create", "update"):
                    assert isinstance(action["resource"], dict)
                    assert action["resource"].get("resourceType")
                else:
                    assert isinstance(action.get("resourceId"), list)
        for reason in card.get("overrideReasons", []):
            assert reason["code"]
            assert reason["system"]
    return list(cards)


def drafted_requests(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return every MedicationRequest the cards' suggestions would create."""
    return [
        a["resource"]
        for c in cards
        for s in c.get("suggestions", [])
        for a in s.get("actions", [])
        if a["type"] == "create" and a["resource"].get("resourceType") == "MedicationRequest"
    ]
