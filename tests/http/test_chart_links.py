"""The summary card's chart link through a real server: it opens the form filled from the chart
the card was computed from, carries no patient data, and survives a restart."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from helpers import check_cards, hook_request, load_bundle, prefetch_from
from servers import Server, start_server, stop_server
from sqlalchemy import func, select

from formhtml import field_value, selected
from myoguide.adapters.store import default_url, make_engine
from myoguide.adapters.store.tables import ChartHandoffModel
from myoguide.bootstrap import default_service

PV = "/cds-services/myoguide-patient-view"


def _handoff_rows(srv: Server) -> int:
    engine = make_engine(default_url(srv.data_dir))
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(ChartHandoffModel)
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def _assert_filled(html: str, bundle: dict[str, Any]) -> None:
    """The form shows the facts the server read from this chart today."""
    chart = default_service().read_chart(bundle, default_service().today())
    assert "read from the patient's EHR chart" in html
    assert field_value(html, "age_years") == f"{chart.state.age_years:g}"
    assert selected(html, "diagnosis") == chart.state.diagnosis == "dermatomyositis"
    assert selected(html, "current_medications[0].agent") == "prednisone"
    assert field_value(html, "current_medications[0].dose.value") == "20"
    assert selected(html, "current_medications[1].agent") == "methotrexate"
    assert selected(html, "alternative_diagnoses_excluded") == "yes"


def test_the_summary_card_opens_the_chart_it_came_from_also_after_a_restart(
    tmp_path: Path,
) -> None:
    bundle = load_bundle("resistant-dm")["bundle"]
    patient_id, prefetch = prefetch_from(bundle)
    first = start_server(tmp_path)
    second = None
    try:
        res = first.post(PV, hook_request("patient-view", patient_id, prefetch))
        assert res.status_code == 200, res.text
        cards = check_cards(res.json())
        (link,) = cards[0]["links"]
        assert link["label"] == "Open this patient's assessment in myoguide"
        url = urlsplit(link["url"])
        assert f"{url.scheme}://{url.netloc}" == first.base
        assert url.path == "/assess"
        query = parse_qs(url.query)
        assert list(query) == ["chart"]
        (token,) = query["chart"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", token)
        assert patient_id not in link["url"]
        assert "Patient" not in link["url"]
        assert all("links" not in c for c in cards[1:])

        html = httpx.get(link["url"], timeout=30).text
        _assert_filled(html, bundle)
        assert _handoff_rows(first) == 1  # the page wrote the queue before reading it

        # A second call for the same patient gets a token of its own.
        again = first.post(PV, hook_request("patient-view", patient_id, prefetch)).json()
        again_url = again["cards"][0]["links"][0]["url"]
        assert again_url != link["url"]

        unknown = httpx.get(first.base + "/assess?chart=" + "A" * 43, timeout=30)
        assert unknown.status_code == 200
        assert "This link from the EHR has expired" in unknown.text
        assert field_value(unknown.text, "age_years") == ""

        port = int(first.base.rsplit(":", 1)[1])
        out = stop_server(first)
        assert token not in out
        second = start_server(tmp_path, key=first.key, port=port)
        html = httpx.get(link["url"], timeout=30).text
        _assert_filled(html, bundle)
        # Issued just before the stop and never read: written by the queue or at shutdown.
        _assert_filled(httpx.get(again_url, timeout=30).text, bundle)
    finally:
        if second is not None:
            assert token not in stop_server(second)
        elif first.process.poll() is None:
            stop_server(first)


def test_a_patient_without_dm_or_pm_gets_no_card_and_no_hand_off(server: Server) -> None:
    bundle = load_bundle("resistant-dm")["bundle"]
    patient_id, prefetch = prefetch_from(bundle)
    prefetch["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    before = _handoff_rows(server)
    res = server.post(PV, hook_request("patient-view", patient_id, prefetch))
    assert res.status_code == 200, res.text
    assert res.json() == {"cards": []}
    time.sleep(0.6)  # past the write-behind's flush
    assert _handoff_rows(server) == before
