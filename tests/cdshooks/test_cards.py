"""The patient-view card says alternatives as alternatives (knowledge `choose_one`)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from myoguide.adapters.cdshooks.cards import patient_view_cards
from myoguide.adapters.fhir.plandefinition import plandefinition_bundle
from myoguide.bootstrap import default_service
from myoguide.domain.result import Dose, RecommendationSet

VIGNETTES = Path(__file__).resolve().parents[1] / "vignettes"
SERVICE = default_service()


def _cards(name: str) -> list[dict[str, Any]]:
    state = json.loads((VIGNETTES / f"{name}.json").read_text())["input"]
    result = SERVICE.recommend(state)
    return patient_view_cards(
        result, SERVICE.knowledge, patient_id="p1", base_url="https://myoguide.test"
    )


def test_r1_says_azathioprine_or_methotrexate() -> None:
    card = _cards("r1-lb-weight")[0]
    assert (
        "first choice start Azathioprine or start Methotrexate; raise Prednisone"
        in (card["summary"])
    )
    # The source gives no starting dose for either, so nothing is drafted for them.
    assert "suggestions" not in card


def _with_doses(result: RecommendationSet) -> RecommendationSet:
    """The R1 answer as if its alternatives had doses, so that drafts are made for them."""
    dose = Dose(Decimal(50), Decimal(50), "mg", "day", "50 mg/day (test)")
    recs = tuple(
        msgspec.structs.replace(
            r,
            agents=tuple(
                msgspec.structs.replace(a, dose=dose) if a.agent in r.choose_one else a
                for a in r.agents
            ),
        )
        for r in result.recommendations
    )
    return msgspec.structs.replace(result, recommendations=recs)


def test_drafts_of_alternatives_recommend_neither_and_allow_one() -> None:
    state = json.loads((VIGNETTES / "r1-lb-weight.json").read_text())["input"]
    result = _with_doses(SERVICE.recommend(state))
    card = patient_view_cards(
        result, SERVICE.knowledge, patient_id="p1", base_url="https://myoguide.test"
    )[0]
    drafts = card["suggestions"]
    assert [s["label"] for s in drafts] == [
        "Draft Azathioprine 50 mg/day (or Methotrexate)",
        "Draft Methotrexate 50 mg/day (or Azathioprine)",
    ]
    # The source ranks neither above the other, and one is added, not both.
    assert not any(s["isRecommended"] for s in drafts)
    assert card["selectionBehavior"] == "at-most-one"


def test_one_alternative_left_is_no_longer_an_alternative() -> None:
    state = json.loads((VIGNETTES / "r1-aza-failed.json").read_text())["input"]
    rec = next(r for r in SERVICE.recommend(state).recommendations if r.choose_one == ())
    assert rec.id == "r1_add_sparing_agent"
    card = _cards("r1-aza-failed")[0]
    assert " or start" not in card["summary"]


def test_the_plandefinition_groups_the_alternatives_exactly_one() -> None:
    plan = next(
        e["resource"]
        for e in plandefinition_bundle(SERVICE.knowledge)["entry"]
        if e["resource"]["resourceType"] == "PlanDefinition"
    )

    def walk(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for a in actions:
            out.append(a)
            out += walk(a.get("action", []))
        return out

    def rec_code(action: dict[str, Any]) -> str:
        return next(
            c["coding"][0]["code"]
            for c in action["code"]
            if c["coding"][0]["system"].endswith("recommendation")
        )

    holders = [
        a
        for a in walk(plan["action"])
        if any(sub["id"].endswith("-one-of") for sub in a.get("action", []))
    ]
    # Scenario 1 (shown again at the 10 mg boundary) and scenario 4: AZA or MTX.
    assert sorted(rec_code(a) for a in holders) == [
        "r1_add_sparing_agent",
        "r1_add_sparing_agent",
        "r4_sparing_agent",
    ]
    for a in holders:
        group = next(sub for sub in a["action"] if sub["id"].endswith("-one-of"))
        assert group["selectionBehavior"] == "exactly-one"
        names = [leaf["definitionCanonical"].rsplit("-", 1)[-1] for leaf in group["action"]]
        assert names == ["azathioprine", "methotrexate"]


def test_the_summary_card_names_the_first_choices_label_checks() -> None:
    # Rituximab first: its label's checks are one line of the card's detail, marked outside the
    # review (the page lists them in full with their sources).
    detail = _cards("resistant-pm-ivig")[0]["detail"]
    lines = [line for line in detail.splitlines() if "Label checks" in line]
    assert lines == [
        "- Label checks (outside the review) - before starting Rituximab: hepatitis B screening"
        " (boxed) | while taking: infusion reactions (boxed)"
    ]
