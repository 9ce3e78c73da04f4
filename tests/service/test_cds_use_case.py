"""The CDS Hooks use case without HTTP: a fake gatherer hands it a record, it says what it means."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from myoguide.adapters.fhir.drafts import read_draft_order
from myoguide.bootstrap import read_fhir
from myoguide.domain.engine import Engine
from myoguide.domain.orders import draftable
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.terminology import load_packaged_terminology
from myoguide.service import HOOK_BY_ID, HOOKS, CdsHooks, Gathered, PrefetchMissing, Service
from myoguide.service.ports import Unread

BUNDLES = Path(__file__).resolve().parents[1] / "fhir" / "bundles"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
KB = load_packaged()


class FixedClock:
    """Today is the day the test bundle was written for."""

    def __init__(self, day: dt.date) -> None:
        self.day = day

    def today(self) -> dt.date:
        return self.day

    def now(self) -> dt.datetime:
        return dt.datetime.combine(self.day, dt.time(12), dt.UTC)


class FakeGatherer:
    """A RecordGatherer that hands over a fixed record and counts the calls it gathered for."""

    templates: Mapping[str, str] = {"patient": "Patient/{{context.patientId}}"}

    def __init__(self, gathered: Gathered) -> None:
        self.gathered = gathered
        self.calls: list[Mapping[str, Any]] = []

    def gather(self, call: Mapping[str, Any]) -> Gathered:
        self.calls.append(call)
        return self.gathered


def _use_case(name: str, unread: tuple[Unread, ...] = ()) -> tuple[CdsHooks, FakeGatherer]:
    doc = json.loads((BUNDLES / f"{name}.json").read_text())
    clock = FixedClock(dt.date.fromisoformat(doc["evaluation_date"]))
    service = Service(KB, Engine(KB, load_packaged_terminology()), reader=read_fhir, clock=clock)
    gatherer = FakeGatherer(Gathered(doc["bundle"], (), unread))
    return CdsHooks(service, gatherer, read_draft_order), gatherer


def _order(rid: str, rxnorm: str, value: float, unit: str, per: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm}]},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": per}},
                "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}],
            }
        ],
    }


def _call(**context: Any) -> dict[str, Any]:
    return {"context": {"patientId": "pat-1", **context}}


def _drafts(*orders: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": o} for o in orders],
    }


def test_the_hook_table_names_each_service_once_and_routes_to_its_handler() -> None:
    assert [h.id for h in HOOKS] == list(HOOK_BY_ID)
    assert len({h.id for h in HOOKS}) == len({h.hook for h in HOOKS}) == len(HOOKS)
    cds, _ = _use_case("resistant-dm")
    answer = cds.answer(_call(), "myoguide-patient-view")
    assert answer.result is not None
    assert answer.findings == ()
    with pytest.raises(KeyError):
        cds.answer(_call(), "myoguide-no-such-service")


def test_patient_view_answers_the_chart_and_says_which_drugs_may_be_drafted() -> None:
    cds, gatherer = _use_case("resistant-dm")
    answer = cds.answer(_call(), "myoguide-patient-view")
    assert len(gatherer.calls) == 1
    assert answer.result is not None
    assert answer.state is not None
    assert answer.myositis
    first = [r for r in answer.result.recommendations if r.rank == 1]
    assert first, "resistant DM has a first choice"
    assert answer.drafts == draftable(first)
    for draft in answer.drafts:
        assert draft.agent.dose is not None
        assert not draft.agent.in_use


def test_an_order_for_no_guideline_drug_reads_no_chart() -> None:
    cds, gatherer = _use_case("resistant-dm")
    paracetamol = _order("mr-x", "161", 1000, "mg", "d")
    answer = cds.answer(_call(draftOrders=_drafts(paracetamol)), "myoguide-order-sign")
    assert gatherer.calls == []
    assert not answer.myositis
    assert answer.findings == ()


def test_order_sign_judges_every_draft_and_order_select_only_the_selected() -> None:
    cds, _ = _use_case("resistant-dm")
    mtx = _order("mr-mtx-high", "6851", 40, "mg", "wk")
    aza = _order("mr-aza", "1256", 100, "mg", "d")
    signed = cds.answer(_call(draftOrders=_drafts(mtx, aza)), "myoguide-order-sign")
    keys = {f.key for f in signed.findings}
    assert any(k.endswith("MedicationRequest/mr-mtx-high") for k in keys), keys
    selected = cds.answer(
        _call(draftOrders=_drafts(mtx, aza), selections=["MedicationRequest/mr-aza"]),
        "myoguide-order-select",
    )
    assert not any("mr-mtx-high" in f.key for f in selected.findings)


def test_a_draft_is_read_as_a_draft_with_its_weekly_dose() -> None:
    cds, _ = _use_case("resistant-dm")
    mtx = _order("mr-mtx", "6851", 15, "mg", "wk")
    (order,) = cds.draft_orders(_call(draftOrders=_drafts(mtx))["context"], selected_only=False)
    assert (order.reference, order.agent, order.mg_per_week) == (
        "MedicationRequest/mr-mtx",
        "methotrexate",
        15,
    )
    refused = {**mtx, "doNotPerform": True}
    assert (
        cds.draft_orders(_call(draftOrders=_drafts(refused))["context"], selected_only=False) == []
    )


def test_an_unread_patient_or_problem_list_is_refused_not_guessed() -> None:
    cds, _ = _use_case("resistant-dm", (Unread("conditions", "the problem list"),))
    with pytest.raises(PrefetchMissing, match="the problem list could not be read"):
        cds.answer(_call(), "myoguide-patient-view")


def test_unread_medications_are_never_read_as_no_medication() -> None:
    lost = (Unread("medications", "medication orders"), Unread("measurements", "body weight"))
    cds, _ = _use_case("resistant-dm", lost)
    answer = cds.answer(_call(), "myoguide-patient-view")
    assert answer.state is not None
    assert "medication orders not read" in answer.state.unresolved_medications
    assert "body weight not read" not in answer.state.unresolved_medications
