"""One save per intent and decisions that stick, on SQLite and PostgreSQL (issue 21)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from myoguide.adapters.store import RecordStore
from myoguide.adapters.store.feedback import FeedbackStore, render_report
from myoguide.adapters.store.verify import verify_chain

SHOWN = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
KV = "2026.1"
STATE: dict[str, Any] = {"age_years": 58, "diagnosis": "dermatomyositis", "flare": True}


def result(*ranked: tuple[str, int]) -> dict[str, Any]:
    """Return an answer offering these (id, rank) options."""
    return {
        "knowledge_version": KV,
        "course": "recurrent",
        "recommendations": [
            {"id": rec_id, "rank": rank, "stance": "recommended", "agents": []}
            for rec_id, rank in ranked
        ],
    }


OFFERED = result(("raise_prednisone", 1), ("add_ivig", 2))
TIED = result(("raise_prednisone", 1), ("r2_raise_methotrexate", 1), ("add_ivig", 3))


def test_two_concurrent_saves_of_one_form_make_one_visit(engine: Engine) -> None:
    records = RecordStore(engine)
    patient = records.add_patient("once")
    key = "k" * 24
    start = threading.Barrier(2)
    got: list[tuple[int, int, bool]] = []
    failed: list[BaseException] = []

    def save() -> None:
        start.wait()
        try:
            got.append(
                records.save_visit_answer(
                    patient.id, date(2026, 12, 6), STATE, OFFERED, KV, SHOWN, key
                )
            )
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=save) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failed == []
    assert sorted(new for *_, new in got) == [False, True]
    assert len({(v, a) for v, a, _ in got}) == 1  # both got the one visit and its answer
    record = records.timeline(patient.id)
    assert len(record.visits) == 1
    assert len(record.visits[0].answers) == 1
    # Another form (another key) is another visit; no key at all never collides.
    records.save_visit_answer(patient.id, date(2026, 12, 6), STATE, OFFERED, KV, SHOWN, "m" * 24)
    records.save_visit_answer(patient.id, date(2026, 12, 6), STATE, OFFERED, KV, SHOWN, None)
    records.save_visit_answer(patient.id, date(2026, 12, 6), STATE, OFFERED, KV, SHOWN, None)
    assert len(records.timeline(patient.id).visits) == 4
    # The same key of another patient's form is that patient's own.
    other = records.add_patient("other")
    *_, new = records.save_visit_answer(other.id, date(2026, 12, 6), STATE, OFFERED, KV, SHOWN, key)
    assert new is True


def test_the_database_itself_refuses_a_second_visit_under_one_key(engine: Engine) -> None:
    records = RecordStore(engine)
    patient = records.add_patient("db-key")
    records.save_visit_answer(patient.id, date(2026, 12, 6), STATE, OFFERED, KV, SHOWN, "z" * 20)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO visits (patient_id, visit_date, state, created_at, save_key) "
                "VALUES (:p, :d, :s, :c, :k)"
            ),
            {"p": patient.id, "d": date(2026, 12, 6), "s": "{}", "c": SHOWN, "k": "z" * 20},
        )


def test_only_an_offered_option_is_stored_and_a_tie_must_be_named(engine: Engine) -> None:
    records = RecordStore(engine)
    patient = records.add_patient("offered")
    _, answer, _ = records.save_visit_answer(
        patient.id, date(2026, 12, 6), STATE, TIED, KV, SHOWN, None
    )
    with pytest.raises(ValueError, match="'add_rituximab' is not an option this answer offered"):
        records.record_decision(answer, "chose_other", "add_rituximab", None, SHOWN)
    with pytest.raises(ValueError, match="chosen_recommendation: the first choices are tied"):
        records.record_decision(answer, "accepted", None, None, SHOWN)
    with pytest.raises(ValueError, match="reason_code: must be one of"):
        records.record_decision(answer, "chose_other", "add_ivig", None, SHOWN, reason_code="bored")
    records.record_decision(answer, "accepted", "r2_raise_methotrexate", None, SHOWN)
    records.record_decision(
        answer,
        "chose_other",
        "add_ivig",
        "wants to avoid steroids",
        SHOWN,
        reason_code="patient_preference",
    )
    records.record_decision(answer, "declined", None, None, SHOWN, reason_code="cost_or_access")
    decided = records.timeline(patient.id).visits[0].answers[0].decisions
    assert [(d.chosen_recommendation, d.reason_code) for d in decided] == [
        ("r2_raise_methotrexate", None),
        ("add_ivig", "patient_preference"),
        (None, "cost_or_access"),
    ]
    # The coded reason is under the hash chain, and the chain still verifies.
    assert verify_chain(engine).broken is None
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO decisions (answer_id, decided_at, decision, reason_code) "
                "VALUES (:a, :t, 'declined', 'bored')"
            ),
            {"a": answer, "t": SHOWN},
        )


def test_the_feedback_report_counts_decisions_by_coded_reason(engine: Engine) -> None:
    records = RecordStore(engine)
    patient = records.add_patient("report")
    _, answer, _ = records.save_visit_answer(
        patient.id, date(2026, 12, 6), STATE, OFFERED, KV, SHOWN, None
    )
    records.record_decision(answer, "accepted", None, None, SHOWN)
    records.record_decision(
        answer, "chose_other", "add_ivig", None, SHOWN, reason_code="contraindication"
    )
    records.record_decision(
        answer, "chose_other", "add_ivig", "x", SHOWN, reason_code="contraindication"
    )
    records.record_decision(answer, "declined", None, "later", SHOWN, reason_code="already_tried")
    text_report = render_report(FeedbackStore(engine).report())
    assert "Decisions recorded on the pages" in text_report
    assert "accepted an option: 1" in text_report
    assert "chose another option: 2\n    reason: contraindication: 2" in text_report
    assert "none of the options: 1\n    reason: already tried: 1" in text_report
