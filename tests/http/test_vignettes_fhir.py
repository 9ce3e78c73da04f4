"""A handful of vignettes, one per scenario, written as FHIR and sent to the patient-view service.

The Bundle comes from tests/fhir/state_to_bundle.py (the mapping's inverse, for tests). The server
works ages out at today's date (UTC), so the Bundles are written for today. The cards' option
topics must be the original state's recommendation ids, in order.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import check_cards, hook_request, prefetch_from

from casecheck import SHARED_EXAMPLES, VIGNETTES, load_cases
from myoguide.service import Service

PV = "/cds-services/myoguide-patient-view"
INVERSE = Path(__file__).resolve().parents[1] / "fhir" / "state_to_bundle.py"


def _inverse() -> ModuleType:
    """Import tests/fhir/state_to_bundle.py (its folder is on sys.path only when collected)."""
    name = "state_to_bundle"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, INVERSE)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


inverse = _inverse()
CASES: dict[str, dict[str, Any]] = {
    f"{kind}-{name}": case
    for kind, folder in (("example", SHARED_EXAMPLES), ("vignette", VIGNETTES))
    for name, case in load_cases(folder)
}


@pytest.mark.parametrize("name", inverse.HANDFUL)
def test_patient_view_cards_follow_the_original_state(
    name: str, server: Any, service: Service
) -> None:
    state = CASES[name]["input"]
    today = dt.datetime.now(dt.UTC).date()
    patient_id, prefetch = prefetch_from(inverse.state_to_bundle(state, today))
    res = server.post(PV, hook_request("patient-view", patient_id, prefetch))
    assert res.status_code == 200, res.text
    cards = check_cards(res.json())
    expected = service.recommend(state)
    if {w.code for w in expected.warnings} & {"out_of_scope_ibm", "out_of_scope_diagnosis"}:
        assert cards == []  # not DM/PM: the service stays quiet
        return
    assert 1 <= len(cards) <= 5
    # One summary card, on the first option; the others are listed in its detail by anchor.
    summary = cards[0]
    first = [r.id for r in expected.recommendations if r.rank == 1]
    if first:
        assert summary["source"]["topic"]["code"] == first[0]
        assert summary["source"]["url"].endswith(f"/guideline#rec-{first[0]}")
        for rec in expected.recommendations[len(first) :]:
            assert f"#rec-{rec.id})" in summary["detail"]
    else:
        assert summary["source"]["topic"]["code"] == "no-recommendation"


SIGN = "/cds-services/myoguide-order-sign"
# First choices drafted as new orders: an IVIG course total, a prednisone floor, a range and an
# upper limit (a raised prednisone range is an in-use drug, not drafted).
DRAFTED = (
    "vignette-resistant-rituximab-failed",
    "vignette-r4-off-all",
    "vignette-resistant-after-rtx-ivig",
)


@pytest.mark.parametrize("name", DRAFTED)
def test_own_drafts_carry_a_route_and_a_dose_an_ehr_can_sign(name: str, server: Any) -> None:
    from helpers import draft_orders, drafted_requests

    state = CASES[name]["input"]
    today = dt.datetime.now(dt.UTC).date()
    patient_id, prefetch = prefetch_from(inverse.state_to_bundle(state, today))
    res = server.post(PV, hook_request("patient-view", patient_id, prefetch))
    assert res.status_code == 200, res.text
    drafts = drafted_requests(check_cards(res.json()))
    names = [d["medicationCodeableConcept"]["text"] for d in drafts]
    assert drafts
    if name == "vignette-resistant-rituximab-failed":
        assert "Intravenous immune globulin (IVIG)" in names
    for draft in drafts:
        dosage = draft["dosageInstruction"][0]
        coding = dosage["route"]["coding"][0]
        assert coding["system"] == "http://snomed.info/sct"
        assert coding["code"] in {"26643006", "47625008"}
        assert not any("doseRange" in rate for rate in dosage.get("doseAndRate", []))
        if "doseAndRate" not in dosage:
            assert "No dose" in dosage["text"]
        if draft["medicationCodeableConcept"]["text"].startswith("Intravenous immune"):
            # The monthly course is not one infusion: its amount per infusion is left open.
            assert "doseAndRate" not in dosage
            assert "per course" in dosage["text"]
        # Signing the draft as drafted raises no critical card.
        body = hook_request(
            "order-sign", patient_id, prefetch, draftOrders=draft_orders({**draft, "id": "own"})
        )
        signed = server.post(SIGN, body)
        assert signed.status_code == 200, signed.text
        assert not [c for c in check_cards(signed.json()) if c["indicator"] == "critical"]
