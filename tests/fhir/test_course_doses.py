"""Infusion and course agents (rituximab, IVIG, cyclophosphamide) read from FHIR per administration.

A chart's course agent dose is one administration's amount (`mg/dose`, `g/dose`), never turned
into a daily or weekly figure; a course total only where the chart writes one.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from myoguide.adapters.batch.patient import patient_row
from myoguide.adapters.fhir import MappingResult, bundle_to_state
from myoguide.bootstrap import build_auditor
from myoguide.entrypoints.cli import main
from myoguide.knowledge.terminology import load_packaged_terminology

TODAY = datetime.date(2026, 6, 1)
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"
IV = {"coding": [{"system": SCT, "code": "47625008", "display": "Intravenous route"}]}
RITUXIMAB = {"coding": [{"system": RX, "code": "121191", "display": "rituximab"}]}
CYCLOPHOSPHAMIDE = {"coding": [{"system": RX, "code": "3002", "display": "cyclophosphamide"}]}
IVIG = {"text": "immune globulin intravenous"}  # IVIG has no verified code: read by name
CHART = Path(__file__).resolve().parent / "charts" / "course-rituximab-infusions.json"


def quantity(value: Any, unit: str) -> dict[str, Any]:
    return {"value": value, "system": UCUM, "code": unit}


def order(
    concept: dict[str, Any],
    dose: dict[str, Any] | None,
    repeat: dict[str, Any] | None = None,
    *,
    rid: str = "mr-1",
    authored: str = "2026-05-01",
) -> dict[str, Any]:
    dosage: dict[str, Any] = {"route": IV}
    if repeat is not None:
        dosage["timing"] = {"repeat": repeat}
    if dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": dose}]
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "authoredOn": authored,
        "medicationCodeableConcept": concept,
        "dosageInstruction": [dosage],
    }


def given(
    concept: dict[str, Any], dose: dict[str, Any] | None, when: str, *, rid: str = "ma-1"
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": rid,
        "status": "completed",
        "medicationCodeableConcept": concept,
        "effectiveDateTime": when,
    }
    if dose is not None:
        res["dosage"] = {"route": IV, "dose": dose}
    return res


def chart(*resources: dict[str, Any]) -> dict[str, Any]:
    base: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "p", "birthDate": "1968-04-02"},
        {
            "resourceType": "Condition",
            "id": "c",
            "code": {"coding": [{"system": SCT, "code": "396230008"}]},
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
        },
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in [*base, *resources]],
    }


def mapped(*resources: dict[str, Any]) -> MappingResult:
    return bundle_to_state(chart(*resources), evaluation_date=TODAY)


def current(result: MappingResult) -> list[dict[str, Any]]:
    meds: list[dict[str, Any]] = result.state["current_medications"]
    return meds


TWICE_TWO_WEEKS_APART = {"frequency": 1, "period": 2, "periodUnit": "wk", "count": 2}
EVERY_FOUR_WEEKS = {"frequency": 1, "period": 4, "periodUnit": "wk", "count": 6}
DAILY_FIVE_DAYS = {"frequency": 1, "period": 1, "periodUnit": "d", "count": 5}


@pytest.mark.parametrize(
    ("concept", "dose", "repeat", "expected"),
    [
        # 1 g IV x2 two weeks apart: 1 g per infusion, not 0.5 g/week.
        (RITUXIMAB, quantity(1, "g"), TWICE_TWO_WEEKS_APART, {"value": 1, "unit": "g/dose"}),
        (
            RITUXIMAB,
            quantity(1000, "mg"),
            TWICE_TWO_WEEKS_APART,
            {"value": 1000, "unit": "mg/dose"},
        ),
        # A single infusion with no period (timing once): still its amount per infusion.
        (RITUXIMAB, quantity(1, "g"), {"count": 1}, {"value": 1, "unit": "g/dose"}),
        (RITUXIMAB, quantity(1, "g"), None, {"value": 1, "unit": "g/dose"}),
        # IVIG 28 g a day for five days (2 g/kg in a 70 kg patient): 28 g per infusion; the
        # course total (140 g) is not written in the chart and is not made up.
        (IVIG, quantity(28, "g"), DAILY_FIVE_DAYS, {"value": 28, "unit": "g/dose"}),
        # IVIG written as a course total (UCUM annotation): read as the course it states.
        (IVIG, quantity(140, "g/{course}"), None, {"value": 140, "unit": "g/course"}),
        # Cyclophosphamide 750 mg/m2 worked out by the prescriber as 1360 mg every 4 weeks.
        (
            CYCLOPHOSPHAMIDE,
            quantity(1360, "mg"),
            EVERY_FOUR_WEEKS,
            {"value": 1360, "unit": "mg/dose"},
        ),
    ],
)
def test_a_course_agent_order_is_read_per_infusion(
    concept: dict[str, Any],
    dose: dict[str, Any],
    repeat: dict[str, Any] | None,
    expected: dict[str, Any],
) -> None:
    result = mapped(order(concept, dose, repeat))
    (med,) = current(result)
    assert med["dose"] == expected
    assert med["last_given"] == "2026-05-01"  # the order's date, as before
    assert not [w.code for w in result.warnings if w.code.startswith("dose_")]


def test_a_dose_per_body_surface_is_not_a_mass_and_keeps_its_warning() -> None:
    result = mapped(order(CYCLOPHOSPHAMIDE, quantity(750, "mg/m2"), EVERY_FOUR_WEEKS))
    (med,) = current(result)
    assert "dose" not in med
    assert "dose_unit_unknown" in [w.code for w in result.warnings]
    assert result.state["unresolved_medications"] == ["cyclophosphamide (dose not readable)"]


def test_a_dose_range_of_a_course_agent_is_per_infusion_and_said_in_words() -> None:
    dosage = {
        "timing": {"repeat": EVERY_FOUR_WEEKS},
        "doseAndRate": [{"doseRange": {"low": quantity(500, "mg"), "high": quantity(1000, "mg")}}],
    }
    res = order(CYCLOPHOSPHAMIDE, None, None)
    res["dosageInstruction"] = [dosage]
    result = mapped(res)
    (med,) = current(result)
    assert med["dose"] == {"value": 1000, "unit": "mg/dose"}
    (note,) = [w for w in result.warnings if w.code == "dose_range"]
    assert "500 to 1000 mg per infusion" in note.message
    assert "/dose" not in note.message
    assert "/day" not in note.message


def test_an_administration_of_1000_mg_alone_is_a_course_given_with_its_date() -> None:
    result = mapped(given(RITUXIMAB, quantity(1000, "mg"), "2026-05-18"))
    assert current(result) == []
    assert result.state["treatment_history"] == [
        {"agent": "rituximab", "outcome": "unknown", "last_given": "2026-05-18"}
    ]


def test_an_order_with_no_dose_takes_the_latest_infusion_given() -> None:
    result = mapped(
        order(RITUXIMAB, None, TWICE_TWO_WEEKS_APART),
        given(RITUXIMAB, quantity(1000, "mg"), "2026-05-04", rid="ma-1"),
        given(RITUXIMAB, quantity(500, "mg"), "2026-05-18", rid="ma-2"),
    )
    (med,) = current(result)
    assert med == {
        "agent": "rituximab",
        "dose": {"value": 500, "unit": "mg/dose"},
        "last_given": "2026-05-18",
    }
    (note,) = [w for w in result.warnings if w.code == "dose_from_administration"]
    assert "500 mg per infusion" in note.message
    assert "2026-05-18" in note.message
    assert "unresolved_medications" not in result.state


def test_an_order_with_a_dose_keeps_it_over_the_infusions_given() -> None:
    result = mapped(
        order(RITUXIMAB, quantity(1, "g"), TWICE_TWO_WEEKS_APART),
        given(RITUXIMAB, quantity(750, "mg"), "2026-05-04"),
    )
    (med,) = current(result)
    assert med["dose"] == {"value": 1, "unit": "g/dose"}
    assert med["last_given"] == "2026-05-04"
    assert "dose_from_administration" not in [w.code for w in result.warnings]


def test_an_administration_in_units_that_are_no_mass_gives_no_dose() -> None:
    result = mapped(
        order(RITUXIMAB, None, TWICE_TWO_WEEKS_APART),
        given(RITUXIMAB, quantity(100, "mL"), "2026-05-04"),
    )
    (med,) = current(result)
    assert "dose" not in med
    assert "dose_missing" in [w.code for w in result.warnings]


def test_agents_not_given_as_courses_keep_their_daily_reading() -> None:
    prednisone = {"coding": [{"system": RX, "code": "8640"}]}
    daily = {"frequency": 2, "period": 1, "periodUnit": "d"}
    (med,) = current(mapped(order(prednisone, quantity(5, "mg"), daily)))
    assert med == {"agent": "prednisone", "dose": {"value": 10, "unit": "mg/day"}}


def recommend(bundle: dict[str, Any], tmp_path: Path, date: str) -> Any:
    """Run `myoguide recommend bundle.json --format json` in process."""
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["recommend", str(path), "--format", "json", "--date", date], out)
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue())


PREDNISONE = {"coding": [{"system": RX, "code": "8640", "display": "prednisone"}]}
ONCE_A_DAY = {"frequency": 1, "period": 1, "periodUnit": "d"}


@pytest.mark.parametrize(
    "resources",
    [
        # One infusion with no period, and a monthly IVIG order: schedules a daily reading could
        # not turn into a figure, which left the drug unreadable and the flare unanswered.
        [order(RITUXIMAB, quantity(1, "g"), {"count": 1})],
        [order(IVIG, quantity(140, "g"), {"frequency": 1, "period": 1, "periodUnit": "mo"})],
        [order(CYCLOPHOSPHAMIDE, quantity(1360, "mg"), EVERY_FOUR_WEEKS)],
        [
            order(RITUXIMAB, None, TWICE_TWO_WEEKS_APART),
            given(RITUXIMAB, quantity(1000, "mg"), "2026-05-18"),
        ],
    ],
    ids=["rituximab-once", "ivig-monthly", "cyclophosphamide", "rituximab-administration"],
)
def test_through_the_command_a_course_agent_never_blocks_the_answer(
    resources: list[dict[str, Any]], tmp_path: Path
) -> None:
    bundle = chart(order(PREDNISONE, quantity(15, "mg"), ONCE_A_DAY, rid="mr-p"), *resources)
    clinical = bundle["entry"][1]["resource"]["clinicalStatus"]["coding"][0]
    clinical["code"] = "relapse"  # a flare after control
    answer = recommend(bundle, tmp_path, TODAY.isoformat())
    codes = [w["code"] for w in answer["warnings"]]
    # The flare is answered (with second-line control the source's scenarios do not apply, and
    # the answer says so), never refused for an unreadable medication.
    assert answer["course"] == "recurrent", codes
    assert "flare_after_second_line_control" in codes
    assert "unresolved_medications" not in codes
    assert not [
        c for c in codes if c.startswith("fhir.dose_") and c != "fhir.dose_from_administration"
    ]
    text = json.dumps(answer)
    for wrong in ("1 g/day", "1 g/week", "140 g/day", "1360 mg/day", "g/dose", "g/course"):
        assert wrong not in " ".join(w["message"] for w in answer["warnings"]), wrong
    assert "Rituximab 1 g/" not in text


def test_the_rituximab_chart_through_the_command(tmp_path: Path) -> None:
    doc = json.loads(CHART.read_text(encoding="utf-8"))
    answer = recommend(doc["bundle"], tmp_path, doc["evaluation_date"])
    notes = [
        n
        for r in answer["recommendations"]
        for a in r["agents"]
        if a["agent"] == "rituximab"
        for n in a["notes"]
    ]
    # Resistant disease (azathioprine failed): rituximab is offered, in use, as a course given.
    assert answer["course"] == "resistant"
    assert notes[0].startswith("In use: the last dose or course was given on 2026-05-18.")
    assert "mg/day" not in json.dumps(notes)
    assert "g/day" not in json.dumps(notes)


@pytest.mark.parametrize("once", [True, False], ids=["single-infusion-flare", "rituximab-chart"])
def test_the_batch_door_reads_course_agents_as_the_command_does(once: bool, tmp_path: Path) -> None:
    if once:
        bundle = chart(
            order(PREDNISONE, quantity(15, "mg"), ONCE_A_DAY, rid="mr-p"),
            order(RITUXIMAB, quantity(1, "g"), {"count": 1}),
        )
        bundle["entry"][1]["resource"]["clinicalStatus"]["coding"][0]["code"] = "relapse"
        on = TODAY
    else:
        doc = json.loads(CHART.read_text(encoding="utf-8"))
        bundle, on = doc["bundle"], datetime.date.fromisoformat(doc["evaluation_date"])
    lines = [orjson.dumps(e["resource"]) for e in bundle["entry"]]
    row = patient_row("p1", lines, {}, load_packaged_terminology(), build_auditor(), on)
    assert row is not None
    answer = recommend(bundle, tmp_path, on.isoformat())
    assert (row["course"], row["scenario"]) == (answer["course"], answer["scenario"])
    assert row["course"] == ("recurrent" if once else "resistant")
    assert not [p for p in row["data_problems"] if "dose" in p or "unresolved" in p]
