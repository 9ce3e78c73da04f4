"""Issue 8 on the page, in process: each agent's action, "already in use", and control now."""

from __future__ import annotations

from fastapi.testclient import TestClient

from formhtml import answer_page

BASE = {
    "age_years": "58",
    "diagnosis": "dermatomyositis",
    "weight.value": "72",
    "weight.unit": "kg",
    "height.value": "165",
    "height.unit": "cm",
    "alternative_diagnoses_excluded": "yes",
}


def test_an_agent_in_use_reads_continue_already_in_use_never_start(client: TestClient) -> None:
    html = answer_page(
        client,
        {
            **BASE,
            "disease_control_achieved": "no",
            "flare": "no",
            "current_medications[0].agent": "mycophenolate_mofetil",
            "treatment_history[0].agent": "prednisone",
            "treatment_history[0].outcome": "inadequate_response",
            "treatment_history[1].agent": "methotrexate",
            "treatment_history[1].outcome": "inadequate_response",
        },
    )
    option = html[html.index('id="opt-resistant_mycophenolate"') :]
    option = option[: option.index("</li>")]
    assert "already in use" in option
    assert "action-continue" in option
    assert "action-start" not in option


def test_a_course_in_use_says_its_last_date_never_continue(client: TestClient) -> None:
    html = answer_page(
        client,
        {
            **BASE,
            "disease_control_achieved": "no",
            "flare": "no",
            "current_medications[0].agent": "rituximab",
            "current_medications[0].last_given": "2026-03-02",
            "treatment_history[0].agent": "methotrexate",
            "treatment_history[0].outcome": "inadequate_response",
        },
    )
    rituximab = html[html.index('id="opt-resistant_rituximab"') :]
    rituximab = rituximab[: rituximab.index('id="opt-', 10)]
    assert "2026-03-02" in rituximab
    assert "does not say when to judge a course or repeat it" in rituximab
    assert "action-continue" not in rituximab
    assert "action-start" not in rituximab
    # The date comes back in the form, so the next answer keeps it.
    assert 'value="2026-03-02"' in html


def test_control_now_is_not_escalated_on_the_page(client: TestClient) -> None:
    html = answer_page(
        client,
        {
            **BASE,
            "disease_control_achieved": "yes",
            "flare": "no",
            "current_medications[0].agent": "methotrexate",
            "current_medications[0].dose.value": "15",
            "current_medications[0].dose.unit": "mg/week",
            "treatment_history[0].agent": "prednisone",
            "treatment_history[0].outcome": "inadequate_response",
            "treatment_history[1].agent": "rituximab",
            "treatment_history[1].outcome": "responded",
        },
    )
    assert 'id="opt-controlled_maintain"' in html
    assert 'id="opt-resistant_rituximab"' not in html
    assert 'id="opt-resistant_ivig"' not in html


def test_scenario_one_reads_one_of_azathioprine_or_methotrexate(client: TestClient) -> None:
    html = answer_page(
        client,
        {
            **BASE,
            "disease_control_achieved": "yes",
            "flare": "yes",
            "current_medications[0].agent": "prednisone",
            "current_medications[0].dose.value": "20",
            "current_medications[0].dose.unit": "mg/day",
        },
    )
    r1 = html[html.index('id="opt-r1_add_sparing_agent"') :]
    r1 = r1[: r1.index("</li>")]
    assert "One of these, not all: Azathioprine or Methotrexate" in r1
    lead = html[: html.index('id="opt-r1_add_sparing_agent"')]
    # The summary at the top joins the two alternatives with "or", the rest with ";".
    assert 'Azathioprine or <span class="action action-start">start</span> Methotrexate; ' in lead
