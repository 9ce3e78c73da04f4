"""Issue 17 items 8 and 9 through the CDS use case with a fake gatherer, rendered as cards.

A chart that cannot tell control or flare gets a card that asks (never "outside this
guideline"); a draft whose Medication sits in draftOrders or in the prefetch is judged; an order
for a drug the chart records as failed or not tolerated gets a warning naming the record.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from test_cds_use_case import FakeGatherer, FixedClock

from myoguide.adapters.cdshooks.cards import order_cards, patient_view_cards
from myoguide.adapters.fhir.drafts import read_draft_order
from myoguide.bootstrap import read_fhir
from myoguide.domain.engine import Engine
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.terminology import load_packaged_terminology
from myoguide.service import CdsHooks, Gathered, Service

CHARTS = Path(__file__).resolve().parents[1] / "fhir" / "charts"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
KB = load_packaged()
TERMINOLOGY = load_packaged_terminology()
BASE = "https://myoguide.test"


def _chart(name: str) -> tuple[CdsHooks, FakeGatherer]:
    doc = json.loads((CHARTS / f"{name}.json").read_text())
    clock = FixedClock(dt.date.fromisoformat(doc["evaluation_date"]))
    service = Service(KB, Engine(KB, TERMINOLOGY), reader=read_fhir, clock=clock)
    gatherer = FakeGatherer(Gathered(doc["bundle"], (), ()))
    return CdsHooks(service, gatherer, read_draft_order), gatherer


def _mtx_by_reference(rid: str, target: str, mg_per_week: float) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationReference": {"reference": target},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
                "doseAndRate": [{"doseQuantity": {"value": mg_per_week, "unit": "mg"}}],
            }
        ],
    }


MTX_MEDICATION = {
    "resourceType": "Medication",
    "id": "med-mtx",
    "code": {"coding": [{"system": RXNORM, "code": "6851", "display": "methotrexate"}]},
}


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def test_a_chart_that_cannot_tell_control_or_flare_asks_with_what_it_says() -> None:
    cds, _ = _chart("synthea-condition-plain-active")
    answer = cds.answer({"context": {"patientId": "p"}}, "myoguide-patient-view")
    assert answer.result is not None
    assert answer.result.course == "out_of_scope"  # the engine chooses no course: not guessed
    assert not answer.result.recommendations
    cards = patient_view_cards(
        answer.result,
        KB,
        patient_id="p",
        base_url=BASE,
        data_warnings=answer.data_warnings,
        chart_token="tok123",
        state=answer.state,
    )
    ask = cards[0]
    assert ask["summary"].startswith("myoguide: facts needed"), ask["summary"]
    assert "controlled or flaring" in ask["summary"]
    text = ask["summary"] + ask["detail"]
    assert "outside this guideline" not in text
    assert "Was the disease ever brought under control?" in ask["detail"]
    assert "Is it flaring now" in ask["detail"]
    # What the chart does say: the diagnosis and the drug in use with its dose.
    assert "Diagnosis: dermatomyositis" in ask["detail"]
    assert "In use: Prednisone 5 mg/day" in ask["detail"]
    assert ask["links"] == [
        {
            "label": "Open this patient's assessment in myoguide",
            "url": f"{BASE}/assess?chart=tok123",
            "type": "absolute",
        }
    ]
    assert ask["source"]["topic"]["code"] == "facts-needed"


def test_out_of_scope_cards_say_why_in_words() -> None:
    cds, _ = _chart("synthea-deceased")
    answer = cds.answer({"context": {"patientId": "p"}}, "myoguide-patient-view")
    assert answer.result is not None
    cards = patient_view_cards(answer.result, KB, patient_id="p", base_url=BASE, state=answer.state)
    assert (
        cards[0]["summary"] == "myoguide: no recommendation: the record says the patient has died"
    )


def test_a_draft_whose_medication_is_in_draft_orders_is_judged() -> None:
    cds, gatherer = _chart("synthea-condition-plain-active")
    draft = _mtx_by_reference("mr-new", "urn:uuid:med-mtx", 30)
    call = {"context": {"patientId": "p", "draftOrders": _bundle(draft, MTX_MEDICATION)}}
    answer = cds.answer(call, "myoguide-order-sign")
    keys = {f.key for f in answer.findings}
    assert "over-maximum:MedicationRequest/mr-new" in keys, keys
    assert len(gatherer.calls) == 1  # the chart is read once, for the judging
    card = next(
        c
        for c in order_cards(answer.findings, KB, disclaimer="D", base_url=BASE)
        if c["indicator"] == "critical"
    )
    assert "Methotrexate 30 mg/week is above the stated maximum" in card["summary"]


def test_a_draft_whose_medication_is_only_in_the_prefetch_or_chart_is_judged() -> None:
    cds, _ = _chart("synthea-condition-plain-active")
    draft = _mtx_by_reference("mr-new", "Medication/med-mtx", 30)
    call = {
        "context": {"patientId": "p", "draftOrders": _bundle(draft)},
        "prefetch": {"medications": _bundle(MTX_MEDICATION)},
    }
    keys = {f.key for f in cds.answer(call, "myoguide-order-sign").findings}
    assert "over-maximum:MedicationRequest/mr-new" in keys, keys
    # Not in the call at all: the gathered chart is read for it.
    cds, gatherer = _chart("synthea-condition-plain-active")
    gatherer.gathered.bundle["entry"].append({"resource": MTX_MEDICATION})
    try:
        call = {"context": {"patientId": "p", "draftOrders": _bundle(draft)}}
        keys = {f.key for f in cds.answer(call, "myoguide-order-sign").findings}
    finally:
        gatherer.gathered.bundle["entry"].pop()
    assert "over-maximum:MedicationRequest/mr-new" in keys, keys
    assert len(gatherer.calls) == 1


def test_reordering_a_drug_recorded_as_not_tolerated_names_the_record() -> None:
    cds, _ = _chart("stopped-with-and-without-reason")
    draft = {
        "resourceType": "MedicationRequest",
        "id": "mr-again",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "6851"}]},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
                "doseAndRate": [{"doseQuantity": {"value": 15, "unit": "mg"}}],
            }
        ],
    }
    call = {"context": {"patientId": "p", "draftOrders": _bundle(draft)}}
    answer = cds.answer(call, "myoguide-order-sign")
    (finding,) = [f for f in answer.findings if f.key.startswith("reorder-failed:")]
    assert finding.indicator == "warning"
    assert (
        finding.summary
        == "Methotrexate is recorded as not tolerated: check before ordering it again"
    )
    # The record: the drug, what was recorded and where (its kind; its date when it has one).
    assert "methotrexate: stopped for intolerance" in finding.detail
    assert "recorded in a medication statement" in finding.detail
    assert "a medication statement" in finding.detail
    # Azathioprine stopped with no reason is not a failure: no such warning for it.
    aza = {
        **draft,
        "id": "mr-aza",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "1256"}]},
    }
    call = {"context": {"patientId": "p", "draftOrders": _bundle(aza)}}
    answer = cds.answer(call, "myoguide-order-sign")
    assert not [f for f in answer.findings if f.key.startswith("reorder-failed:")]
