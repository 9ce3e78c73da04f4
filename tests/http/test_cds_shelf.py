"""A shelf of realistic CDS Hooks requests, each with its expected cards, answered in process.

Prefetch comes in each shape an EHR sends: paged, partial, with an OperationOutcome, with
_include'd Medications, product-coded drugs. Every response passes the CDS Hooks rules check,
every drafted MedicationRequest validates as FHIR and passes the service's own order-sign.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.medicationrequest import MedicationRequest
from helpers import (
    check_cards,
    draft_orders,
    drafted_requests,
    hook_request,
    load_bundle,
    medication_request,
    prefetch_from,
    terminology_codes,
)

from myoguide.adapters.clock import SystemClock
from myoguide.adapters.fhir.drafts import read_draft_order
from myoguide.adapters.fhir.gather import FhirGatherer, prefetch_templates
from myoguide.adapters.http.app import AppDeps, HttpSettings, create_app
from myoguide.adapters.store import make_engine, upgrade
from myoguide.adapters.store.cards import StoreCardRegistry
from myoguide.adapters.store.sink import StoreFeedbackSink
from myoguide.service import CdsHooks, Feedback, Service

PV = "/cds-services/myoguide-patient-view"
SIGN = "/cds-services/myoguide-order-sign"
SERVER = "https://ehr.example.org/fhir"
Reads = dict[str, Mapping[str, Any]]


class FakeFhir:
    """The FhirClient port answering from a dict of queries, counting what was asked."""

    def __init__(self, answers: Reads | None = None) -> None:
        self.answers = answers or {}
        self.asked: list[str] = []

    def read(self, base_url: str, query: str, access_token: str | None) -> Mapping[str, Any]:
        """Return the answer whose key starts the query, or raise LookupError."""
        self.asked.append(query)
        for key, value in self.answers.items():
            if query.startswith(key):
                return value
        raise LookupError("HTTP 404")


def _app(
    service: Service, fhir: FakeFhir, url: str | None = None, max_body: int = 1_000_000
) -> TestClient:
    registry = feedback = None
    if url is not None:
        upgrade(url)
        registry = StoreCardRegistry(make_engine(url), SystemClock())
        sink = StoreFeedbackSink.open(url)
        feedback = Feedback(sink, service.knowledge.knowledge_version, SystemClock())
    deps = AppDeps(
        service,
        CdsHooks(
            service,
            FhirGatherer(fhir, prefetch_templates(*terminology_codes())),
            read_draft_order,
        ),
        None,
        feedback,
        settings=HttpSettings(max_body_bytes=max_body),
        registry=registry,
    )
    return TestClient(create_app(deps), base_url="http://myoguide.test")


@pytest.fixture(scope="module")
def client(service: Service) -> TestClient:
    return _app(service, FakeFhir())


def _resistant() -> tuple[str, dict[str, Any]]:
    return prefetch_from(load_bundle("resistant-dm")["bundle"])


def _pv(client: TestClient, prefetch: dict[str, Any] | None, **extra: Any) -> list[dict[str, Any]]:
    body = hook_request("patient-view", "p1", prefetch)
    body.update(extra)
    res = client.post(PV, json=body)
    assert res.status_code == 200, res.text
    return check_cards(res.json())


def _topics(cards: list[dict[str, Any]]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in cards]


def _outcome() -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "not permitted"}],
    }


# ---- the shelf: request shape -> expected cards -------------------------------------------


def _no_myositis() -> dict[str, Any]:
    _, prefetch = _resistant()
    prefetch["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    return prefetch


def _unrelated_drugs_only() -> dict[str, Any]:
    prefetch = _no_myositis()
    prefetch["medicationRequests"]["entry"] = [
        {"resource": medication_request(f"x{i}", "197361", 5, "mg", "d") | {"status": "active"}}
        for i in range(20)
    ]
    return prefetch


def _meds_operation_outcome() -> dict[str, Any]:
    _, prefetch = _resistant()
    prefetch["medicationRequests"] = _outcome()
    return prefetch


def _partial_searchset_outcome() -> dict[str, Any]:
    _, prefetch = _resistant()
    entry = {"resource": _outcome(), "search": {"mode": "outcome"}}
    prefetch["medicationStatements"]["entry"].append(entry)
    return prefetch


def _paged_without_server() -> dict[str, Any]:
    _, prefetch = _resistant()
    prefetch["medicationRequests"]["link"] = [
        {"relation": "next", "url": f"{SERVER}/MedicationRequest?page=2"}
    ]
    return prefetch


def _product_coded_include() -> dict[str, Any]:
    # Methotrexate 2.5 MG Oral Tablet by reference, the Medication _include'd beside the order.
    _, prefetch = _resistant()
    med = {
        "resourceType": "Medication",
        "id": "mtx-tab",
        "code": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "105585"}]
        },
    }
    entries = prefetch["medicationRequests"]["entry"]
    for e in entries:
        res = e["resource"]
        if res.get("resourceType") == "MedicationRequest":
            res.pop("medicationCodeableConcept", None)
            res["medicationReference"] = {"reference": "Medication/mtx-tab"}
            break
    entries.append({"resource": med, "search": {"mode": "include"}})
    return prefetch


Expect = Callable[[list[dict[str, Any]]], None]


def _quiet(cards: list[dict[str, Any]]) -> None:
    assert cards == []


def _unavailable(cards: list[dict[str, Any]]) -> None:
    # Unread medication is never "none": the engine is told and the card says what was lost.
    assert 1 <= len(cards) <= 5
    text = " ".join(c["detail"] for c in cards)
    assert "not read" in text or "could not be read" in text
    assert _topics(cards)[-1] == "data-quality"


def _resistant_summary(cards: list[dict[str, Any]]) -> None:
    assert _topics(cards)[0] == "resistant_rituximab"
    assert len(cards) <= 3


SHELF: dict[str, tuple[Callable[[], dict[str, Any]], Expect]] = {
    "no-myositis": (_no_myositis, _quiet),
    "unrelated-drugs-only": (_unrelated_drugs_only, _quiet),
    "meds-operation-outcome": (_meds_operation_outcome, _unavailable),
    "searchset-with-error-outcome": (_partial_searchset_outcome, _unavailable),
    "paged-without-server": (_paged_without_server, _unavailable),
    "product-coded-include": (_product_coded_include, _resistant_summary),
    "resistant-complete": (lambda: _resistant()[1], _resistant_summary),
}


@pytest.mark.parametrize("name", sorted(SHELF))
def test_shelf(name: str, client: TestClient) -> None:
    build, expect = SHELF[name]
    expect(_pv(client, build()))


def test_conditions_unavailable_is_412(client: TestClient) -> None:
    _, prefetch = _resistant()
    prefetch["conditions"] = _outcome()
    res = client.post(PV, json=hook_request("patient-view", "p1", prefetch))
    assert res.status_code == 412
    assert "problem list" in res.json()["detail"]


def test_pages_are_followed_and_bounded(service: Service) -> None:
    _, prefetch = _resistant()
    first = prefetch["medicationRequests"]
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    # Page 2 holds the orders; page 1 only points to it.
    page2 = copy.deepcopy(first)
    prefetch["medicationRequests"] = dict(empty, link=[{"relation": "next", "url": SERVER + "/p2"}])
    fhir = FakeFhir({"p2": page2})
    cards = _pv(_app(service, fhir), prefetch, fhirServer=SERVER)
    assert fhir.asked == ["p2"]
    assert _topics(cards)[0] == "resistant_rituximab"
    # A result that never ends: the page it repeats is read once, then said in the card.
    looping = dict(empty, link=[{"relation": "next", "url": SERVER + "/again"}])
    fhir = FakeFhir({"again": looping})
    prefetch["medicationRequests"] = looping
    cards = _pv(_app(service, fhir), prefetch, fhirServer=SERVER)
    assert fhir.asked == ["again"]
    assert "listed the same page of medication orders twice" in cards[-1]["detail"]
    # A next link to another host is not followed (the token would travel there).
    prefetch["medicationRequests"] = dict(
        empty, link=[{"relation": "next", "url": "https://elsewhere.example/p2"}]
    )
    fhir = FakeFhir({"": page2})
    _unavailable(_pv(_app(service, fhir), prefetch, fhirServer=SERVER))
    assert fhir.asked == []


def test_medication_references_are_fetched(service: Service) -> None:
    prefetch = _product_coded_include()
    entries = prefetch["medicationRequests"]["entry"]
    med = entries.pop()["resource"]
    fhir = FakeFhir({"Medication/mtx-tab": med})
    cards = _pv(_app(service, fhir), prefetch, fhirServer=SERVER)
    assert "Medication/mtx-tab" in fhir.asked
    assert _topics(cards)[0] == "resistant_rituximab"


def test_missing_keys_are_fetched_and_an_outcome_answer_is_unavailable(service: Service) -> None:
    _, prefetch = _resistant()
    del prefetch["allergies"]
    del prefetch["medicationAdministrations"]
    fhir = FakeFhir({"AllergyIntolerance": _outcome(), "MedicationAdministration": {}})
    cards = _pv(_app(service, fhir), prefetch, fhirServer=SERVER)
    assert any(q.startswith("AllergyIntolerance?patient=p1") for q in fhir.asked)
    _unavailable(cards)


# ---- orders -------------------------------------------------------------------------------


def _sign(client: TestClient, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    patient_id, prefetch = _resistant()
    body = hook_request("order-sign", patient_id, prefetch, draftOrders=draft_orders(*requests))
    res = client.post(SIGN, json=body)
    assert res.status_code == 200, res.text
    return check_cards(res.json())


def _every_draft(client: TestClient) -> list[dict[str, Any]]:
    drafts = []
    for name in ("resistant-dm", "flare-above-10mg", "flare-below-10mg", "ild-refractory"):
        patient_id, prefetch = prefetch_from(load_bundle(name)["bundle"])
        res = client.post(PV, json=hook_request("patient-view", patient_id, prefetch))
        drafts += drafted_requests(check_cards(res.json()))
    assert drafts
    return drafts


def test_own_drafts_are_valid_fhir_and_pass_order_sign(client: TestClient) -> None:
    for draft in _every_draft(client):
        MedicationRequest.model_validate(draft)
        timing = draft["dosageInstruction"][0]["timing"]["repeat"]
        assert timing.get("frequency")
        assert timing.get("periodUnit")
        signed = _sign(client, {**draft, "id": "own"})
        assert not [c for c in signed if c["indicator"] == "critical"], signed


def test_order_without_guideline_drug_is_quiet(client: TestClient) -> None:
    assert _sign(client, medication_request("x", "197361", 5, "mg", "d")) == []


def test_dose_not_read_is_said(client: TestClient) -> None:
    order = medication_request("m1", "6851", 20, "mg", "wk")
    order["dosageInstruction"] = [{"text": "as directed"}]
    cards = _sign(client, order)
    assert any("dose not checked" in c["summary"] for c in cards)


def test_range_high_end_is_checked(client: TestClient) -> None:
    order = medication_request("m1", "6851", 20, "mg", "wk")
    unit = {"unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
    order["dosageInstruction"][0]["doseAndRate"] = [
        {"doseRange": {"low": {"value": 15, **unit}, "high": {"value": 30, **unit}}}
    ]
    cards = _sign(client, order)
    assert [c for c in cards if c["indicator"] == "critical" and "30 mg/week" in c["summary"]]


def test_twelve_thousand_unreadable_orders_make_few_cards(service: Service) -> None:
    client = _app(service, FakeFhir(), max_body=20_000_000)
    bad = medication_request("m", "6851", 20, "mg", "wk")
    bad["dosageInstruction"] = [{"text": "?"}]
    over = medication_request("o", "6851", 40, "mg", "wk")
    orders = [{**bad, "id": f"b{i}"} for i in range(12_000)] + [over]
    cards = _sign(client, *orders)
    assert len(cards) <= 8
    assert cards[0]["indicator"] == "critical"
    assert any(c["summary"].startswith("12000 orders") for c in cards)


# ---- one truth for every worker -----------------------------------------------------------


def test_feedback_finds_its_card_after_a_restart(service: Service, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with _app(service, FakeFhir(), url) as first:
        card = _pv(first, _resistant()[1])[0]
    # Stopped: its queued cards were written at shutdown.
    # A second app on the same database: another worker, or the same after a restart.
    second = _app(service, FakeFhir(), url)
    stamp = dt.datetime.now(dt.UTC).isoformat()
    body = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": stamp,
                "overrideReason": {"userComment": "seen"},
            }
        ]
    }
    res = second.post(PV + "/feedback", json=body)
    assert res.json() == {"stored": 1}
    report = StoreFeedbackSink.open(url).report_text()
    assert "resistant_rituximab: myoguide: Resistant disease" in report
    assert "(summary not recorded)" not in report
