"""Course agents read from a chart per infusion, through a real CDS server on loopback.

A rituximab order of 1 g, two infusions two weeks apart, with both infusions recorded, is
rituximab 1 g per infusion given last on the second infusion's date: never "1 g/day".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers import check_cards, hook_request, prefetch_from

PV = "/cds-services/myoguide-patient-view"
CHART = Path(__file__).resolve().parents[1] / "fhir" / "charts" / "course-rituximab-infusions.json"
# The chart's rituximab spread over days or weeks, as it was read before (the regimens' own
# arithmetic, "1 g/dose (fixed)", is the engine's and not the chart's).
PER_DAY = ("Rituximab 1 g/", "Rituximab 1000 mg/", "0.5 g/week", "1 g/day", "1000 mg/day")


def cards_for(server: Any, bundle: dict[str, Any]) -> list[dict[str, Any]]:
    patient_id, prefetch = prefetch_from(bundle)
    res = server.post(PV, hook_request("patient-view", patient_id, prefetch))
    assert res.status_code == 200, res.text
    cards = check_cards(res.json())
    text = json.dumps(cards)
    for wrong in PER_DAY:
        assert wrong not in text, wrong
    return cards


def test_rituximab_in_use_is_a_course_given_on_its_last_date(server: Any) -> None:
    bundle = json.loads(CHART.read_text(encoding="utf-8"))["bundle"]
    cards = cards_for(server, bundle)
    first = cards[0]
    assert first["summary"] == "myoguide: Resistant disease: first choice Rituximab"
    assert "2026-05-18" in first["detail"]


def test_the_card_that_asks_says_rituximab_1_g_per_infusion(server: Any) -> None:
    bundle = json.loads(CHART.read_text(encoding="utf-8"))["bundle"]
    # Without the failed azathioprine the chart cannot tell the course: the card asks, and
    # says what the chart does say.
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"].get("id") != "mr-aza"]
    ask = cards_for(server, bundle)[0]
    assert ask["summary"].startswith("myoguide: facts needed"), ask["summary"]
    assert "In use: Prednisone 10 mg/day; Rituximab 1 g per infusion" in ask["detail"]
