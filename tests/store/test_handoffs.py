"""Chart hand-offs on SQLite and PostgreSQL: hashed tokens, an hour's life, write-behind."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from fakes import FakeClock
from myoguide.adapters.store.checks import has_nul
from myoguide.adapters.store.handoffs import StoreChartHandoffs, WriteBehindHandoffs
from myoguide.adapters.store.tables import ChartHandoffModel
from myoguide.adapters.store.validation import json_object

# The first PostgreSQL test may have to install PostgreSQL on a clean machine.
pytestmark = pytest.mark.timeout(900)

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
STATE: dict[str, Any] = {
    "age_years": 62.0,
    "diagnosis": "dermatomyositis",
    "weight": {"value": 70.0, "unit": "kg"},
    "current_medications": [{"agent": "prednisone", "dose": {"value": 20.0, "unit": "mg/day"}}],
    "flare": None,
    "unresolved_medications": [],
}
WARNINGS = [("flare_unknown", "the record does not state flare status"), ("x", "Zürich — ß")]


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ChartHandoffModel)).scalar_one())


def test_a_hand_off_comes_back_as_given_under_a_hashed_token(engine: Engine) -> None:
    store = StoreChartHandoffs(engine, clock=FakeClock(T0))
    token = store.put(STATE, WARNINGS)
    assert len(token) >= 43  # 32 random bytes, URL-safe
    assert store.take(token) == (STATE, WARNINGS)
    # A clinician may click twice: the hand-off stays until it expires.
    assert store.take(token) == (STATE, WARNINGS)
    with engine.connect() as conn:
        row = conn.execute(select(ChartHandoffModel.__table__)).one()._asdict()
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(row)
    assert row["expires_at"] - row["created_at"] == timedelta(minutes=60)


def test_unknown_or_malformed_tokens_find_nothing(engine: Engine) -> None:
    store = StoreChartHandoffs(engine, clock=FakeClock(T0))
    token = store.put(STATE, [])
    assert store.take(token[:-1]) is None
    assert store.take("") is None
    assert store.take("x" * 10_000) is None
    assert store.take(token) == (STATE, [])


def test_a_hand_off_expires_after_an_hour(engine: Engine) -> None:
    clock = FakeClock(T0)
    store = StoreChartHandoffs(engine, clock=clock)
    token = store.put(STATE, WARNINGS)
    clock.at = T0 + timedelta(minutes=59, seconds=59)
    assert store.take(token) == (STATE, WARNINGS)
    clock.at = T0 + timedelta(minutes=60)
    assert store.take(token) is None
    # A second store (another worker) reads the same rows with the same rule.
    assert StoreChartHandoffs(engine, clock=clock).take(token) is None


def test_expired_rows_are_purged_at_most_every_30_seconds(engine: Engine) -> None:
    clock = FakeClock(T0)
    store = StoreChartHandoffs(engine, clock=clock, lifetime=timedelta(seconds=5))
    store.put(STATE, [])  # purges (nothing yet) at T0
    clock.at = T0 + timedelta(seconds=10)
    store.put(STATE, [])  # the first has expired, but the last purge was 10 s ago
    assert rows(engine) == 2
    clock.at = T0 + timedelta(seconds=40)
    live = store.put(STATE, [])
    assert rows(engine) == 1
    assert store.take(live) == (STATE, [])


def test_what_is_not_plain_json_is_refused_at_once(engine: Engine) -> None:
    store = StoreChartHandoffs(engine, clock=FakeClock(T0))
    with pytest.raises(ValueError, match="NUL"):
        store.put({**STATE, "diagnosis": "a\x00b"}, [])
    with pytest.raises(ValueError, match="not plain JSON"):
        store.put({**STATE, "age_years": float("nan")}, [])
    assert rows(engine) == 0


class Unflushed(WriteBehindHandoffs):
    """Write-behind whose background flush never comes during a test."""

    FLUSH_SECONDS = 3600


def test_write_behind_gives_the_token_at_once_and_take_writes_the_queue(engine: Engine) -> None:
    behind = Unflushed(StoreChartHandoffs(engine, clock=FakeClock(T0)))
    token = behind.put(STATE, WARNINGS)
    assert rows(engine) == 0  # nothing written on the caller's path
    assert behind.take(token) == (STATE, WARNINGS)
    assert rows(engine) == 1
    # Another process sees it once written.
    assert StoreChartHandoffs(engine, clock=FakeClock(T0)).take(token) == (STATE, WARNINGS)


def test_write_behind_flushes_in_the_background(engine: Engine) -> None:
    behind = WriteBehindHandoffs(StoreChartHandoffs(engine, clock=FakeClock(T0)))
    tokens = [behind.put(STATE, []) for _ in range(20)]
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while rows(engine) < 20 and datetime.now(UTC) < deadline:
        time.sleep(0.05)
    assert rows(engine) == 20
    other = StoreChartHandoffs(engine, clock=FakeClock(T0))
    assert all(other.take(t) == (STATE, []) for t in tokens)


# Pieces that meet: NUL, backslashes, and the letters of its JSON escape.
_TEXT = st.lists(
    st.sampled_from(["\x00", "\\", "\\u0000", "u0000", "a", '"', "\x01"]), max_size=6
).map("".join)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(_TEXT, _JSON, max_size=4))
def test_nul_is_refused_exactly_when_a_key_or_text_holds_one(value: dict[str, object]) -> None:
    # The check reads the JSON text: a backslash and the letters "u0000" are not U+0000.
    if has_nul(value):
        with pytest.raises(ValueError, match="NUL"):
            json_object(value, "state")
    else:
        assert json_object(value, "state") == value
