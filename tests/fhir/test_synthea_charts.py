"""Charts as EHRs and Synthea write them, through the mapping, the command and the batch door."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import synthea_shapes

from clirun import run_cli
from myoguide.adapters.batch.patient import patient_row
from myoguide.adapters.fhir import bundle_to_state
from myoguide.bootstrap import build_auditor
from myoguide.entrypoints.cli import main
from myoguide.knowledge.terminology import load_packaged_terminology

CHARTS = sorted((Path(__file__).resolve().parent / "charts").glob("*.json"))
SYNTHEA = [p for p in CHARTS if p.stem.startswith("synthea-")]
# A clinician's words: no URL, no FHIR element names (camelCase), no internal ids (snake_case),
# no UCUM brackets, no talk of bundles or extensions.
NOT_CLINICAL = re.compile(
    r"http|extension|Bundle|\b[a-z]+[A-Z][A-Za-z]+\b|\b[a-z]+_[a-z_]+\b|\[[a-z_]+\]"
)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def recommend(doc: dict[str, Any], tmp_path: Path) -> tuple[int, Any]:
    """Run `myoguide recommend chart.json --format json` in process on a chart's bundle."""
    chart = tmp_path / "chart.json"
    chart.write_text(json.dumps(doc["bundle"]), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(
            ["recommend", str(chart), "--format", "json", "--date", doc["evaluation_date"]], out
        )
    return code, json.loads(out.getvalue()) if code == 0 else err.getvalue()


def test_the_synthea_shelf_is_there() -> None:
    assert len(SYNTHEA) >= 15
    assert {p.stem for p in SYNTHEA} == {f"{n}" for n in synthea_shapes.charts()}


@pytest.mark.parametrize("path", CHARTS, ids=lambda p: p.stem)
def test_every_chart_answers_through_the_command_with_its_readings(
    path: Path, tmp_path: Path
) -> None:
    doc = load(path)
    code, answer = recommend(doc, tmp_path)
    if doc["expected_state"].get("diagnosis", "") is None:
        assert code == 2
        return
    if code == 2:  # only a chart with no usable diagnosis is refused
        assert "diagnosis" in answer
        return
    assert code == 0, answer
    said = {w["code"] for w in answer["warnings"]}
    assert {f"fhir.{c}" for c in doc["expected_warning_codes"]} <= said
    for warning in answer["warnings"]:
        if warning["code"].startswith("fhir."):
            assert NOT_CLINICAL.search(warning["message"]) is None, warning


@pytest.mark.parametrize("path", CHARTS, ids=lambda p: p.stem)
def test_mapping_messages_are_in_a_clinicians_words(path: Path) -> None:
    doc = load(path)
    on = datetime.date.fromisoformat(doc["evaluation_date"])
    for warning in bundle_to_state(doc["bundle"], evaluation_date=on).warnings:
        assert NOT_CLINICAL.search(warning.message) is None, warning
    codes = doc["expected_warning_codes"]
    assert "alternative_diagnoses_unknown" not in codes  # our own extension absent: no problem


def test_a_deceased_patient_is_out_of_scope_with_no_dose(tmp_path: Path) -> None:
    code, answer = recommend(load(SYNTHEA_BY["synthea-deceased"]), tmp_path)
    assert code == 0
    assert answer["course"] == "out_of_scope"
    assert answer["recommendations"] == []
    assert "out_of_scope_deceased" in {w["code"] for w in answer["warnings"]}
    assert "died" in " ".join(w["message"] for w in answer["warnings"])


def test_a_deceased_patient_through_the_installed_command(tmp_path: Path) -> None:
    doc = load(SYNTHEA_BY["synthea-deceased"])
    chart = tmp_path / "chart.json"
    chart.write_text(json.dumps(doc["bundle"]), encoding="utf-8")
    done = run_cli("recommend", str(chart), "--format", "json", "--date", doc["evaluation_date"])
    assert done.code == 0, done.stderr
    assert done.json()["course"] == "out_of_scope"


SYNTHEA_BY = {p.stem: p for p in SYNTHEA}


@pytest.mark.parametrize(
    "name",
    [
        "synthea-renewals-unitless-tablets",
        "synthea-tacrolimus-forms",
        "synthea-tacrolimus-er-and-injection",
        "synthea-weekly-from-text",
        "synthea-taper-lines-by-dates",
        "synthea-taper-lines-same-side",
        "synthea-proposal-draft-not-in-use",
        "synthea-indication-is-not-an-outcome",
    ],
)
def test_ordinary_shapes_do_not_block_the_flare_scenario(name: str, tmp_path: Path) -> None:
    code, answer = recommend(load(SYNTHEA_BY[name]), tmp_path)
    assert code == 0
    assert answer["course"] == "recurrent"
    assert answer["scenario"] is not None
    assert not any(w["code"].startswith("unresolved_medications") for w in answer["warnings"])


def test_a_taper_across_10mg_is_not_guessed(tmp_path: Path) -> None:
    code, answer = recommend(load(SYNTHEA_BY["synthea-taper-lines-across-10mg"]), tmp_path)
    assert code == 0
    assert answer["scenario"] is None
    assert any(w["code"].startswith("unresolved_medications") for w in answer["warnings"])


def test_the_indication_never_makes_rituximab_failed(tmp_path: Path) -> None:
    doc = load(SYNTHEA_BY["synthea-indication-is-not-an-outcome"])
    on = datetime.date.fromisoformat(doc["evaluation_date"])
    history = bundle_to_state(doc["bundle"], evaluation_date=on).state["treatment_history"]
    rituximab = [h for h in history if h["agent"] == "rituximab"]
    assert [h["outcome"] for h in rituximab] == ["unknown"]
    assert {"agent": "methotrexate", "outcome": "unknown"} in history  # prior auth failed


def test_a_big_synthea_chart_maps_correctly_in_well_under_a_second() -> None:
    chart = synthea_shapes.big_chart(1000)
    requests = [e for e in chart["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]
    assert 950 <= len(requests) <= 1050
    started = time.perf_counter()
    result = bundle_to_state(chart, evaluation_date=datetime.date(2026, 6, 1))
    elapsed = time.perf_counter() - started
    state = result.state
    assert state["current_medications"] == [
        {"agent": "prednisone", "dose": {"value": 20, "unit": "mg/day"}}
    ]
    assert state["treatment_history"] == [
        {"agent": "methotrexate", "outcome": "inadequate_response"}
    ]
    assert "unresolved_medications" not in state
    assert state["weight"] == {"value": 81.2, "unit": "kg"}
    # Mapping the same chart again (names now cached) must stay fast too.
    again = time.perf_counter()
    bundle_to_state(chart, evaluation_date=datetime.date(2026, 6, 1))
    assert elapsed < 1.0, elapsed
    assert time.perf_counter() - again < 1.0


def test_the_batch_door_reads_a_chart_as_the_command_does(tmp_path: Path) -> None:
    doc = load(SYNTHEA_BY["synthea-indication-is-not-an-outcome"])
    on = datetime.date.fromisoformat(doc["evaluation_date"])
    lines = [orjson.dumps(e["resource"]) for e in doc["bundle"]["entry"]]
    auditor = build_auditor()
    row = patient_row("p1", lines, {}, load_packaged_terminology(), auditor, on)
    assert row is not None
    code, answer = recommend(doc, tmp_path)
    assert code == 0
    assert (row["course"], row["scenario"]) == (answer["course"], answer["scenario"])
    mapped = {w.code for w in bundle_to_state(doc["bundle"], evaluation_date=on).warnings}
    audited = auditor.audit(doc["bundle"], on)
    assert {p for p in audited.problems if not p.startswith("input.")} <= mapped | {
        f"fhir.{c}" for c in mapped
    }
