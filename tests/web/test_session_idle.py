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


TYPED = {
    "age_years": "58",
    "diagnosis": "dermatomyositis",
    "weight.value": "11 st 4 lb",
    "disease_control_achieved": "yes",
    "flare": "yes",
    "current_medications[0].agent": "prednisone",
    "current_medications[0].dose.value": "7.5",
    "current_medications[0].dose.unit": "mg/day",
    "current_medications[1].agent": "rituximab",
    "current_medications[1].dose.value": "1",
    "current_medications[1].dose.unit": "g/dose",
    "current_medications[1].last_given": "2026-11-02",
    "action": "show",
}


def _sign_in(client: TestClient, user: str, next_path: str = "/") -> None:
    import re

    match = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert match
    data = {"csrf": match.group(1), "username": user, "password": PASSWORD, "next": next_path}
    res = client.post("/login", data=data)
    assert res.status_code == 303, res.text


def _post_after_idle(client: TestClient) -> str:
    """Sign in as dr-a, open the form, let the session idle out, send the typed form."""
    import re

    _sign_in(client, "dr-a")
    page = client.get("/assess").text
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match
    time.sleep(2.2)
    res = client.post("/assess", data={**TYPED, "csrf": match.group(1)})
    assert res.status_code == 303
    location = res.headers["location"]
    assert location == "/login?next=/assess&ended=1"
    for value in ("58", "7.5", "2026-11-02", "rituximab"):
        assert value not in location  # nothing typed travels in the URL
    return location


def test_the_form_typed_when_the_session_ended_comes_back_after_sign_in(
    tmp_path: Path, quick_idle: None
) -> None:
    config = ServeConfig((), False, None, tmp_path, require_login=True, host="0.0.0.0")
    _, users = record_stores(config)
    users.add_user("dr-a", PASSWORD)
    users.add_user("dr-b", PASSWORD)
    with TestClient(build_http_app(config), follow_redirects=False) as client:
        location = _post_after_idle(client)
        assert "Your session has ended" in client.get(location).text
        _sign_in(client, "dr-a", "/assess")
        page = client.get("/assess").text
        assert 'id="restored"' in page
        assert 'name="age_years" inputmode="decimal" autocomplete="off" value="58"' in page
        assert 'value="11 st 4 lb"' in page
        assert 'value="7.5"' in page
        assert '<option value="rituximab" selected>' in page
        assert '<option value="g/dose" data-course selected>' in page
        assert 'value="2026-11-02"' in page
        # Taken once: the next visit to the form is a blank one.
        again = client.get("/assess").text
        assert 'id="restored"' not in again
        assert 'value="7.5"' not in again

    # Another user signing in at the same browser never sees the first one's entries.
    with TestClient(build_http_app(config), follow_redirects=False) as client:
        _post_after_idle(client)
        _sign_in(client, "dr-b", "/assess")
        page = client.get("/assess").text
        assert 'id="restored"' not in page
        assert 'value="7.5"' not in page
        _sign_in(client, "dr-a", "/assess")
        assert 'value="7.5"' not in client.get("/assess").text  # gone, not kept for later


def test_a_form_posted_without_its_token_is_not_kept(tmp_path: Path, quick_idle: None) -> None:
    config = ServeConfig((), False, None, tmp_path, require_login=True, host="0.0.0.0")
    _, users = record_stores(config)
    users.add_user("dr-a", PASSWORD)
    with TestClient(build_http_app(config), follow_redirects=False) as client:
        _sign_in(client, "dr-a")
        client.get("/assess")
        time.sleep(2.2)
        res = client.post("/assess", data={**TYPED, "csrf": "not-the-token"})
        assert res.headers["location"] == "/login?next=/assess&ended=1"
        _sign_in(client, "dr-a", "/assess")
        assert 'id="restored"' not in client.get("/assess").text
