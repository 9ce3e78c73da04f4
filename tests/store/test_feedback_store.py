"""Tests of the feedback store on SQLite and PostgreSQL: schema, parsing, storing, reporting."""

from __future__ import annotations

import copy
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from myoguide.adapters.store import (
    FeedbackItem,
    FeedbackStore,
    current_revision,
    default_url,
    head_revision,
    make_engine,
    normalise_url,
    parse_feedback,
    render_report,
    upgrade,
)
from myoguide.adapters.store.tables import Base, FeedbackRecord

# The first PostgreSQL test may have to install PostgreSQL on a clean machine.
pytestmark = pytest.mark.timeout(900)

SERVICE = "myoguide-recommend"
OTHER_SERVICE = "myoguide-order-check"
SYSTEM = "https://myoguide.example/fhir/CodeSystem/override-reason"
RECEIVED = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
CARD_A, CARD_B, CARD_C = (str(uuid.uuid4()) for _ in range(3))
SUMMARIES = {CARD_A: "Add rituximab", CARD_B: "Add IVIG", CARD_C: "Methotrexate dose check"}


def accepted(card: str, suggestion: str | None = None) -> dict[str, Any]:
    """Return an accepted feedback entry for `card`."""
    return {
        "card": card,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": suggestion or str(uuid.uuid4())}],
        "outcomeTimestamp": "2024-05-01T09:30:00Z",
    }


def overridden(card: str, code: str | None, display: str | None = None) -> dict[str, Any]:
    """Return an overridden feedback entry for `card`, with a coded reason unless code is None."""
    reason: dict[str, Any] = {"userComment": "discussed with the patient"}
    if code is not None:
        reason["reason"] = {"system": SYSTEM, "code": code}
        if display is not None:
            reason["reason"]["display"] = display
    return {
        "card": card,
        "outcome": "overridden",
        "overrideReason": reason,
        "outcomeTimestamp": "2024-05-01T09:31:12.52+02:00",
    }


def count_rows(url: str) -> int:
    """Count feedback rows through a brand-new engine, so through a new connection."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(FeedbackRecord)).scalar_one())
    finally:
        engine.dispose()


# ---- URLs and engines ----------------------------------------------------------------------


def test_plain_postgresql_urls_use_psycopg3() -> None:
    url = normalise_url("postgresql://user@127.0.0.1:5432/db")
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username) == ("127.0.0.1", 5432, "db", "user")
    assert normalise_url("postgres://u:p%40ss@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u:p%40ss@h/db").password == "p@ss"
    assert normalise_url("postgresql+psycopg://h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"


def test_other_backends_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported backend 'mysql'"):
        normalise_url("mysql://u@h/db")


def test_default_url_is_sqlite_file_in_data_dir(tmp_path: Path) -> None:
    assert default_url(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'myoguide.db'}"


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(default_url(tmp_path / "new-dir"))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        engine.dispose()
    assert (tmp_path / "new-dir" / "myoguide.db").exists()


# ---- migrations ----------------------------------------------------------------------------


def test_migrations_create_the_schema(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        assert current_revision(engine) is None
        upgrade(empty_url)
        upgrade(empty_url)  # a second start finds nothing to do
        assert current_revision(engine) == head_revision()
        inspector = inspect(engine)
        assert {"cds_feedback", "alembic_version"} <= set(inspector.get_table_names())
        columns = {c["name"] for c in inspector.get_columns("cds_feedback")}
        assert columns == {c.name for c in FeedbackRecord.__table__.columns}
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert differences == [], "the models and the migrations disagree"
    finally:
        engine.dispose()


# ---- parsing -------------------------------------------------------------------------------


def test_parse_reads_every_field() -> None:
    body = {
        "feedback": [
            accepted(CARD_A, "2a7e1f00-95f3-4b8a-a8a6-3a4a1f0d3f11"),
            overridden(CARD_B.upper(), "contraindicated", "Contraindicated for this patient"),
        ]
    }
    first, second = parse_feedback(body)
    assert first.card == CARD_A
    assert first.outcome == "accepted"
    assert first.accepted_suggestions == ("2a7e1f00-95f3-4b8a-a8a6-3a4a1f0d3f11",)
    assert first.override_reason is None
    assert first.outcome_timestamp == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert second.card == CARD_B  # canonical lower-case form
    assert second.override_reason is not None
    assert second.override_reason.code == "contraindicated"
    assert second.override_reason.display == "Contraindicated for this patient"
    assert second.override_reason.comment == "discussed with the patient"
    assert second.outcome_timestamp == datetime(2024, 5, 1, 7, 31, 12, 520000, tzinfo=UTC)
    assert parse_feedback({"feedback": []}) == []


def test_parse_accepts_comment_only_override() -> None:
    (item,) = parse_feedback({"feedback": [overridden(CARD_A, None)]})
    assert item.override_reason is not None
    assert (item.override_reason.code, item.override_reason.comment) == (
        None,
        "discussed with the patient",
    )


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """Return an edit that sets (or, for the value DELETE, removes) a dotted path in an entry."""

    def edit(entry: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = entry
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is DELETE:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return edit


class _Delete:
    """Marks a key to remove; its repr is stable so test ids are the same in every process."""

    def __repr__(self) -> str:
        return "<deleted>"


DELETE = _Delete()

BAD_ENTRIES = [
    ("card", DELETE, "feedback[0].card: must be a string"),
    ("card", "", "feedback[0].card: must not be empty"),
    ("card", "card-1", "feedback[0].card: must be a UUID"),
    ("card", 7, "feedback[0].card: must be a string"),
    ("outcome", DELETE, "feedback[0].outcome: must be accepted or overridden"),
    ("outcome", "rejected", "feedback[0].outcome: must be accepted or overridden"),
    ("outcome", ["accepted"], "feedback[0].outcome: must be accepted or overridden"),
    (
        "acceptedSuggestions",
        DELETE,
        "feedback[0].acceptedSuggestions: is required when outcome is accepted",
    ),
    ("acceptedSuggestions", {"id": "x"}, "feedback[0].acceptedSuggestions: must be an array"),
    (
        "acceptedSuggestions",
        [],
        "feedback[0].acceptedSuggestions: must name at least one suggestion",
    ),
    ("acceptedSuggestions.0", "x", "feedback[0].acceptedSuggestions[0]: must be a JSON object"),
    ("acceptedSuggestions.0.id", DELETE, "feedback[0].acceptedSuggestions[0].id: must be a"),
    ("acceptedSuggestions.0.id", "nope", "feedback[0].acceptedSuggestions[0].id: must be a UUID"),
    ("outcomeTimestamp", DELETE, "feedback[0].outcomeTimestamp: must be a string"),
    ("outcomeTimestamp", "yesterday", "feedback[0].outcomeTimestamp: must be an ISO 8601"),
    ("outcomeTimestamp", "2024-05-01", "feedback[0].outcomeTimestamp: must be an ISO 8601"),
    (
        "outcomeTimestamp",
        "2024-05-01T09:30:00",
        "feedback[0].outcomeTimestamp: must be an ISO 8601 instant with a time and UTC offset",
    ),
    ("outcomeTimestamp", 1714555800, "feedback[0].outcomeTimestamp: must be a string"),
    ("overrideReason", "busy", "feedback[0].overrideReason: must be a JSON object"),
    ("overrideReason", {}, "feedback[0].overrideReason: must have a reason, a userComment"),
    ("extension", {"x": float("nan")}, "feedback[0]: is not plain JSON"),
]

BAD_OVERRIDES = [
    ("overrideReason.reason", "contraindicated", "feedback[0].overrideReason.reason: must be a"),
    ("overrideReason.reason.code", DELETE, "feedback[0].overrideReason.reason.code: must be a"),
    ("overrideReason.reason.code", "", "feedback[0].overrideReason.reason.code: must not be"),
    ("overrideReason.reason.system", DELETE, "feedback[0].overrideReason.reason.system: must"),
    ("overrideReason.reason.display", 3, "feedback[0].overrideReason.reason.display: must be"),
    ("overrideReason.userComment", 3, "feedback[0].overrideReason.userComment: must be a string"),
    ("overrideReason.userComment", "a\x00b", "feedback[0]: must not contain NUL"),
    ("overrideReason.reason.code", "x" * 201, "feedback[0].overrideReason.reason.code: must be at"),
    ("overrideReason.reason.system", "s" * 501, "feedback[0].overrideReason.reason.system: must"),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), BAD_ENTRIES, ids=[f"{p}={v!r}" for p, v, _ in BAD_ENTRIES]
)
def test_parse_rejects_bad_accepted_entry_naming_the_field(
    path: str, value: object, message: str
) -> None:
    entry = accepted(CARD_A)
    _set(path, value)(entry)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_feedback({"feedback": [entry]})


@pytest.mark.parametrize(
    ("path", "value", "message"), BAD_OVERRIDES, ids=[f"{p}={v!r}" for p, v, _ in BAD_OVERRIDES]
)
def test_parse_rejects_bad_override_naming_the_field(
    path: str, value: object, message: str
) -> None:
    entry = overridden(CARD_A, "contraindicated", "Contraindicated")
    _set(path, value)(entry)
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_feedback({"feedback": [entry]})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "body: must be a JSON object"),
        ({}, "feedback: is required"),
        ({"feedback": {"card": CARD_A}}, "feedback: must be an array"),
        ({"feedback": ["x"]}, "feedback[0]: must be a JSON object"),
        (
            {"feedback": [accepted(CARD_A), {**accepted(CARD_B), "outcome": "maybe"}]},
            "feedback[1].outcome: must be accepted or overridden",
        ),
    ],
)
def test_parse_rejects_bad_body_naming_the_field(body: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_feedback(body)


# ---- storing and reporting -----------------------------------------------------------------


def test_record_and_report(store: FeedbackStore) -> None:
    recommend = [
        accepted(CARD_A),
        accepted(CARD_A),
        accepted(CARD_A),
        overridden(CARD_A, "already-tried", "Already tried or not tolerated"),
        overridden(CARD_B, "contraindicated", "Contraindicated for this patient"),
        overridden(CARD_B, "contraindicated", "Contraindicated for this patient"),
        overridden(CARD_B, "patient-preference", "Patient preference"),
        overridden(CARD_B, None),
        accepted(str(uuid.uuid4())),
    ]
    saved = store.record(
        SERVICE, parse_feedback({"feedback": recommend}), "2024.1", RECEIVED, SUMMARIES
    )
    assert saved == len(recommend)
    assert (
        store.record(
            OTHER_SERVICE,
            parse_feedback({"feedback": [accepted(CARD_C)]}),
            "2024.1",
            RECEIVED + timedelta(minutes=1),
            SUMMARIES,
        )
        == 1
    )
    assert store.record(SERVICE, [], "2024.1", RECEIVED) == 0

    report = store.report()
    by_key = {(row.service_id, row.card_summary): row for row in report.rows}
    assert list(by_key) == [
        (OTHER_SERVICE, "Methotrexate dose check"),
        (SERVICE, "Add IVIG"),
        (SERVICE, "Add rituximab"),
        (SERVICE, None),
    ]
    rituximab = by_key[SERVICE, "Add rituximab"]
    assert (rituximab.accepted, rituximab.overridden) == (3, 1)
    assert rituximab.acceptance_rate == pytest.approx(0.75)
    assert rituximab.override_rate == pytest.approx(0.25)
    assert [(r.code, r.display, r.count) for r in rituximab.override_reasons] == [
        ("already-tried", "Already tried or not tolerated", 1)
    ]
    ivig = by_key[SERVICE, "Add IVIG"]
    assert (ivig.accepted, ivig.overridden, ivig.acceptance_rate) == (0, 4, 0.0)
    assert ivig.override_rate == 1.0
    assert [(r.system, r.code, r.count) for r in ivig.override_reasons] == [
        (SYSTEM, "contraindicated", 2),
        (None, None, 1),
        (SYSTEM, "patient-preference", 1),
    ]
    unknown = by_key[SERVICE, None]
    assert (unknown.accepted, unknown.overridden, unknown.override_reasons) == (1, 0, ())
    assert by_key[OTHER_SERVICE, "Methotrexate dose check"].acceptance_rate == 1.0
    assert report.total == 10
    assert store.report(knowledge_version="other").rows == ()

    text = render_report(report)
    lines = text.splitlines()
    assert lines[0].split() == ["service", "card", "accepted", "overridden", "acceptance"]
    assert any(
        line.startswith(SERVICE) and "Add rituximab" in line and line.endswith("75.0%")
        for line in lines
    )
    assert "    overridden: contraindicated (Contraindicated for this patient): 2" in lines
    assert "    overridden: (comment only): 1" in lines
    assert "(summary not recorded)" in text
    assert lines[-1] == "10 feedback item(s)"


def test_render_empty_report(store: FeedbackStore) -> None:
    assert render_report(store.report()) == "No CDS Hooks feedback recorded.\n"


def test_summaries_match_cards_in_any_uuid_spelling(store: FeedbackStore) -> None:
    items = parse_feedback({"feedback": [accepted(CARD_A)]})
    store.record(SERVICE, items, "2024.1", RECEIVED, {CARD_A.upper(): "Add rituximab"})
    assert [row.card_summary for row in store.report().rows] == ["Add rituximab"]


def test_record_is_visible_from_a_new_connection(store: FeedbackStore, migrated_url: str) -> None:
    items = parse_feedback({"feedback": [accepted(CARD_A), overridden(CARD_B, "x", "X")]})
    assert store.record(SERVICE, items, "2024.1", RECEIVED) == 2
    assert count_rows(migrated_url) == 2


def test_record_is_all_or_nothing(store: FeedbackStore, migrated_url: str) -> None:
    good = parse_feedback({"feedback": [accepted(CARD_A)]})[0]
    # Bypasses the parser to reach the database's CHECK constraint on the second row.
    bad = FeedbackItem(CARD_B, "maybe", (), None, RECEIVED, {})  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        store.record(SERVICE, [good, bad], "2024.1", RECEIVED)
    assert count_rows(migrated_url) == 0


def test_record_refuses_bad_arguments(store: FeedbackStore, migrated_url: str) -> None:
    items = parse_feedback({"feedback": [accepted(CARD_A)]})
    with pytest.raises(ValueError, match="received_at: must be timezone-aware"):
        store.record(SERVICE, items, "2024.1", datetime(2024, 5, 1, 10, 0))
    with pytest.raises(ValueError, match="service_id: must not be empty"):
        store.record("", items, "2024.1", RECEIVED)
    with pytest.raises(ValueError, match="service_id: must be at most 200 characters"):
        store.record("s" * 201, items, "2024.1", RECEIVED)
    with pytest.raises(ValueError, match="knowledge_version: must be at most 64 characters"):
        store.record(SERVICE, items, "v" * 65, RECEIVED)
    assert count_rows(migrated_url) == 0


def test_raw_json_and_timestamps_round_trip(store: FeedbackStore, migrated_url: str) -> None:
    entry = overridden(CARD_A, "contraindicated", "Contre-indiqué — ß ✓")
    entry["extension"] = {
        "com.example.note": {"nested": [1, 2.5, True, None, "Zürich"], "empty": {}},
    }
    original = copy.deepcopy(entry)
    items = parse_feedback({"feedback": [entry]})
    entry["extension"]["com.example.note"]["nested"].append("changed after parsing")
    received = datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    store.record(SERVICE, items, "2024.1", received, SUMMARIES)

    engine = make_engine(migrated_url)
    try:
        with Session(engine) as session:
            row = session.execute(select(FeedbackRecord)).scalar_one()
    finally:
        engine.dispose()
    assert row.raw == original
    assert row.card_uuid == CARD_A
    assert row.card_summary == "Add rituximab"
    assert row.accepted_suggestions == []
    assert row.override_display == "Contre-indiqué — ß ✓"
    assert row.knowledge_version == "2024.1"
    assert row.outcome_at == datetime(2024, 5, 1, 7, 31, 12, 520000, tzinfo=UTC)
    assert row.outcome_at.tzinfo is not None
    assert row.received_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_concurrent_writers_lose_no_rows(migrated_url: str) -> None:
    batches, per_batch, writers = 40, 3, 2
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        engine = make_engine(migrated_url)
        try:
            writer = FeedbackStore(engine)
            start.wait()
            for b in range(batches):
                body = {"feedback": [accepted(CARD_A) for _ in range(per_batch)]}
                writer.record(f"writer-{n}", parse_feedback(body), str(b), RECEIVED)
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
    assert count_rows(migrated_url) == batches * per_batch * writers
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as conn:
            ids = conn.execute(select(FeedbackRecord.id)).scalars().all()
    finally:
        engine.dispose()
    assert len(set(ids)) == len(ids)
