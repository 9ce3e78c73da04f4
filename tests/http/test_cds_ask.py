"""Issue 17 items 8 and 9 through a real CDS server on loopback, with signed calls.

A Synthea-shaped chart that does not say control or flare gets a card that asks, linked to the
form filled from the chart; a draft whose Medication is inside draftOrders is judged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from helpers import check_cards, draft_orders, hook_request, load_bundle, prefetch_from

PV = "/cds-services/myoguide-patient-view"
SIGN = "/cds-services/myoguide-order-sign"
CHARTS = Path(__file__).resolve().parents[1] / "fhir" / "charts"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def test_a_chart_that_cannot_tell_control_or_flare_gets_a_card_that_asks(server: Any) -> None:
    bundle = json.loads((CHARTS / "synthea-condition-plain-active.json").read_text())["bundle"]
    patient_id, prefetch = prefetch_from(bundle)
    res = server.post(PV, hook_request("patient-view", patient_id, prefetch))
    assert res.status_code == 200, res.text
    cards = check_cards(res.json())
    ask = cards[0]
    assert ask["summary"].startswith("myoguide: facts needed"), ask["summary"]
    assert all("outside this guideline" not in c["summary"] + c["detail"] for c in cards)
    assert "Is it flaring now" in ask["detail"]
    assert "In use: Prednisone" in ask["detail"]
    (link,) = ask["links"]
    url = urlsplit(link["url"])
    assert url.path == "/assess"
    assert parse_qs(url.query).keys() == {"chart"}  # the page filled from this chart
    assert patient_id not in link["url"]


def test_order_sign_reads_a_medication_inside_draft_orders(server: Any) -> None:
    patient_id, prefetch = prefetch_from(load_bundle("resistant-dm")["bundle"])
    medication = {
        "resourceType": "Medication",
        "id": "med-mtx",
        "code": {"coding": [{"system": RXNORM, "code": "6851", "display": "methotrexate"}]},
    }
    draft = {
        "resourceType": "MedicationRequest",
        "id": "mr-new",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationReference": {"reference": "Medication/med-mtx"},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
                "doseAndRate": [{"doseQuantity": {"value": 30, "unit": "mg"}}],
            }
        ],
    }
    body = hook_request(
        "order-sign", patient_id, prefetch, draftOrders=draft_orders(draft, medication)
    )
    res = server.post(SIGN, body)
    assert res.status_code == 200, res.text
    critical = [c for c in check_cards(res.json()) if c["indicator"] == "critical"]
    assert len(critical) == 1, critical
    assert "Methotrexate 30 mg/week is above the stated maximum" in critical[0]["summary"]
