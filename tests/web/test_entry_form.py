"""The visit form read into a state: course units, and a flare answering "ever controlled"."""

from __future__ import annotations

from myoguide.adapters.web.forms import state_from_form
from myoguide.adapters.web.words import state_lines
from myoguide.adapters.words import unit_words

COURSE = frozenset({"rituximab", "ivig", "cyclophosphamide"})
BASE = {"age_years": "61", "diagnosis": "dermatomyositis"}


def med(agent: str, value: str, unit: str, last: str = "") -> dict[str, str]:
    row = "current_medications[0]"
    return {
        f"{row}.agent": agent,
        f"{row}.dose.value": value,
        f"{row}.dose.unit": unit,
        f"{row}.last_given": last,
    }


def test_a_course_agent_is_read_per_infusion_with_its_last_date() -> None:
    state, form = state_from_form({**BASE, **med("rituximab", "1", "g/dose", "2026-11-02")}, COURSE)
    assert form.errors == {}
    assert state["current_medications"] == [
        {"agent": "rituximab", "dose": {"value": 1.0, "unit": "g/dose"}, "last_given": "2026-11-02"}
    ]
    assert "rituximab 1 g per infusion (last given 2026-11-02)" in state_lines(state)[2]
    assert unit_words("mg/course") == "mg per course"


def test_a_course_agent_per_day_or_without_a_unit_is_refused_at_its_unit() -> None:
    for unit in ("g/day", "mg/week", ""):
        state, form = state_from_form({**BASE, **med("rituximab", "1", unit)}, COURSE)
        assert "per infusion or per course" in form.errors["current_medications[0].dose.unit"]
        assert "dose" not in state["current_medications"][0]  # never read as per day


def test_a_daily_drug_per_infusion_is_refused_at_its_unit() -> None:
    _, form = state_from_form({**BASE, **med("prednisone", "20", "mg/dose")}, COURSE)
    assert "per day or per week" in form.errors["current_medications[0].dose.unit"]


def test_a_flare_answers_ever_controlled_and_contradicting_it_is_refused() -> None:
    state, form = state_from_form({**BASE, "flare": "yes"}, COURSE)
    assert form.errors == {}
    assert state["flare"] is True
    assert state["disease_control_achieved"] is True
    _, form = state_from_form({**BASE, "flare": "yes", "disease_control_achieved": "no"}, COURSE)
    assert "a flare follows control" in form.errors["disease_control_achieved"]
    state, _ = state_from_form({**BASE, "flare": "no"}, COURSE)
    assert "disease_control_achieved" not in state  # not guessed without a flare
