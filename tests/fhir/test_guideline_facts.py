"""The chart reader takes each agent's dose period and the flare boundary from the knowledge."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec

from myoguide.adapters.fhir import bundle_to_state
from myoguide.adapters.fhir.drafts import read_draft_order
from myoguide.knowledge.loader import load_packaged

KB = load_packaged()
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
DAY = dt.date(2026, 11, 1)


def _order(rxnorm: str, dose: dict[str, Any], per: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "mr-1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm}]},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": per}},
                "doseAndRate": [dose],
            }
        ],
    }


def _current(knowledge: Any, order: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}
    state = bundle_to_state(bundle, evaluation_date=DAY, knowledge=knowledge).state
    meds: list[dict[str, Any]] = state["current_medications"]
    return meds


def test_a_dose_is_read_per_the_period_the_knowledge_gives_the_agent() -> None:
    daily_mmf = _order("68149", {"doseQuantity": {"value": 1000, "unit": "mg"}}, "d")
    assert _current(KB, daily_mmf) == [
        {"agent": "mycophenolate_mofetil", "dose": {"value": 1000, "unit": "mg/day"}}
    ]
    # Give mycophenolate a weekly period in the knowledge alone: the reader follows it.
    agents = tuple(
        msgspec.structs.replace(a, dose_period="week") if a.id == "mycophenolate_mofetil" else a
        for a in KB.agents
    )
    weekly = msgspec.structs.replace(KB, agents=agents)
    assert _current(weekly, daily_mmf) == [
        {"agent": "mycophenolate_mofetil", "dose": {"value": 7000, "unit": "mg/week"}}
    ]
    draft = read_draft_order(daily_mmf, rxnorm_to_agent={}, evaluation_date=DAY, knowledge=weekly)
    assert draft == {"agent": "mycophenolate_mofetil", "dose": {"value": 7000, "unit": "mg/week"}}


def test_a_prednisone_range_is_checked_against_the_knowledges_flare_boundary() -> None:
    span = {"doseRange": {"low": {"value": 15, "unit": "mg"}, "high": {"value": 30, "unit": "mg"}}}
    order = _order("8640", span, "d")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}

    def says_boundary(knowledge: Any) -> bool:
        warnings = bundle_to_state(bundle, evaluation_date=DAY, knowledge=knowledge).warnings
        return any("boundary" in w.message for w in warnings)

    assert not says_boundary(KB)  # 15 to 30 mg/day does not span 10
    thresholds = msgspec.structs.replace(
        KB.thresholds, prednisone_flare_boundary_mg_per_day=Decimal(20)
    )
    assert says_boundary(msgspec.structs.replace(KB, thresholds=thresholds))
