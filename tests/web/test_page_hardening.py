"""Issue 10 in process: sign-in throttle, server-side sessions, headers, API sign-in, faults."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fakes import FakeClock
from myoguide.adapters.store import SigninThrottle, ThrottlePolicy, make_engine, upgrade
from myoguide.bootstrap import ServeConfig, build_http_app, change_password, record_stores

PASSWORD = "correct horse battery"


def _app(data_dir: Path, **extra: object) -> TestClient:
    config = ServeConfig((), False, None, data_dir, require_login=True, host="0.0.0.0", **extra)  # type: ignore[arg-type]
    _, users = record_stores(config)
    if users.count() == 0:
        users.add_user("dr-a", PASSWORD)
    return TestClient(build_http_app(config), follow_redirects=False)


def _csrf(client: TestClient, path: str = "/login") -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def _login(client: TestClient, password: str = PASSWORD) -> int:
    data = {"csrf": _csrf(client), "username": "dr-a", "password": password, "next": "/"}
    return client.post("/login", data=data).status_code


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _app(tmp_path) as c:
        yield c


def test_fifty_wrong_passwords_lock_the_account(client: TestClient) -> None:
    codes = [_login(client, "wrong password!") for _ in range(50)]
    assert codes[0] == 401
    assert 429 in codes
    # The right password is refused too while the lock holds.
    assert _login(client) == 429


def test_the_lock_expires_and_delays_grow(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    upgrade(url)
    clock = FakeClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    throttle = SigninThrottle(
        make_engine(url),
        clock=clock,
        account=ThrottlePolicy(3, 10),
        address=ThrottlePolicy(100, 200),
    )
    waits = []
    for _ in range(10):
        throttle.failed("dr-a", "10.0.0.1")
        waits.append(throttle.wait_seconds("dr-a", "10.0.0.1"))
    assert waits[:3] == [0, 0, 0]
    assert waits[3:9] == [1, 2, 4, 8, 16, 32]
    assert waits[9] == 15 * 60  # locked
    clock.at += dt.timedelta(minutes=16)
    assert throttle.wait_seconds("dr-a", "10.0.0.1") == 0
    throttle.succeeded("dr-a")
    assert throttle.wait_seconds("dr-a", "10.0.0.2") == 0


def test_a_copied_cookie_stops_working_after_logout(client: TestClient) -> None:
    assert _login(client) == 303
    stolen = dict(client.cookies)
    assert client.get("/patients").status_code == 200
    csrf = _csrf(client, "/patients")
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    client.cookies.clear()
    client.cookies.update(stolen)
    res = client.get("/patients")
    assert res.status_code == 303
    assert res.headers["location"].startswith("/login")


def test_a_password_change_ends_sessions(tmp_path: Path) -> None:
    with _app(tmp_path) as c:
        assert _login(c) == 303
        assert c.get("/patients").status_code == 200
        change_password(ServeConfig((), False, None, tmp_path), "dr-a", "a brand new password")
        assert c.get("/patients").status_code == 303


def test_headers_on_every_page(client: TestClient) -> None:
    assert _login(client) == 303
    for path in ("/", "/patients", "/guideline", "/assess", "/login", "/docs"):
        res = client.get(path)
        assert res.status_code == 200, path
        assert "frame-ancestors 'none'" in res.headers["content-security-policy"]
        assert "'unsafe-inline'" not in res.headers["content-security-policy"]
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.headers["referrer-policy"] == "no-referrer"
        assert res.headers["cache-control"] == "no-store"
        # No inline script or handler for the CSP to block.
        assert not re.search(r"<script(?![^>]*\bsrc=)", res.text)
        assert " onclick=" not in res.text


def test_secure_cookie_over_https(tmp_path: Path) -> None:
    with _app(tmp_path, public_base_url="https://myoguide.example.org") as c:
        c.base_url = "https://testserver"  # type: ignore[assignment]
        data = {"csrf": _csrf(c), "username": "dr-a", "password": PASSWORD, "next": "/"}
        res = c.post("/login", data=data)
        assert "secure" in res.headers["set-cookie"].lower()
        # Issue 22: behind an https public URL, every response asks for https only.
        for path in ("/login", "/healthz", "/static/style.css"):
            assert c.get(path).headers["strict-transport-security"] == "max-age=31536000"


def test_no_hsts_without_an_https_public_url(client: TestClient) -> None:
    assert "strict-transport-security" not in client.get("/login").headers


def test_the_api_needs_sign_in_off_loopback(client: TestClient) -> None:
    body = {"age_years": 50}
    assert client.post("/api/recommendations", json=body).status_code == 401
    assert _login(client) == 303
    assert client.post("/api/recommendations", json=body).status_code in (200, 422)


# ---- faults ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a 3 MB tmpfs here (needs root): {made.stderr!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write until the file system has no block left."""
    with path.open("wb") as f:
        try:
            for _ in range(10_000):
                f.write(b"\0" * 65536)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            return
    raise AssertionError("the small disk never filled")


def test_a_full_disk_answers_503_and_keeps_reading(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _app(small_disk, demo=True) as c:
        assert _login(c) == 303
        patients = c.get("/patients")
        patient_id = re.search(r'href="/patients/(\d+)"', patients.text)
        assert patient_id
        _fill(small_disk / "filler")
        csrf = _csrf(c, "/assess")
        form = {
            "csrf": csrf,
            "patient_id": patient_id.group(1),
            "action": "save",
            "visit_date": "2026-01-01",
            "age_years": "58",
            "diagnosis": "dermatomyositis",
            "weight.value": "72",
            "weight.unit": "kg",
            "height.value": "165",
            "height.unit": "cm",
        }
        with caplog.at_level(logging.INFO):
            failed = None
            for n in range(200):
                form["visit_date"] = (dt.date(2001, 1, 1) + dt.timedelta(days=n)).isoformat()
                res = c.post("/assess", data=form)
                if res.status_code != 200:
                    failed = res
                    break
        assert failed is not None, "the disk never filled"
        assert failed.status_code == 503
        assert "cannot be saved" in failed.text
        assert "Traceback" not in failed.text
        assert c.get(f"/patients/{patient_id.group(1)}").status_code == 200
        health = c.get("/healthz")
        assert health.status_code == 503
        assert health.json()["store"] == "not writable"
    assert "DEMO-" not in caplog.text
