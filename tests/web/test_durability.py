"""Every acknowledged save survives a SIGKILL of the server, on SQLite and on PostgreSQL.

Writers post "Show options and save visit" over HTTP, each save with its own visit date. Once
enough saves have been answered 200, the server is killed with SIGKILL while the writers keep
posting; it is restarted on the same database and each acknowledged save must be in the
patient's export, with its answer, and the database must be intact.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ACKED_BEFORE_KILL = 30
WRITERS = 4
FIRST_DATE = dt.date(2001, 1, 1)


@dataclass(frozen=True)
class Backend:
    """Where the server keeps its records: extra `serve` arguments and, for SQLite, the file."""

    name: str
    args: tuple[str, ...]
    sqlite_file: Path | None = None


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        # The server's default: SQLite in its --data-dir.
        return Backend("sqlite", (), tmp_path / "data" / "myoguide.db")
    # The session's PostgreSQL is shared with the store tests: start from empty tables.
    url: str = request.getfixturevalue("fresh_postgres_url")
    return Backend("postgresql", ("--database-url", url))


# ---- the stream of saves -----------------------------------------------------------------------


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no csrf field in the page"
    return match.group(1)


def visit_date(n: int) -> str:
    """The visit date that identifies save number `n`."""
    return (FIRST_DATE + dt.timedelta(days=n)).isoformat()


def prednisone_dose(n: int) -> float:
    return 2.5 + (n % 16) * 0.5


def save_form(csrf: str, patient_id: int, n: int) -> dict[str, str]:
    """A valid assessment form that saves visit number `n`."""
    return {
        "csrf": csrf,
        "patient_id": str(patient_id),
        "action": "save",
        "visit_date": visit_date(n),
        "age_years": "58",
        "diagnosis": "dermatomyositis",
        "weight.value": "72",
        "weight.unit": "kg",
        "height.value": "165",
        "height.unit": "cm",
        "disease_control_achieved": "yes",
        "flare": "yes",
        "severity": "moderate",
        "alternative_diagnoses_excluded": "unknown",
        "current_medications[0].agent": "prednisone",
        "current_medications[0].dose.value": str(prednisone_dose(n)),
        "current_medications[0].dose.unit": "mg/day",
        "current_medications[1].agent": "methotrexate",
        "current_medications[1].dose.value": "15",
        "current_medications[1].dose.unit": "mg/week",
    }


@dataclass
class Session:
    """A signed session cookie and its csrf token, for posting forms like a browser."""

    cookies: httpx.Cookies
    csrf: str


def open_session(base: str, patient_id: int) -> Session:
    with httpx.Client(base_url=base, timeout=10) as client:
        page = client.get(f"/assess?patient={patient_id}")
        assert page.status_code == 200
        return Session(httpx.Cookies(client.cookies), csrf_of(page.text))


def save_once(base: str, session: Session, patient_id: int, n: int) -> httpx.Response:
    with httpx.Client(base_url=base, cookies=session.cookies, timeout=10) as client:
        return client.post("/assess", data=save_form(session.csrf, patient_id, n))


@dataclass
class SaveStream:
    """Writer threads posting saves until the server dies; what was acknowledged, and when."""

    base: str
    session: Session
    patient_id: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_n: int = 0
    acked: set[int] = field(default_factory=set)
    attempted: set[int] = field(default_factory=set)
    in_flight_at_kill: set[int] = field(default_factory=set)
    unexpected: list[str] = field(default_factory=list)
    killed: threading.Event = field(default_factory=threading.Event)

    def _take(self) -> int:
        with self.lock:
            n = self.next_n
            self.next_n += 1
            self.attempted.add(n)
            return n

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def run(self) -> None:
        with httpx.Client(base_url=self.base, cookies=self.session.cookies, timeout=10) as client:
            while True:
                n = self._take()
                sent_before_kill = not self.killed.is_set()
                try:
                    r = client.post(
                        "/assess", data=save_form(self.session.csrf, self.patient_id, n)
                    )
                except httpx.TransportError as exc:
                    with self.lock:
                        if not self.killed.is_set():
                            self.unexpected.append(f"save {n}: {exc!r} before the kill")
                        elif sent_before_kill:
                            self.in_flight_at_kill.add(n)
                    return
                with self.lock:
                    if r.status_code == 200 and "Answer for" in r.text:
                        self.acked.add(n)
                    else:
                        self.unexpected.append(f"save {n}: HTTP {r.status_code} {r.text[:300]}")
                        return


def export(base: str, patient_id: int) -> dict[str, Any]:
    r = httpx.get(f"{base}/patients/{patient_id}/export.json", timeout=30)
    assert r.status_code == 200, r.text[:500]
    data: dict[str, Any] = json.loads(r.content)
    return data


def prednisone_of(state: dict[str, Any]) -> Any:
    for med in state.get("current_medications", []):
        if med.get("agent") == "prednisone":
            return med["dose"]["value"]
    return None


# ---- the test ----------------------------------------------------------------------------------


def test_acknowledged_saves_survive_sigkill(backend: Backend, launch: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = launch(data_dir, *backend.args)

    label = f"durability-{backend.name}-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.base, timeout=10) as client:
        token = csrf_of(client.get("/patients").text)
        made = client.post("/patients", data={"csrf": token, "label": label})
        assert made.status_code == 303, made.text[:500]
        patient_id = int(made.headers["location"].rsplit("/", 1)[1])
    session = open_session(server.base, patient_id)

    stream = SaveStream(server.base, session, patient_id)
    writers = [threading.Thread(target=stream.run, daemon=True) for _ in range(WRITERS)]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 60
    while stream.acked_count() < ACKED_BEFORE_KILL:
        assert time.monotonic() < deadline, f"only {stream.acked_count()} saves in 60 s"
        assert not stream.unexpected, stream.unexpected
        time.sleep(0.005)
    # The writers are still posting: kill the server under them.
    stream.killed.set()
    server.kill()
    for writer in writers:
        writer.join(timeout=30)
        assert not writer.is_alive(), "a writer hung after the server was killed"
    assert server.process.returncode == -9
    assert not stream.unexpected, stream.unexpected
    assert stream.in_flight_at_kill, "no save was in flight when the server was killed"

    restarted = launch(data_dir, *backend.args)
    record = export(restarted.base, patient_id)
    assert record["patient"]["label"] == label
    by_date = {v["visit_date"]: v for v in record["visits"]}
    assert len(by_date) == len(record["visits"]), "a save was stored twice"

    acked_dates = {visit_date(n) for n in stream.acked}
    missing = sorted(acked_dates - by_date.keys())
    assert not missing, f"{len(missing)} acknowledged saves were lost: {missing}"
    phantom = sorted(by_date.keys() - {visit_date(n) for n in stream.attempted})
    assert not phantom, f"visits that were never posted: {phantom}"
    answered = {a["visit_id"] for a in record["answers"]}
    for n in stream.acked:
        visit = by_date[visit_date(n)]
        assert prednisone_of(visit["state"]) == prednisone_dose(n), visit
        assert visit["id"] in answered, f"save {n} has its visit but not the answer shown"

    # The restarted server takes new saves, and they are readable at once.
    fresh_n = stream.next_n + 1
    fresh = save_once(restarted.base, open_session(restarted.base, patient_id), patient_id, fresh_n)
    assert fresh.status_code == 200, fresh.text[:500]
    after = export(restarted.base, patient_id)
    assert visit_date(fresh_n) in {v["visit_date"] for v in after["visits"]}
    assert len(after["visits"]) == len(record["visits"]) + 1

    in_flight_kept = {n for n in stream.in_flight_at_kill if visit_date(n) in by_date}
    print(  # shown with -s: how the kill landed
        f"{backend.name}: {len(stream.acked)} acknowledged, {len(stream.in_flight_at_kill)} "
        f"in flight at the kill ({len(in_flight_kept)} of them stored), "
        f"{len(record['visits'])} visits after restart"
    )

    # A clean stop (uvicorn re-raises the SIGTERM it handled, hence -15), then the file.
    restarted.stop()
    assert restarted.process.returncode in (0, -signal.SIGTERM), restarted.output()
    assert "Finished server process" in restarted.output()
    if backend.sqlite_file is not None:
        with sqlite3.connect(backend.sqlite_file) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
            count = db.execute(
                "SELECT count(*) FROM visits WHERE patient_id = ?", (patient_id,)
            ).fetchone()[0]
        assert count == len(after["visits"])
