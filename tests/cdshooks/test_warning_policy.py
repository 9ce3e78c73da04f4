"""One warning policy (ADR 0015): the cards, the page and the audit read the knowledge's."""

from __future__ import annotations

import json
from pathlib import Path

from myoguide.adapters.cdshooks.cards import patient_view_cards
from myoguide.adapters.web.answer import summarize
from myoguide.bootstrap import default_service
from myoguide.domain.result import RecommendationSet
from myoguide.errors import InputError

VIGNETTES = Path(__file__).resolve().parents[1] / "vignettes"
SERVICE = default_service()
KB = SERVICE.knowledge


def _result(name: str) -> RecommendationSet:
    return SERVICE.recommend(json.loads((VIGNETTES / f"{name}.json").read_text())["input"])


def test_every_warning_the_knowledge_lists_carries_a_consistent_policy() -> None:
    for code, warning in KB.warnings.items():
        policy = warning.policy
        assert not (policy.card and policy.level == "note"), code
        assert KB.warning_policy(code) == policy
        assert KB.warning_policy(f"fhir.{code}") == policy
    # A reader's data problem the knowledge does not list is something to check, with no card.
    unlisted = KB.warning_policy("fhir.observation_unit_unknown")
    assert (unlisted.level, unlisted.card) == ("check", False)


def test_azathioprine_with_methotrexate_is_a_note_on_the_page_and_in_the_summary_card() -> None:
    result = _result("combination-at-maxima-active")
    warning = next(w for w in result.warnings if w.code == "aza_mtx_in_use")
    summary = summarize(result, KB)
    assert ("note", warning) in summary.notes
    cards = patient_view_cards(result, KB, patient_id="p", base_url="https://myoguide.test")
    topics = [c["source"]["topic"]["code"] for c in cards]
    assert "warning.aza_mtx_in_use" not in topics
    assert f"- {warning.message}" in cards[0]["detail"]


def test_a_warning_card_is_given_exactly_where_the_page_says_stop_or_check() -> None:
    for name in sorted(p.stem for p in VIGNETTES.glob("*.json")):
        doc = json.loads((VIGNETTES / f"{name}.json").read_text())
        try:
            result = SERVICE.recommend(doc.get("input"))
        except InputError:
            continue  # a vignette of refused input
        cards = patient_view_cards(result, KB, patient_id="p", base_url="https://myoguide.test")
        carded = {
            c["source"]["topic"]["code"].removeprefix("warning.")
            for c in cards
            if c["source"]["topic"]["code"].startswith("warning.")
        }
        levels = {w.code: lvl for lvl, w in summarize(result, KB).binding}
        for code in carded:
            assert KB.warning_policy(code).card, (name, code)
            assert levels[code] in ("stop", "check"), (name, code)
