"""Issue 10: the record shows tampering; replays are shared; the file is private."""

from __future__ import annotations

import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from clirun import run_cli
from myoguide.adapters.store import (
    RecordStore,
    StoreReplayCache,
    make_engine,
    upgrade,
    verify_chain,
)

SHOWN = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
STATE = {"age_years": 54, "weight": {"value": 72.0, "unit": "kg"}}
RESULT = {"course": "resistant", "scenario": None, "recommendations": [{"id": "r1"}]}


def _fill(records: RecordStore) -> tuple[int, int]:
    patient = records.add_patient("T-1")
    visit_id, answer_id = records.log_visit_answer(
        patient.id, date(2026, 1, 1), STATE, RESULT, "kv", SHOWN
    )
    records.record_decision(answer_id, "accepted", None, None, SHOWN)
    records.log_answer(patient.id, None, STATE, RESULT, "kv", SHOWN)
    return visit_id, answer_id


def test_chain_is_intact_and_reused_ids_are_refused(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    records = RecordStore(engine)
    visit_id, answer_id = _fill(records)
    report = verify_chain(engine)
    assert report.broken is None, report.text()
    assert (report.answers, report.decisions) == (2, 1)
    refused = (
        "INSERT OR REPLACE INTO answers SELECT * FROM answers WHERE id = :i"
        if engine.dialect.name == "sqlite"
        else "INSERT INTO answers SELECT * FROM answers WHERE id = :i"
    )
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(refused), {"i": answer_id})
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE visits SET state = '{}' WHERE id = :i"), {"i": visit_id})
    assert verify_chain(engine).broken is None


def test_a_row_altered_outside_the_app_is_named(migrated_url: str, tmp_path: Path) -> None:
    engine = make_engine(migrated_url)
    _, answer_id = _fill(RecordStore(engine))
    with engine.begin() as conn:
        # What someone with the database file can do: lift the guard and edit.
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER answers_no_update"))
        else:
            conn.execute(text("ALTER TABLE answers DISABLE TRIGGER answers_append_only"))
        conn.execute(
            text("UPDATE answers SET top_recommendation = 'forged' WHERE id = :i"),
            {"i": answer_id},
        )
    report = verify_chain(engine)
    assert report.broken is not None
    assert f"answers id {answer_id}" in report.broken
    res = run_cli(
        "record", "verify", "--database-url", migrated_url, "--data-dir", str(tmp_path / "d")
    )
    assert res.code == 4
    assert f"answers id {answer_id}" in res.stdout


def test_visit_and_answer_are_one_transaction(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    records = RecordStore(engine)
    patient = records.add_patient("T-2")
    with pytest.raises(ValueError, match=r"result\.course"):
        records.log_visit_answer(patient.id, date(2026, 1, 1), STATE, {"course": "x"}, "kv", SHOWN)
    assert records.timeline(patient.id).visits == ()


def test_replays_are_refused_across_instances(migrated_url: str) -> None:
    first, second = (
        StoreReplayCache(make_engine(migrated_url)),
        StoreReplayCache(make_engine(migrated_url)),
    )
    later = time.time() + 300
    assert first.seen("iss", "jti-1", later) is False
    assert second.seen("iss", "jti-1", later) is True
    assert second.seen("iss", "jti-2", later) is False


def test_an_expired_id_is_taken_over_and_a_live_one_refused(migrated_url: str) -> None:
    now = [1_000_000.0]
    cache = StoreReplayCache(make_engine(migrated_url), clock=lambda: now[0])
    assert cache.seen("iss", "jti-x", 1_000_010.0) is False
    assert cache.seen("iss", "jti-x", 1_000_010.0) is True
    now[0] = 1_000_020.0  # the first token has expired: its id may be used again
    assert cache.seen("iss", "jti-x", 1_000_300.0) is False
    assert cache.seen("iss", "jti-x", 1_000_300.0) is True
    # A token already expired is not recorded; a live id is still known.
    assert cache.seen("iss", "jti-y", 1_000_000.0) is False
    assert cache.seen("iss", "jti-y", 1_000_400.0) is False
    assert cache.seen("iss", "jti-x", 1_000_000.0) is True


def test_concurrent_uses_of_one_id_admit_exactly_one(migrated_url: str) -> None:
    # Eight threads over two engines (as two workers would be) race on the same token id.
    engines = [make_engine(migrated_url), make_engine(migrated_url)]
    caches = [StoreReplayCache(e) for e in engines]
    later = time.time() + 300
    start = threading.Barrier(8)

    def use(i: int) -> bool:
        start.wait()
        return caches[i % 2].seen("iss", "jti-race", later)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(use, range(8)))
    assert results.count(False) == 1
    for e in engines:
        e.dispose()


def test_the_sqlite_file_is_private(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'p.db'}"
    upgrade(url)
    assert stat.S_IMODE((tmp_path / "data" / "p.db").stat().st_mode) == 0o600
