"""Issue 22: sign-in sessions end after an idle time and after an absolute time."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fakes import FakeClock
from myoguide.adapters.store import SessionStore, make_engine, upgrade
from myoguide.bootstrap import ServeConfig, build_http_app, record_stores, settings

PASSWORD = "correct horse battery"


def _store(tmp_path: Path, clock: FakeClock) -> SessionStore:
    url = f"sqlite:///{tmp_path / 's.db'}"
    upgrade(url)
    return SessionStore(
        make_engine(url),
        clock=clock,
        lifetime=dt.timedelta(hours=12),
        idle=dt.timedelta(minutes=15),
    )


def test_a_session_left_alone_ends_after_the_idle_time(tmp_path: Path) -> None:
    now = FakeClock(dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC))
    store = _store(tmp_path, now)
    token = store.start("dr-a")
    now.at += dt.timedelta(minutes=14)
    assert store.user_of(token) == "dr-a"
    # Used at 14 minutes: the next 15 count from then.
    now.at += dt.timedelta(minutes=14)
    assert store.user_of(token) == "dr-a"
    now.at += dt.timedelta(minutes=16)
    assert store.user_of(token) is None


def test_a_session_in_use_still_ends_at_the_absolute_time(tmp_path: Path) -> None:
    now = FakeClock(dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC))
    store = _store(tmp_path, now)
    token = store.start("dr-a")
    for _ in range(71):  # every 10 minutes for 11 h 50 min
        now.at += dt.timedelta(minutes=10)
        assert store.user_of(token) == "dr-a"
    now.at += dt.timedelta(minutes=10, seconds=1)  # 12 h after sign-in
    assert store.user_of(token) is None


@pytest.fixture
def quick_idle(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MYOGUIDE_SESSION_IDLE_MINUTES", "0.03")  # 1.8 s
    settings.cache_clear()
    yield
    monkeypatch.delenv("MYOGUIDE_SESSION_IDLE_MINUTES")
    settings.cache_clear()


def test_the_page_signs_out_an_idle_session(tmp_path: Path, quick_idle: None) -> None:
    import re

    config = ServeConfig((), False, None, tmp_path, require_login=True, host="0.0.0.0")
    _, users = record_stores(config)
    users.add_user("dr-a", PASSWORD)
    with TestClient(build_http_app(config), follow_redirects=False) as client:
        match = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert match
        data = {"csrf": match.group(1), "username": "dr-a", "password": PASSWORD, "next": "/"}
        assert client.post("/login", data=data).status_code == 303
        for _ in range(3):  # in use: kept
            time.sleep(0.6)
            assert client.get("/patients").status_code == 200
        time.sleep(2.2)
        res = client.get("/patients")
        # The page says why, once; the form's place is kept for after sign-in.
        assert res.status_code == 303
        assert res.headers["location"] == "/login?next=/patients&ended=1"
        said = client.get(res.headers["location"])
        assert "Your session has ended" in said.text
        again = client.get("/patients")
        assert again.headers["location"] == "/login?next=/patients"
