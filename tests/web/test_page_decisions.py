"""Issue 21 in process: one save per intent, decisions that stick, words for clinicians."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pageforms import FLARE_ON_PREDNISONE

FLARE_ON_MTX = {
    **FLARE_ON_PREDNISONE,
    "current_medications[0].dose.unit": "mg/day",
    "current_medications[1].agent": "methotrexate",
    "current_medications[1].dose.value": "15",
    "current_medications[1].dose.unit": "mg/week",
    "visit_date": "2026-12-01",
}


def field(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no {name} in the page"
    return match.group(1)


def new_patient(client: httpx.Client | TestClient, label: str) -> tuple[int, str]:
    """Add a patient; return its id and the visit form's page (with csrf and save key)."""
    csrf = field(client.get("/patients").text, "csrf")
    res = client.post("/patients", data={"csrf": csrf, "label": label})
    assert res.status_code == 303
    pid = int(res.headers["location"].rsplit("/", 1)[1])
    return pid, client.get(f"/assess?patient={pid}").text


def test_two_concurrent_saves_of_one_form_are_one_visit(tmp_path: Path, launch: Any) -> None:
    server = launch(tmp_path / "data")
    with httpx.Client(base_url=server.base, timeout=30) as client:
        pid, form = new_patient(client, "P-twice")
        post = {
            **FLARE_ON_MTX,
            "csrf": field(form, "csrf"),
            "save_key": field(form, "save_key"),
            "patient_id": str(pid),
            "action": "save",
        }
        start = threading.Barrier(2)
        pages: list[httpx.Response] = []

        def press() -> None:
            start.wait()
            pages.append(client.post("/assess", data=post))

        presses = [threading.Thread(target=press) for _ in range(2)]
        for t in presses:
            t.start()
        for t in presses:
            t.join()
        assert sorted(p.status_code for p in pages) == [200, 200]
        answers = {re.findall(r"/answers/(\d+)/", p.text)[0] for p in pages}
        assert len(answers) == 1, "both presses show the one answer saved"
        assert sum("was already saved by an earlier press" in p.text for p in pages) == 1
        exported = client.get(f"/patients/{pid}/export.json").json()
        assert len(exported["visits"]) == 1
        assert len(exported["answers"]) == 1
        # A fresh form is a fresh intent: its save is another visit.
        again = client.get(f"/assess?patient={pid}").text
        assert field(again, "save_key") != post["save_key"]
        post2 = {**post, "save_key": field(again, "save_key")}
        assert client.post("/assess", data=post2).status_code == 200
        assert len(client.get(f"/patients/{pid}/export.json").json()["visits"]) == 2


def saved_answer(client: TestClient) -> tuple[int, int, str]:
    pid, form = new_patient(client, "P-decides")
    post = {**FLARE_ON_MTX, "csrf": field(form, "csrf"), "patient_id": str(pid)}
    page = client.post(
        "/assess", data={**post, "save_key": field(form, "save_key"), "action": "save"}
    )
    assert page.status_code == 200
    answer = int(re.findall(r"/answers/(\d+)/decision", page.text)[0])
    return pid, answer, page.text


def test_tied_first_choices_preselect_nothing_and_must_be_named(client: TestClient) -> None:
    pid, answer, page = saved_answer(client)
    form = page[page.index('id="decision-title"') :]
    assert "Accepted one of the tied first choices" in form
    assert " checked" not in form
    csrf = field(page, "csrf")
    res = client.post(
        f"/answers/{answer}/decision",
        data={"csrf": csrf, "patient_id": str(pid), "decision": "accepted", "reason": "typed"},
    )
    assert res.status_code == 422
    assert "the first choices are tied: choose the one you accepted" in res.text
    assert 'value="typed"' in res.text  # what was typed stays
    assert 'value="accepted" checked' in res.text


def test_chose_another_without_naming_it_keeps_what_was_typed(client: TestClient) -> None:
    pid, answer, page = saved_answer(client)
    data = {
        "csrf": field(page, "csrf"),
        "patient_id": str(pid),
        "decision": "chose_other",
        "reason_code": "patient_preference",
        "reason": "wants fewer infusions",
    }
    res = client.post(f"/answers/{answer}/decision", data=data)
    assert res.status_code == 422
    assert "That answer could not be found" not in res.text
    assert "choose the option you chose from the list" in res.text
    assert 'value="wants fewer infusions"' in res.text
    assert '<option value="patient_preference" selected>' in res.text
    assert 'value="chose_other" checked' in res.text
    # An option that was never offered is refused by name, and nothing is stored.
    res = client.post(f"/answers/{answer}/decision", data={**data, "chosen": "add_rituximab"})
    assert res.status_code == 422
    assert "choose one of the options this answer offered" in res.text
    assert client.get(f"/patients/{pid}/export.json").json()["decisions"] == []
    listed = res.text[res.text.index('id="chosen"') : res.text.index('id="reason_code"')]
    offered = re.findall(r'<option value="([a-z0-9_]+)"', listed)
    assert offered == ["r2_raise_prednisone", "r2_raise_methotrexate"]  # only those offered
    res = client.post(f"/answers/{answer}/decision", data={**data, "chosen": offered[-1]})
    assert res.status_code == 303
    (decision,) = client.get(f"/patients/{pid}/export.json").json()["decisions"]
    assert decision["reason_code"] == "patient_preference"
    assert decision["reason"] == "wants fewer infusions"
    visit = client.get(f"/patients/{pid}").text
    assert "patient preference: wants fewer infusions" in visit


# ---- words for clinicians --------------------------------------------------------------------


def test_headline_never_says_under_control_when_flare_is_unknown(client: TestClient) -> None:
    page = client.get("/assess").text
    res = client.post(
        "/assess",
        data={
            "csrf": field(page, "csrf"),
            "age_years": "58",
            "diagnosis": "dermatomyositis",
            "alternative_diagnoses_excluded": "yes",
            "disease_control_achieved": "yes",
            "flare": "unknown",
        },
    )
    assert res.status_code == 200
    head = re.search(r'<h3 class="course">([^<]*)', res.text)
    assert head
    assert "under control" not in head.group(1)
    assert "whether the disease is flaring now is not known" in head.group(1)


def test_guideline_headings_are_plain_words_with_no_ids(client: TestClient) -> None:
    from myoguide.knowledge.loader import load_packaged

    html = client.get("/guideline").text
    visible = re.sub(r"<[^>]+>", " ", html)
    for rec_id in load_packaged().recommendations:
        assert rec_id not in visible, rec_id
    assert "Switch from azathioprine to methotrexate" in visible
    headings = re.findall(r"<(?:h[1-3]|dt)[^>]*>(.*?)</(?:h[1-3]|dt)>", html, re.S)
    assert len(headings) > 30
    for heading in headings:
        words = re.sub(r"<[^>]+>", " ", heading)
        assert not re.search(r"\b[a-z0-9]+_[a-z_]+\b", words), f"an id in a heading: {words}"


def test_banner_messages_lose_raw_urls_and_field_names() -> None:
    from myoguide.adapters.web.forms import FIELD_LABELS
    from myoguide.adapters.web.words import plain_message

    text = plain_message(
        "a yes/no statement at https://example.org/fhir/StructureDefinition/x-y about "
        "alternative_diagnoses_excluded is not readable",
        FIELD_LABELS,
    )
    assert "http" not in text
    assert "_" not in text
    assert "alternative diagnoses excluded" in text


# ---- visits carried forward --------------------------------------------------------------------

RESISTANT = {
    "age_years": "61",
    "diagnosis": "dermatomyositis",
    "weight.value": "66",
    "height.value": "168",
    "disease_control_achieved": "no",
    "flare": "no",
    "alternative_diagnoses_excluded": "yes",
    "current_medications[0].agent": "prednisone",
    "current_medications[0].dose.value": "40",
    "current_medications[0].dose.unit": "mg/day",
    "treatment_history[0].agent": "prednisone",
    "treatment_history[0].outcome": "inadequate_response",
    "treatment_history[1].agent": "azathioprine",
    "treatment_history[1].outcome": "inadequate_response",
}


def test_a_new_visit_carries_the_latest_and_the_drug_decided_on(client: TestClient) -> None:
    pid, form = new_patient(client, "P-carry")
    csrf = field(form, "csrf")

    def save(fields: dict[str, str], day: str, key: str) -> str:
        data = {**fields, "csrf": csrf, "patient_id": str(pid), "visit_date": day}
        res = client.post("/assess", data={**data, "save_key": key, "action": "save"})
        assert res.status_code == 200
        return res.text

    first = save(RESISTANT, "2026-10-01", "a" * 20)
    answer = re.findall(r"/answers/(\d+)/decision", first)[0]
    res = client.post(
        f"/answers/{answer}/decision",
        data={"csrf": csrf, "decision": "accepted", "chosen": "resistant_rituximab"},
    )
    assert res.status_code == 303
    # The next visit starts from this one: rituximab is offered, with no dose, to confirm.
    page = client.get(f"/assess?patient={pid}").text
    assert "Started from the visit of 2026-10-01" in page
    assert "Decided at the visit of 2026-10-01: start Rituximab" in page
    assert 'name="current_medications[1].agent"' in page
    picked = re.search(
        r'name="current_medications\[1\]\.agent".*?<option value="rituximab" selected>',
        page,
        re.S,
    )
    assert picked, "rituximab is in the new visit's medications"
    assert "Flare now is not carried over" in page
    later = save(
        {
            **RESISTANT,
            "current_medications[0].dose.value": "30",
            "current_medications[1].agent": "rituximab",
        },
        "2026-11-01",
        "b" * 20,
    )
    assert "Since the visit of 2026-10-01:" in later
    assert "started Rituximab" in later
    assert "Prednisone 40 mg/day → 30 mg/day" in later
    # Starting from the older visit says so, and that a later visit exists.
    visits = client.get(f"/patients/{pid}/export.json").json()["visits"]
    old = client.get(f"/assess?patient={pid}&from={visits[0]['id']}").text
    assert "1 later visit exists, the latest on 2026-11-01" in old
    course = client.get(f"/patients/{pid}").text
    assert "started Rituximab; Prednisone 40 mg/day → 30 mg/day" in course
    assert "blank=1" in course
    blank = client.get(f"/assess?patient={pid}&blank=1").text
    assert "Started from" not in blank


# ---- entry in a clinician's units -------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value", "unit"),
    [
        ("5 ft 9 in", 69.0, "in"),
        ("5'9\"", 69.0, "in"),
        ("5' 9''", 69.0, "in"),
        ("5ft9", 69.0, "in"),
        ("5 feet 9.5 inches", 69.5, "in"),
        ("6 ft", 72.0, "in"),
        ("175", 175.0, "cm"),
        ("69 in", 69.0, "in"),
    ],
)
def test_heights_as_clinicians_write_them(written: str, value: float, unit: str) -> None:
    from myoguide.adapters.web.forms import state_from_form

    state, form = state_from_form(
        {"age_years": "50", "diagnosis": "dermatomyositis", "height.value": written}
    )
    assert form.errors == {}
    assert state["height"] == {"value": value, "unit": unit}


def test_stones_and_a_slip_of_twelve_inches() -> None:
    from myoguide.adapters.web.forms import state_from_form

    state, form = state_from_form(
        {"age_years": "50", "diagnosis": "dermatomyositis", "weight.value": "11 st 4 lb"}
    )
    assert state["weight"] == {"value": 158.0, "unit": "lb"}
    _, form = state_from_form(
        {"age_years": "50", "diagnosis": "dermatomyositis", "height.value": "5 ft 13 in"}
    )
    assert form.errors["height.value"] == "'5 ft 13 in': the inches must be fewer than 12"
