"""Bootstrap's overrides in process: a fake clock and a given engine, wired by build_http_app."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from fastapi.testclient import TestClient

from fakes import FakeClock
from myoguide.adapters.store import RecordStore, make_engine, upgrade
from myoguide.bootstrap import ServeConfig, build_http_app

AT = dt.datetime(2026, 2, 3, 9, 0, tzinfo=dt.UTC)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_the_clock_override_dates_the_demo_and_the_form(tmp_path: Path) -> None:
    config = ServeConfig((), False, None, tmp_path, demo=True)
    with TestClient(build_http_app(config, clock=FakeClock(AT)), follow_redirects=False) as c:
        listing = c.get("/patients").text
        ids = sorted(set(map(int, re.findall(r'href="/patients/(\d+)"', listing))))
        assert ids
        assert "DEMO-" in listing
        form = c.get(f"/assess?patient={ids[0]}").text
        assert 'value="2026-02-03"' in form
    # The demo's visits are dated back from the clock's today, none after it.
    records = RecordStore(make_engine(f"sqlite:///{tmp_path / 'myoguide.db'}"))
    days = [e.visit.visit_date for e in records.timeline(ids[0]).visits]
    assert days
    assert max(days) <= AT.date()


def test_every_store_uses_the_one_engine_given(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'given.db'}"
    upgrade(url)
    data_dir = tmp_path / "data"
    config = ServeConfig((), True, None, data_dir)
    with TestClient(build_http_app(config, engine=make_engine(url)), follow_redirects=False) as c:
        token = _csrf(c.get("/patients").text)
        res = c.post("/patients", data={"csrf": token, "label": "WIRED-1"})
        assert res.status_code == 303
        res = c.post(
            "/cds-services/myoguide-patient-view/feedback",
            json={
                "feedback": [
                    {
                        "card": "00000000-0000-4000-8000-000000000000",
                        "outcome": "overridden",
                        "outcomeTimestamp": "2026-02-03T09:00:00Z",
                    }
                ]
            },
        )
        assert res.status_code == 200, res.text
    assert [p.label for p in RecordStore(make_engine(url)).list_patients()] == ["WIRED-1"]
    # Nothing opened a database of its own under the data directory.
    assert not (data_dir / "myoguide.db").exists()


def test_the_submit_route_runs_every_check_the_pages_router_runs() -> None:
    # POST /assess is a plain route that calls the pages' sign-in gate and CSRF check itself
    # (ADR 0042): a check added to the router must be added there too, so this fails first.
    from myoguide.adapters.web.site import pages, signed_in

    assert [d.dependency for d in pages.dependencies] == [signed_in]
