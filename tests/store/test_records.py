"""Tests of the patient record and user stores on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import Engine, event, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from myoguide.adapters.store import (
    PatientRecord,
    RecordNotFound,
    RecordStore,
    UserStore,
    current_revision,
    head_revision,
    make_engine,
    upgrade,
)
from myoguide.adapters.store.db import alembic_config
from myoguide.adapters.store.tables import (
    AnswerModel,
    Base,
    DecisionModel,
    PatientModel,
    UserModel,
    VisitModel,
)

# The first PostgreSQL test may have to install PostgreSQL on a clean machine.
pytestmark = pytest.mark.timeout(900)

RECORD_TABLES = {"patients", "visits", "answers", "decisions", "users"}
SHOWN = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
KV = "2024.1"


def state(prednisone_mg: float = 20, **extra: Any) -> dict[str, Any]:
    """Return a contract patient state with prednisone at `prednisone_mg` mg/day."""
    return {
        "age_years": 52,
        "diagnosis": "dermatomyositis",
        "weight": {"value": 72.5, "unit": "kg"},
        "disease_control_achieved": True,
        "flare": True,
        "current_medications": [
            {"agent": "prednisone", "dose": {"value": prednisone_mg, "unit": "mg/day"}}
        ],
        "treatment_history": [{"agent": "methotrexate", "outcome": "inadequate_response"}],
        **extra,
    }


def result(course: str = "recurrent", *ids: str, scenario: str | None = None) -> dict[str, Any]:
    """Return a RecommendationSet-shaped answer whose recommendations have `ids`, best first."""
    return {
        "knowledge_version": KV,
        "course": course,
        "scenario": scenario,
        "recommendations": [
            {"id": rec_id, "rank": n, "stance": "recommended", "grade": "2C", "agents": []}
            for n, rec_id in enumerate(ids, start=1)
        ],
        "warnings": [{"code": "weight_missing", "message": "Zürich — ß ✓"}],
        "trace": [{"rule": "R1", "fired": True}],
    }


@pytest.fixture
def records(engine: Engine) -> RecordStore:
    """Return a RecordStore on a freshly migrated database."""
    return RecordStore(engine)


@pytest.fixture
def users(engine: Engine) -> UserStore:
    """Return a UserStore on a freshly migrated database."""
    return UserStore(engine)


def count(url: str, model: type[Base]) -> int:
    """Count a table's rows through a brand-new engine, so through a new connection."""
    fresh = make_engine(url)
    try:
        with fresh.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())
    finally:
        fresh.dispose()


# ---- migrations ----------------------------------------------------------------------------


def test_migrations_reach_head_and_match_the_models(empty_url: str) -> None:
    upgrade(empty_url)
    upgrade(empty_url)  # a second start finds nothing to do
    engine = make_engine(empty_url)
    try:
        assert current_revision(engine) == head_revision() == "0008"
        assert set(inspect(engine).get_table_names()) >= RECORD_TABLES | {"chart_handoffs"}
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert differences == [], "the models and the migrations disagree"

        with engine.connect() as conn, conn.begin():
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        assert current_revision(engine) == "0001"
        assert not (RECORD_TABLES | {"chart_handoffs"}) & set(inspect(engine).get_table_names())
        upgrade(empty_url)  # and back again, triggers included
        assert current_revision(engine) == "0008"
        assert "chart_handoffs" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    store = RecordStore(make_engine(empty_url))
    patient = store.add_patient("after-round-trip")
    answer = store.log_answer(patient.id, None, state(), result(), KV, SHOWN)
    fresh = make_engine(empty_url)
    try:
        with pytest.raises(IntegrityError, match="append-only"), fresh.begin() as conn:
            conn.execute(text("DELETE FROM answers WHERE id = :id"), {"id": answer})
    finally:
        fresh.dispose()


# ---- patients ------------------------------------------------------------------------------


def test_add_list_and_get_patients(records: RecordStore, migrated_url: str) -> None:
    assert records.list_patients() == []
    zeta = records.add_patient("  zeta-07  ")
    alpha = records.add_patient("alpha-01")
    assert zeta.label == "zeta-07"
    assert zeta.created_at.tzinfo is not None
    assert records.get_patient(zeta.id) == zeta
    assert records.get_patient(alpha.id + zeta.id + 100) is None
    assert count(migrated_url, PatientModel) == 2

    records.add_visit(alpha.id, date(2024, 3, 1), state())
    visit = records.add_visit(alpha.id, date(2024, 5, 1), state(10))
    records.add_visit(alpha.id, date(2024, 4, 1), state(15))
    records.log_answer(alpha.id, visit.id, state(10), result("resistant"), KV, SHOWN)
    records.log_answer(alpha.id, None, state(10), result("controlled"), KV, SHOWN - timedelta(1))

    summaries = records.list_patients()
    assert [s.label for s in summaries] == ["alpha-01", "zeta-07"]
    first, second = summaries
    assert (first.id, first.visit_count, first.last_visit_date, first.last_course) == (
        alpha.id,
        3,
        date(2024, 5, 1),
        "resistant",
    )
    assert (second.id, second.visit_count, second.last_visit_date, second.last_course) == (
        zeta.id,
        0,
        None,
        None,
    )


def test_list_order_is_by_code_point_on_every_backend(records: RecordStore) -> None:
    for label in ("b-2", "B-1", "a-3", "Ä-4", "_-5"):
        records.add_patient(label)
    assert [s.label for s in records.list_patients()] == ["B-1", "_-5", "a-3", "b-2", "Ä-4"]


def test_ids_that_cannot_exist_are_not_found(records: RecordStore) -> None:
    patient = records.add_patient("P-000")
    huge = 2**63
    assert records.get_patient(huge) is None
    assert records.get_patient(0) is None
    with pytest.raises(RecordNotFound):
        records.timeline(huge)
    with pytest.raises(RecordNotFound):
        records.add_visit(huge, date(2024, 1, 1), state())
    with pytest.raises(RecordNotFound):
        records.log_answer(patient.id, huge, state(), result(), KV, SHOWN)
    with pytest.raises(RecordNotFound):
        records.record_decision(-1, "declined", None, None, SHOWN)
    with pytest.raises(ValueError, match=r"^patient_id: must be an integer"):
        records.add_visit("1", date(2024, 1, 1), state())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("", "label: must not be empty"),
        ("   ", "label: must not be empty"),
        ("x" * 81, "label: must be at most 80 characters"),
        ("tab\there", "label: must not contain control characters"),
        (None, "label: must be a string"),
    ],
)
def test_bad_labels_are_refused(
    records: RecordStore, migrated_url: str, label: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        records.add_patient(label)
    assert count(migrated_url, PatientModel) == 0


def test_duplicate_label_is_refused(records: RecordStore, migrated_url: str) -> None:
    records.add_patient("P-001")
    assert records.add_patient("x" * 80).label == "x" * 80
    with pytest.raises(ValueError, match=r"^label: 'P-001' is already used"):
        records.add_patient("P-001")
    with pytest.raises(ValueError, match=r"^label: 'P-001' is already used"):
        records.add_patient(" P-001 ")
    assert count(migrated_url, PatientModel) == 2


def test_database_refuses_duplicate_label_too(engine: Engine) -> None:
    # The unique constraint backs the check in add_patient when two writers race.
    row = {"label": "same", "created_at": SHOWN}
    with engine.begin() as conn:
        conn.execute(insert(PatientModel), [row])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(PatientModel), [row])


# ---- visits, answers and decisions ---------------------------------------------------------


def test_visits_are_ordered_by_date_then_id(records: RecordStore) -> None:
    patient = records.add_patient("P-002")
    other = records.add_patient("P-003")
    days = [date(2024, 5, 1), date(2023, 1, 9), date(2024, 5, 1), date(2023, 12, 31)]
    added = [records.add_visit(patient.id, day, state(n)) for n, day in enumerate(days)]
    records.add_visit(other.id, date(2020, 1, 1), state())
    assert added[0].state == state(0)
    assert added[0].visit_date == date(2024, 5, 1)

    record = records.timeline(patient.id)
    assert isinstance(record, PatientRecord)
    assert record.patient == patient
    assert [v.visit.id for v in record.visits] == [
        added[1].id,
        added[3].id,
        added[0].id,
        added[2].id,
    ]
    assert [v.visit.state for v in record.visits] == [state(1), state(3), state(0), state(2)]
    assert all(v.answers == () for v in record.visits)
    assert records.timeline(other.id).visits[0].visit.visit_date == date(2020, 1, 1)


def test_add_visit_refuses_bad_input(records: RecordStore, migrated_url: str) -> None:
    patient = records.add_patient("P-004")
    with pytest.raises(RecordNotFound, match="patient 999 not found"):
        records.add_visit(999, date(2024, 1, 1), state())
    with pytest.raises(ValueError, match=r"^visit_date: must be a date"):
        records.add_visit(patient.id, SHOWN, state())
    with pytest.raises(ValueError, match=r"^state: must be a JSON object"):
        records.add_visit(patient.id, date(2024, 1, 1), [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^state: is not plain JSON"):
        records.add_visit(patient.id, date(2024, 1, 1), {"age_years": float("nan")})
    with pytest.raises(ValueError, match=r"^state: must not contain NUL"):
        records.add_visit(patient.id, date(2024, 1, 1), {"diagnosis": "a\x00b"})
    assert count(migrated_url, VisitModel) == 0


def test_answers_and_decisions_are_logged(records: RecordStore, migrated_url: str) -> None:
    patient = records.add_patient("P-005")
    other = records.add_patient("P-006")
    early = records.add_visit(patient.id, date(2024, 1, 10), state(30))
    late = records.add_visit(patient.id, date(2024, 4, 10), state(10))
    foreign = records.add_visit(other.id, date(2024, 4, 10), state())

    first = records.log_answer(
        patient.id,
        early.id,
        state(30),
        result("recurrent", "raise_prednisone", "add_ivig", scenario="flare_above_10mg"),
        KV,
        datetime(2024, 1, 10, 11, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    second = records.log_answer(
        patient.id, late.id, state(10), result("resistant", "add_rituximab"), KV, SHOWN
    )
    loose = records.log_answer(patient.id, None, state(5), result("out_of_scope"), "2025.2", SHOWN)
    again = records.log_answer(
        patient.id, early.id, state(30), result("recurrent", "add_ivig"), KV, SHOWN
    )
    assert len({first, second, loose, again}) == 4

    took = records.record_decision(first, "accepted", None, None, SHOWN)
    other_choice = records.record_decision(
        first, "chose_other", "add_ivig", "  prefers infusions  ", SHOWN + timedelta(hours=1)
    )
    declined = records.record_decision(second, "declined", None, "   ", SHOWN)
    assert count(migrated_url, AnswerModel) == 4
    assert count(migrated_url, DecisionModel) == 3

    record = records.timeline(patient.id)
    assert [v.visit.id for v in record.visits] == [early.id, late.id]
    early_answers = record.visits[0].answers
    assert [a.answer.id for a in early_answers] == [first, again]
    answer = early_answers[0].answer
    assert answer.shown_at == datetime(2024, 1, 10, 9, 0, tzinfo=UTC)
    assert (answer.course, answer.scenario, answer.top_recommendation) == (
        "recurrent",
        "flare_above_10mg",
        "raise_prednisone",
    )
    assert answer.input == state(30)
    assert answer.result == result(
        "recurrent", "raise_prednisone", "add_ivig", scenario="flare_above_10mg"
    )
    assert answer.knowledge_version == KV
    decisions = early_answers[0].decisions
    assert [d.id for d in decisions] == [took, other_choice]
    # Accepting without naming a recommendation accepts the answer's first one.
    assert (decisions[0].decision, decisions[0].chosen_recommendation) == (
        "accepted",
        "raise_prednisone",
    )
    assert (decisions[1].chosen_recommendation, decisions[1].reason) == (
        "add_ivig",
        "  prefers infusions  ",
    )
    assert early_answers[1].decisions == ()
    (late_answer,) = record.visits[1].answers
    assert late_answer.decisions[0].id == declined
    assert late_answer.decisions[0].reason is None
    (unattached,) = record.unattached_answers
    assert unattached.answer.id == loose
    assert (unattached.answer.course, unattached.answer.top_recommendation) == (
        "out_of_scope",
        None,
    )
    assert [a.answer.id for a in record.answers] == [first, second, loose, again]

    with pytest.raises(ValueError, match=r"^visit_id: visit .* belongs to another patient"):
        records.log_answer(patient.id, foreign.id, state(), result(), KV, SHOWN)
    with pytest.raises(RecordNotFound, match="visit 9999 not found"):
        records.log_answer(patient.id, 9999, state(), result(), KV, SHOWN)
    with pytest.raises(RecordNotFound, match="patient 9999 not found"):
        records.log_answer(9999, None, state(), result(), KV, SHOWN)
    with pytest.raises(ValueError, match=r"^result.course: must be one of"):
        records.log_answer(patient.id, None, state(), result("maybe"), KV, SHOWN)
    with pytest.raises(ValueError, match=r"^shown_at: must be timezone-aware"):
        records.log_answer(patient.id, None, state(), result(), KV, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match=r"^knowledge_version: must be at most 64"):
        records.log_answer(patient.id, None, state(), result(), "v" * 65, SHOWN)
    with pytest.raises(RecordNotFound, match="answer 9999 not found"):
        records.record_decision(9999, "declined", None, None, SHOWN)
    with pytest.raises(ValueError, match=r"^decision: must be one of"):
        records.record_decision(first, "maybe", None, None, SHOWN)
    with pytest.raises(ValueError, match=r"^chosen_recommendation: is required"):
        records.record_decision(first, "chose_other", None, None, SHOWN)
    with pytest.raises(ValueError, match=r"^chosen_recommendation: must be empty"):
        records.record_decision(first, "declined", "add_ivig", None, SHOWN)
    with pytest.raises(ValueError, match=r"^decided_at: must be timezone-aware"):
        records.record_decision(first, "declined", None, None, datetime(2024, 1, 1))
    with pytest.raises(RecordNotFound):
        records.timeline(9999)
    assert count(migrated_url, AnswerModel) == 4
    assert count(migrated_url, DecisionModel) == 3


APPEND_ONLY_SQL = [
    ("answers", "UPDATE answers SET course = 'controlled' WHERE id = :id"),
    ("answers", "UPDATE answers SET result = NULL"),
    ("answers", "DELETE FROM answers WHERE id = :id"),
    ("answers", "DELETE FROM answers"),
    ("decisions", "UPDATE decisions SET decision = 'declined' WHERE id = :id"),
    ("decisions", "DELETE FROM decisions WHERE id = :id"),
    ("decisions", "DELETE FROM decisions"),
]


@pytest.mark.parametrize(("table", "sql"), APPEND_ONLY_SQL, ids=[s for _, s in APPEND_ONLY_SQL])
def test_database_rejects_changes_to_append_only_tables(
    records: RecordStore, engine: Engine, table: str, sql: str
) -> None:
    patient = records.add_patient("P-007")
    answer = records.log_answer(patient.id, None, state(), result("recurrent", "a"), KV, SHOWN)
    decision = records.record_decision(answer, "accepted", None, None, SHOWN)
    row_id = answer if table == "answers" else decision

    with pytest.raises(IntegrityError, match=f"{table} is append-only"), engine.begin() as conn:
        conn.execute(text(sql), {"id": row_id})

    (entry,) = records.timeline(patient.id).unattached_answers
    assert (entry.answer.id, entry.answer.course) == (answer, "recurrent")
    assert [(d.id, d.decision) for d in entry.decisions] == [(decision, "accepted")]


def test_postgresql_also_refuses_truncate(records: RecordStore, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    patient = records.add_patient("P-008")
    records.log_answer(patient.id, None, state(), result(), KV, SHOWN)
    for table in ("decisions", "answers"):
        with pytest.raises(IntegrityError, match="append-only"), engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {table} CASCADE"))
    assert len(records.timeline(patient.id).unattached_answers) == 1


def test_timeline_takes_three_queries(records: RecordStore, engine: Engine) -> None:
    patient = records.add_patient("P-009")
    for n in range(12):
        visit = records.add_visit(patient.id, date(2024, 1, 1) + timedelta(days=n), state(n))
        answer = records.log_answer(
            patient.id, visit.id, state(n), result("recurrent", "a"), KV, SHOWN
        )
        records.record_decision(answer, "accepted", None, None, SHOWN)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        record = records.timeline(patient.id)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(record.visits) == 12
    assert all(len(v.answers) == 1 and len(v.answers[0].decisions) == 1 for v in record.visits)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 3


def test_export_round_trips_through_json(records: RecordStore) -> None:
    patient = records.add_patient("P-010")
    visit = records.add_visit(patient.id, date(2024, 2, 29), state(12.5))
    offered = result("recurrent", "add_ivig", "add_rituximab")
    answer = records.log_answer(patient.id, visit.id, state(12.5), offered, KV, SHOWN)
    records.log_answer(patient.id, None, state(), result("controlled"), KV, SHOWN)
    # The other option chosen is one the answer offered (issue 22 refuses any other).
    records.record_decision(
        answer,
        "chose_other",
        "add_rituximab",
        "cost",
        SHOWN,
        clinician="dr.lee",
        reason_code="cost_or_access",
    )

    exported = records.export_patient(patient.id)
    assert json.loads(json.dumps(exported, allow_nan=False)) == exported
    assert exported["patient"] == {
        "id": patient.id,
        "label": "P-010",
        "created_at": patient.created_at.isoformat(),
        "ehr_iss": None,
    }
    (visit_json,) = exported["visits"]
    assert visit_json["visit_date"] == "2024-02-29"
    assert visit_json["state"] == state(12.5)
    assert [a["id"] for a in exported["answers"]] == [answer, answer + 1]
    assert exported["answers"][0]["shown_at"] == "2024-05-01T10:00:00+00:00"
    assert exported["answers"][0]["result"] == offered
    assert exported["answers"][1]["visit_id"] is None
    (decision_json,) = exported["decisions"]
    assert decision_json["answer_id"] == answer
    assert decision_json["decision"] == "chose_other"
    assert decision_json["chosen_recommendation"] == "add_rituximab"
    assert decision_json["clinician"] == "dr.lee"
    assert decision_json["reason_code"] == "cost_or_access"
    assert datetime.fromisoformat(decision_json["decided_at"]) == SHOWN
    with pytest.raises(RecordNotFound):
        records.export_patient(9999)


def test_writes_are_visible_from_a_new_connection(records: RecordStore, migrated_url: str) -> None:
    patient = records.add_patient("P-011")
    records.add_visit(patient.id, date(2024, 1, 1), state())
    answer = records.log_answer(patient.id, None, state(), result(), KV, SHOWN)
    records.record_decision(answer, "declined", None, None, SHOWN)
    for model in (PatientModel, VisitModel, AnswerModel, DecisionModel):
        assert count(migrated_url, model) == 1


def test_concurrent_add_visit_loses_nothing(records: RecordStore, migrated_url: str) -> None:
    patient = records.add_patient("P-012")
    per_writer, writers = 40, 2
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        engine = make_engine(migrated_url)
        try:
            writer = RecordStore(engine)
            start.wait()
            for k in range(per_writer):
                visit = writer.add_visit(patient.id, date(2024, 1, 1), state(k, writer=n))
                writer.log_answer(patient.id, visit.id, state(k), result(), KV, SHOWN)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    record = records.timeline(patient.id)
    assert len(record.visits) == per_writer * writers
    assert all(len(v.answers) == 1 for v in record.visits)
    assert count(migrated_url, VisitModel) == per_writer * writers
    assert records.list_patients()[0].visit_count == per_writer * writers


# ---- a large record ------------------------------------------------------------------------


def seed(engine: Engine, patients: int, visits: int) -> None:
    """Bulk-insert `patients` patients with `visits` visits each, every visit with an answer."""
    created = datetime(2024, 1, 1, tzinfo=UTC)
    shown_state, shown_result = state(), result("recurrent", "raise_prednisone", "add_ivig")
    with engine.begin() as conn:
        conn.execute(
            insert(PatientModel),
            [
                {"id": p, "label": f"S-{p:05d}", "created_at": created}
                for p in range(1, patients + 1)
            ],
        )
        conn.execute(
            insert(VisitModel),
            [
                {
                    "id": (p - 1) * visits + v,
                    "patient_id": p,
                    "visit_date": date(2020, 1, 1) + timedelta(days=30 * v),
                    "state": shown_state,
                    "created_at": created,
                }
                for p in range(1, patients + 1)
                for v in range(1, visits + 1)
            ],
        )
        conn.execute(
            insert(AnswerModel),
            [
                {
                    "patient_id": p,
                    "visit_id": (p - 1) * visits + v,
                    "shown_at": created + timedelta(days=30 * v),
                    "knowledge_version": KV,
                    "input": shown_state,
                    "result": shown_result,
                    "course": "recurrent",
                    "scenario": "flare_above_10mg",
                    "top_recommendation": "raise_prednisone",
                }
                for p in range(1, patients + 1)
                for v in range(1, visits + 1)
            ],
        )


def test_timeline_of_one_patient_among_a_thousand(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'large.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        seed(engine, patients=1_000, visits=20)
        store = RecordStore(engine)
        record = store.timeline(537)
        assert record.patient.label == "S-00537"
        assert len(record.visits) == 20
        assert [v.visit.visit_date for v in record.visits] == sorted(
            v.visit.visit_date for v in record.visits
        )
        assert all(len(v.answers) == 1 for v in record.visits)
        assert {a.answer.patient_id for v in record.visits for a in v.answers} == {537}
        summaries = store.list_patients()
        assert len(summaries) == 1_000
        assert {(s.visit_count, s.last_course) for s in summaries} == {(20, "recurrent")}
    finally:
        engine.dispose()


# ---- users ---------------------------------------------------------------------------------


def test_users_are_stored_with_argon2id_and_verified(users: UserStore, engine: Engine) -> None:
    assert users.count() == 0
    users.add_user("dr.rossi", "correct horse battery")
    assert users.count() == 1
    with engine.connect() as conn:
        stored = conn.execute(select(UserModel.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert users.verify("dr.rossi", "correct horse battery")
    assert users.verify(" dr.rossi ", "correct horse battery")
    assert not users.verify("dr.rossi", "correct horse battery!")
    assert not users.verify("dr.rossi", "")
    assert not users.verify("dr.bianchi", "correct horse battery")
    assert not users.verify("", "")


def test_users_refuse_short_passwords_and_duplicates(users: UserStore) -> None:
    with pytest.raises(ValueError, match=r"^password: must be at least 12 characters"):
        users.add_user("dr.rossi", "x" * 11)
    users.add_user("dr.rossi", "x" * 12)
    with pytest.raises(ValueError, match=r"^username: 'dr.rossi' is already taken"):
        users.add_user("dr.rossi", "another long password")
    with pytest.raises(ValueError, match=r"^username: must not be empty"):
        users.add_user("  ", "another long password")
    assert users.count() == 1
    assert users.verify("dr.rossi", "x" * 12)


def test_verify_upgrades_outdated_hashes(engine: Engine) -> None:
    weak = UserStore(engine, hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024))
    weak.add_user("dr.verdi", "a long enough password")
    strong = UserStore(engine)
    assert strong.verify("dr.verdi", "a long enough password")
    with engine.connect() as conn:
        stored = conn.execute(select(UserModel.password_hash)).scalar_one()
    assert not PasswordHasher().check_needs_rehash(stored)
    assert strong.verify("dr.verdi", "a long enough password")
