"""A CDS card's chart link on the page, in process: the form filled from the hand-off, or blank."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from formhtml import field_value, selected
from myoguide.bootstrap import ServeConfig, build_http_app, record_stores

PASSWORD = "correct horse battery"
STATE: dict[str, Any] = {
    "age_years": 62.0,
    "diagnosis": "dermatomyositis",
    "weight": {"value": 165.0, "unit": "lb"},
    "height": {"value": 170.0, "unit": "cm"},
    "disease_control_achieved": False,
    "flare": None,
    "severity": None,
    "current_medications": [
        {"agent": "prednisone", "dose": {"value": 20.0, "unit": "mg/day"}},
        {"agent": "azathioprine", "dose": None},
    ],
    "treatment_history": [{"outcome": "inadequate_response", "agent": "methotrexate"}],
    "ild": None,
    "skin_predominant": None,
    "alternative_diagnoses_excluded": True,
    "unresolved_medications": ["azathioprine (dose not readable)"],
}
WARNINGS = [
    ("flare_unknown", "the record does not state flare status; flare left out"),
    ("dose_unparseable", "the dose value is not a number; azathioprine listed without a dose"),
    ("flare_unknown", "the record does not state flare status; flare left out"),
]


def _client(data_dir: Path, *, login: bool = False) -> TestClient:
    config = ServeConfig(
        (), False, None, data_dir, require_login=login, host="0.0.0.0" if login else "127.0.0.1"
    )
    if login:
        _, users = record_stores(config)
        users.add_user("dr-a", PASSWORD)
    return TestClient(build_http_app(config), follow_redirects=False)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as c:
        yield c


def _hand_off(client: TestClient) -> str:
    handoffs = client.app.state.web.deps.handoffs  # type: ignore[attr-defined]
    token: str = handoffs.put(STATE, WARNINGS)
    return token


def test_the_link_opens_the_form_filled_from_the_chart_with_what_it_could_not_tell(
    client: TestClient,
) -> None:
    token = _hand_off(client)
    res = client.get(f"/assess?chart={token}")
    assert res.status_code == 200
    html = res.text
    assert "read from the patient's EHR chart" in html
    assert "before you rely on the answer" in html
    assert "the record does not state flare status; flare left out (x2)" in html
    assert "azathioprine listed without a dose" in html
    assert field_value(html, "age_years") == "62"
    assert selected(html, "diagnosis") == "dermatomyositis"
    assert field_value(html, "weight.value") == "165 lb"
    assert selected(html, "disease_control_achieved") == "no"
    assert selected(html, "flare") == "unknown"
    assert selected(html, "current_medications[0].agent") == "prednisone"
    assert field_value(html, "current_medications[0].dose.value") == "20"
    assert selected(html, "current_medications[1].agent") == "azathioprine"
    assert selected(html, "treatment_history[0].agent") == "methotrexate"
    # Usable more than once within its hour: a clinician may click twice.
    assert field_value(client.get(f"/assess?chart={token}").text, "age_years") == "62"


def test_an_unknown_token_gives_the_blank_form_saying_the_link_expired(
    client: TestClient,
) -> None:
    for token in ("not-a-token", "x" * 5000, ""):
        res = client.get("/assess", params={"chart": token})
        assert res.status_code == 200
        assert "This link from the EHR has expired" in res.text
        assert field_value(res.text, "age_years") == ""
        assert "read from the patient's EHR chart" not in res.text
    assert "expired" not in client.get("/assess").text


def test_the_chart_page_needs_sign_in_and_sign_in_leads_back_to_it(tmp_path: Path) -> None:
    with _client(tmp_path, login=True) as client:
        token = _hand_off(client)
        res = client.get(f"/assess?chart={token}")
        assert res.status_code == 303
        assert res.headers["location"] == f"/login?next=/assess%3Fchart%3D{token}"
        assert "62" not in res.text
        page = client.get(res.headers["location"]).text
        assert f'value="/assess?chart={token}"' in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf
        data = {
            "csrf": csrf.group(1),
            "username": "dr-a",
            "password": PASSWORD,
            "next": f"/assess?chart={token}",
        }
        res = client.post("/login", data=data)
        assert res.status_code == 303
        assert res.headers["location"] == f"/assess?chart={token}"
        assert field_value(client.get(res.headers["location"]).text, "age_years") == "62"


def _post(client: TestClient, html: str, changes: dict[str, str], drop: str | None = None) -> str:
    """Submit the form as shown (every filled field and ticked box), changed, less one field."""
    fields = dict(re.findall(r'name="([^"]+)"[^>]*?value="([^"]*)"', html))
    for name in re.findall(r'<select name="([^"]+)"', html):
        chosen = selected(html, name)
        if chosen is not None:
            fields[name] = chosen
    fields.pop("action", None)
    fields.update(changes)
    if drop is not None:
        fields.pop(drop)
    res = client.post("/assess", data=fields)
    assert res.status_code == 200, res.text[:300]
    return res.text


def test_drugs_the_chart_could_not_identify_stay_until_unticked(client: TestClient) -> None:
    html = client.get(f"/assess?chart={_hand_off(client)}").text
    box = re.search(r'<input type="checkbox" name="unresolved_medications\[0\]"[^>]*>', html)
    assert box
    assert "checked" in box.group(0)
    assert field_value(html, "unresolved_medications[0]") == "azathioprine (dose not readable)"
    # The clinician adds what the chart lacked (a flare after control) and submits: the answer
    # still knows a drug could not be read...
    flare = {"disease_control_achieved": "yes", "flare": "yes"}
    kept = _post(client, html, flare)
    assert "could not be identified or read (azathioprine (dose not readable))" in kept
    # ...and once the clinician unticks it, it is gone from the answer.
    dropped = _post(client, html, flare, drop="unresolved_medications[0]")
    assert "azathioprine (dose not readable)" not in dropped
