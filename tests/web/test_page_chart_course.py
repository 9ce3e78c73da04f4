"""A chart's course agent, handed to the page: the form says 1 g per infusion and its last date."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from fastapi.testclient import TestClient

from formhtml import field_value, selected
from myoguide.adapters.fhir import bundle_to_state
from myoguide.bootstrap import ServeConfig, build_http_app

CHART = Path(__file__).resolve().parents[1] / "fhir" / "charts" / "course-rituximab-infusions.json"


def test_the_page_filled_from_a_chart_keeps_rituximab_per_infusion(tmp_path: Path) -> None:
    doc = json.loads(CHART.read_text(encoding="utf-8"))
    on = datetime.date.fromisoformat(doc["evaluation_date"])
    mapped = bundle_to_state(doc["bundle"], evaluation_date=on)
    config = ServeConfig((), False, None, tmp_path)
    with TestClient(build_http_app(config), follow_redirects=False) as client:
        handoffs = client.app.state.web.deps.handoffs  # type: ignore[attr-defined]
        token = handoffs.put(mapped.state, [(w.code, w.message) for w in mapped.warnings])
        html = client.get(f"/assess?chart={token}").text
    row = "current_medications[1]"
    assert selected(html, f"{row}.agent") == "rituximab"
    assert field_value(html, f"{row}.dose.value") == "1"
    unit = html[html.index(f'name="{row}.dose.unit"') :]
    unit = unit[: unit.index("</select>")]
    assert '<option value="g/dose" data-course selected>g per infusion</option>' in unit
    assert unit.count(" selected") == 1
    assert field_value(html, f"{row}.last_given") == "2026-05-18"
