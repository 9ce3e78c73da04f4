"""The store's replay cache commits the ids of concurrent calls together, refusing as before."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from myoguide.adapters.store import StoreReplayCache, make_engine
from myoguide.adapters.store.db import note_write, upgrade
from myoguide.errors import StoreUnavailable


def _race(cache: StoreReplayCache, jtis: list[str]) -> list[bool]:
    """Spend the ids from as many threads at once; return what each call was told."""
    later = time.time() + 300
    start = threading.Barrier(len(jtis))

    def use(jti: str) -> bool:
        start.wait()
        return cache.seen("iss", jti, later)

    with ThreadPoolExecutor(len(jtis)) as pool:
        return list(pool.map(use, jtis))


def test_concurrent_ids_are_each_admitted_once_and_refused_after(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    cache = StoreReplayCache(engine)
    jtis = [f"jti-{i}" for i in range(12)]
    assert _race(cache, jtis) == [False] * 12
    # Committed, so another process (another engine) refuses every one of them.
    other = StoreReplayCache(make_engine(migrated_url))
    assert [other.seen("iss", j, time.time() + 300) for j in jtis] == [True] * 12
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM token_jtis WHERE jti LIKE 'jti-%'"))
        assert rows.scalar() == 12


def test_one_id_sent_by_many_calls_at_once_is_admitted_once(migrated_url: str) -> None:
    cache = StoreReplayCache(make_engine(migrated_url))
    assert _race(cache, ["same"] * 10).count(False) == 1


def test_a_batch_that_cannot_commit_refuses_every_call(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    cache = StoreReplayCache(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE token_jtis RENAME TO token_jtis_away"))
    try:
        for jti in ("a", "b"):
            # Any driver error on the write is the store being unavailable, on either backend.
            with pytest.raises(StoreUnavailable):
                cache.seen("iss", jti, time.time() + 300)
        assert note_write(engine) is False
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE token_jtis_away RENAME TO token_jtis"))
    # The store back, the same ids are admitted: none was recorded by the failed writes.
    assert cache.seen("iss", "a", time.time() + 300) is False
    assert note_write(engine) is True


def test_a_lost_server_connection_is_replaced_not_reported(fresh_postgres_url: str) -> None:
    # The write takes a pooled driver connection (ADR 0044): the pool's pre-ping still
    # replaces one its server dropped, as it did for Core's connections.
    migrated_url = fresh_postgres_url
    upgrade(migrated_url)
    engine = make_engine(migrated_url)
    cache = StoreReplayCache(engine)
    assert cache.seen("iss", "before", time.time() + 300) is False
    with make_engine(migrated_url).connect() as admin:
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert cache.seen("iss", "after", time.time() + 300) is False
    assert cache.seen("iss", "before", time.time() + 300) is True


def test_writers_of_one_process_queue_on_a_lock_not_on_sqlite_busy(tmp_path: Path) -> None:
    # With no busy timeout at all, SQLite would refuse any write meeting another in progress:
    # writers of one process (two engines, as the stores of one app) take turns instead.
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engines = [make_engine(url, busy_timeout_ms=0) for _ in range(2)]
    caches = [StoreReplayCache(e) for e in engines]
    start = threading.Barrier(8)

    def use(i: int) -> bool:
        start.wait()
        return all(not caches[i % 2].seen("iss", f"w{i}-{n}", time.time() + 300) for n in range(20))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(use, range(8)))
