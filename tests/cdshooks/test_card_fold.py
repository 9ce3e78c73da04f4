"""The summary card folds the ladder beneath "manage as resistant disease" in words (issue 18.6)."""

from __future__ import annotations

import json
from pathlib import Path

from myoguide.adapters.cdshooks.cards import patient_view_cards
from myoguide.bootstrap import default_service

VIGNETTES = Path(__file__).resolve().parents[1] / "vignettes"
SERVICE = default_service()


def _detail_and_result(name: str) -> tuple[list[str], list[dict[str, object]]]:
    state = json.loads((VIGNETTES / f"{name}.json").read_text())["input"]
    result = SERVICE.recommend(state)
    card = patient_view_cards(
        result, SERVICE.knowledge, patient_id="p1", base_url="https://myoguide.test"
    )[0]
    recs = json.loads(
        json.dumps([r.__struct_fields__ and _asdict(r) for r in result.recommendations])
    )
    return card["detail"].splitlines(), recs


def _asdict(rec: object) -> dict[str, object]:
    return {f: getattr(rec, f) for f in ("id", "rank", "under", "after")}


def test_r1_card_nests_the_ladder_under_a_line_in_words() -> None:
    lines, recs = _detail_and_result("r1-lb-weight")
    folded = [r for r in recs if r["under"] == "r1_manage_as_resistant"]
    assert folded, "the JSON answer folds the ladder (under)"
    head = lines.index("- Beneath option 1 (Manage as resistant disease), in the source's order:")
    nested = lines[head + 1 : head + 1 + len(folded)]
    assert all(line.startswith("  - Option ") for line in nested), nested
    assert "Rituximab" in nested[0]
    # Nothing of the ladder is left flat beside the first choices.
    assert not [line for line in lines if line.startswith("- Option ")]


def test_a_condition_shared_by_the_folded_options_is_said_once() -> None:
    lines, recs = _detail_and_result("r1-alt-dx-not-excluded")
    after = {r["after"] for r in recs if r["under"]}
    assert len(after) == 1
    (condition,) = after
    said = [line for line in lines if condition in str(line)]
    assert said == [f"  When they apply: {condition}"]
