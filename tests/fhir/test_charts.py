"""Realistic EHR charts (tests/fhir/charts): each maps to its expected fields and warning codes."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from myoguide.adapters.fhir import bundle_to_state
from myoguide.bootstrap import Service
from myoguide.errors import InputError

CHARTS = sorted((Path(__file__).resolve().parent / "charts").glob("*.json"))
KEYS = {"about", "evaluation_date", "bundle", "expected_state", "expected_warning_codes"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_the_shelf_is_there() -> None:
    assert len(CHARTS) >= 20
    for path in CHARTS:
        assert set(load(path)) == KEYS, path.name


@pytest.mark.parametrize("path", CHARTS, ids=lambda p: p.stem)
def test_chart_maps_to_its_expected_fields_and_warnings(path: Path) -> None:
    doc = load(path)
    on = datetime.date.fromisoformat(doc["evaluation_date"])
    result = bundle_to_state(doc["bundle"], evaluation_date=on)
    # Only the fields that matter are listed; null means the field must be left out.
    for key, want in doc["expected_state"].items():
        if want is None:
            assert key not in result.state, key
        else:
            assert result.state.get(key) == want, key
    assert sorted({w.code for w in result.warnings}) == doc["expected_warning_codes"]


@pytest.mark.parametrize("path", CHARTS, ids=lambda p: p.stem)
def test_chart_state_is_accepted_or_refused_by_field(path: Path, service: Service) -> None:
    doc = load(path)
    on = datetime.date.fromisoformat(doc["evaluation_date"])
    state = bundle_to_state(doc["bundle"], evaluation_date=on).state
    if "diagnosis" in state:
        service.recommend(state)
        return
    # Only a chart without a usable diagnosis may be refused, and for that field.
    with pytest.raises(InputError) as caught:
        service.recommend(state)
    assert caught.value.field == "diagnosis"


def test_messages_show_no_free_text_from_the_charts() -> None:
    for path in CHARTS:
        doc = load(path)
        on = datetime.date.fromisoformat(doc["evaluation_date"])
        result = bundle_to_state(doc["bundle"], evaluation_date=on)
        shown = " ".join(f"{w.message} {w.resource}" for w in result.warnings)
        shown += " ".join(result.state.get("unresolved_medications", []))
        for secret in ("pat-1", "1968", "prednisoLONE", "Monday", "lisinopril", "F-1203"):
            assert secret not in shown, (path.name, secret)
