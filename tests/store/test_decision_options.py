"""Issue 22: a decision's chosen option must be one the answer offered."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from myoguide.adapters.store import RecordStore, make_engine

SHOWN = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
RESULT = {"course": "resistant", "scenario": None, "recommendations": [{"id": "r1"}, {"id": "r2"}]}


def test_only_offered_options_can_be_chosen(migrated_url: str) -> None:
    records = RecordStore(make_engine(migrated_url))
    patient = records.add_patient("D-1")
    answer = records.log_answer(patient.id, None, {"age_years": 50}, RESULT, "kv", SHOWN)
    with pytest.raises(
        ValueError, match=r"chosen_recommendation: 'ivig' is not an option .*r1, r2"
    ):
        records.record_decision(answer, "chose_other", "ivig", None, SHOWN)
    with pytest.raises(ValueError, match="chosen_recommendation"):
        records.record_decision(answer, "accepted", "r9", None, SHOWN)
    assert records.record_decision(answer, "chose_other", "r2", None, SHOWN) > 0
    decided = records.timeline(patient.id).answers[0].decisions
    assert [d.chosen_recommendation for d in decided] == ["r2"]
