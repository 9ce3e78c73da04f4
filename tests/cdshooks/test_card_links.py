"""The summary card's link: the chart's hand-off when there is one, else the blank form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from myoguide.adapters.cdshooks.cards import gets_cards, patient_view_cards
from myoguide.bootstrap import default_service
from myoguide.domain.result import RecommendationSet, Warning

VIGNETTES = Path(__file__).resolve().parents[1] / "vignettes"
SERVICE = default_service()
BASE = "https://myoguide.test"


def _result(name: str) -> RecommendationSet:
    return SERVICE.recommend(json.loads((VIGNETTES / f"{name}.json").read_text())["input"])


def _cards(result: RecommendationSet, token: str | None) -> list[dict[str, Any]]:
    return patient_view_cards(
        result,
        SERVICE.knowledge,
        patient_id="pat-4711",
        base_url=BASE,
        data_warnings=[("weight_missing", "no weight")],
        chart_token=token,
    )


def test_the_summary_card_links_to_its_hand_off_and_no_other_card_links() -> None:
    cards = _cards(_result("r1-lb-weight"), "tok_EN-123")
    assert cards[0]["links"] == [
        {
            "label": "Open this patient's assessment in myoguide",
            "url": f"{BASE}/assess?chart=tok_EN-123",
            "type": "absolute",
        }
    ]
    assert len(cards) > 1
    assert all("links" not in c for c in cards[1:])
    assert "pat-4711" not in json.dumps(cards[0]["links"])


def test_without_a_hand_off_the_link_opens_the_blank_form() -> None:
    cards = _cards(_result("r1-lb-weight"), None)
    assert cards[0]["links"] == [
        {"label": "Open the myoguide assessment", "url": f"{BASE}/assess", "type": "absolute"}
    ]


def test_a_no_recommendation_summary_links_to_its_hand_off_too() -> None:
    result = msgspec.structs.replace(_result("r1-lb-weight"), recommendations=())
    card = _cards(result, "tok")[0]
    assert card["source"]["topic"]["code"] == "no-recommendation"
    assert card["links"][0]["url"] == f"{BASE}/assess?chart=tok"


def test_a_patient_without_dm_or_pm_gets_no_card_and_so_no_link() -> None:
    result = _result("r1-lb-weight")
    other = msgspec.structs.replace(
        result, warnings=(Warning("out_of_scope_ibm", "inclusion body myositis"),)
    )
    assert gets_cards(result, SERVICE.knowledge)
    assert not gets_cards(other, SERVICE.knowledge)
    assert _cards(other, "tok") == []
