"""Issues 21 and 22 in a real Chromium at 1366, 1024 and 390 px, axe-core clean on every state.

Entry in a clinician's units and keys: infusion and course drugs dosed per infusion or per course
with the date of the last one (never "g/day"), a two-drug flare in at most 20 key presses and a
resistant case with three earlier drugs in at most 40, counted from the keyboard alone; and a
form sent after the session ended comes back filled after signing in again.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from pagechecks import WIDTHS, axe_clean, by_name, no_sideways_scroll, screenshot
from playwright.sync_api import Browser, Page, expect

PASSWORD = "correct horse battery staple"


def shot(page: Page, artifacts: Path, name: str) -> None:
    screenshot(page, artifacts, f"entry-{name}")


class Keys:
    """Presses keys one at a time and counts every one of them."""

    def __init__(self, page: Page) -> None:
        self.page, self.total = page, 0
        self.log: list[str] = []

    def type(self, text: str) -> None:
        for char in text:
            self.press(char)

    def press(self, key: str) -> None:
        where = focused_name(self.page) or focused_text(self.page)
        self.page.keyboard.press(key)
        self.total += 1
        self.log.append(f"{self.total:>2} {key!r:>7} in {where}")

    def sequence(self) -> str:
        """Every press so far, numbered, with the field it went to."""
        return "\n".join(self.log)

    def tab(self, times: int = 1) -> None:
        for _ in range(times):
            self.press("Tab")


def focused_name(page: Page) -> str:
    name: str = page.evaluate("document.activeElement && document.activeElement.name || ''")
    return name


def focused_text(page: Page) -> str:
    text: str = page.evaluate("document.activeElement ? document.activeElement.tagName : ''")
    return text


def test_a_two_drug_flare_with_its_weight_in_twenty_keys(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    page.goto("/assess")
    expect(page.locator(by_name("age_years"))).to_be_focused()
    expect(page.locator(by_name("disease_control_achieved"))).to_have_value("unknown")
    expect(page.locator("#dose-keys")).to_be_visible()  # says where a figure typed in a drug goes
    keys = Keys(page)
    keys.type("58")
    keys.tab()
    keys.type("d")  # dermatomyositis: the only diagnosis beginning so
    keys.tab()
    # The weight sits with the patient, before the medications: a flare's prednisone is per kg.
    assert focused_name(page) == "weight.value"
    keys.type("66")
    keys.tab()
    keys.type("y")  # a flare now
    # A flare is activity after control: "ever controlled" is answered by it and needs no stop.
    control = page.locator(by_name("disease_control_achieved"))
    expect(control).to_have_value("yes")
    expect(control).to_be_disabled()
    keys.tab()
    assert focused_name(page) == "current_medications[0].agent"
    keys.type("p")
    unit = page.locator(by_name("current_medications[0].dose.unit"))
    expect(unit).to_have_value("mg/day")  # from the knowledge's dose period, shown and changeable
    keys.type("7.5")  # a figure in the drug select is the dose: it goes to the Dose field
    dose = page.locator(by_name("current_medications[0].dose.value"))
    expect(dose).to_be_focused()
    expect(dose).to_have_value("7.5")
    keys.tab()  # the unit sits before the amount, so Tab goes on to the second drug
    assert focused_name(page) == "current_medications[1].agent"
    keys.type("me")  # "m" alone fits methotrexate and mycophenolate
    keys.type("15")
    expect(page.locator(by_name("current_medications[1].agent"))).to_have_value("methotrexate")
    expect(page.locator(by_name("current_medications[1].dose.unit"))).to_have_value("mg/week")
    expect(page.locator(by_name("current_medications[1].dose.value"))).to_have_value("15")
    shot(page, artifacts, "two-drug-flare-typed")
    axe_clean(page, axe_source, "the two-drug flare, typed")
    _send_by_enter(page, keys, "two-drug flare with its weight", 20)
    entered = page.locator(".entered")
    expect(entered).to_contain_text("control ever reached: yes; flare now: yes")
    expect(entered).to_contain_text("prednisone 7.5 mg/day, methotrexate 15 mg/week")
    expect(entered).to_contain_text("66 kg")
    expect(page.locator(".summary")).to_contain_text("Flare while taking less than 10 mg/day")
    axe_clean(page, axe_source, "the two-drug flare answer")
    no_sideways_scroll(page, "the two-drug flare answer")


def test_the_unit_is_in_reach_and_a_habitual_tab_still_lands_the_dose(
    tab: Page, axe_source: str
) -> None:
    page = tab
    page.goto("/assess")
    agent = page.locator(by_name("current_medications[0].agent"))
    unit = page.locator(by_name("current_medications[0].dose.unit"))
    dose = page.locator(by_name("current_medications[0].dose.value"))
    # Nothing clinical is preselected: no drug, and no dose or unit to stop at until there is one.
    expect(agent).to_have_value("")
    expect(dose).to_be_disabled()
    expect(unit).to_be_disabled()
    agent.focus()
    page.keyboard.type("7")  # a figure before any drug: nothing moves, nothing is chosen
    expect(agent).to_be_focused()
    expect(agent).to_have_value("")
    page.keyboard.type("me")
    expect(unit).to_have_value("mg/week")
    # Tab from the drug reaches the unit (a real stop); figures typed there still go to the dose.
    page.keyboard.press("Tab")
    expect(unit).to_be_focused()
    page.keyboard.type("20")
    expect(dose).to_be_focused()
    expect(dose).to_have_value("20")
    # Shift+Tab from the dose reaches the unit; typing chooses another unit, the figure stays.
    page.keyboard.press("Shift+Tab")
    expect(unit).to_be_focused()
    page.keyboard.type("mg/d")
    expect(unit).to_have_value("mg/day")
    expect(dose).to_have_value("20")  # never converted
    # A unit the clinician chose stays when the drug changes (and still fits it): prednisone's
    # default is per day, azathioprine's too, and the chosen per week stays through both.
    unit.focus()
    page.keyboard.type("mg/w")
    expect(unit).to_have_value("mg/week")
    agent.focus()
    page.keyboard.type("pr")
    expect(agent).to_have_value("prednisone")
    expect(unit).to_have_value("mg/week")
    page.wait_for_timeout(1_600)  # the typed letters start afresh
    page.keyboard.type("az")
    expect(agent).to_have_value("azathioprine")
    expect(unit).to_have_value("mg/week")
    expect(dose).to_have_value("20")
    axe_clean(page, axe_source, "a medication row changed from the keyboard")


def test_a_resistant_case_with_three_earlier_drugs_in_forty_keys(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    page.goto("/assess")
    keys = Keys(page)
    keys.type("61")
    keys.tab()
    keys.type("d")
    keys.tab()
    keys.type("66")  # the weight
    keys.tab()
    keys.type("n")  # no flare
    keys.tab()
    keys.type("n")  # never brought under control
    keys.tab()
    keys.type("p40")  # the drug, then its dose
    keys.tab(2)  # the empty second row's drug (its unit and dose wait for one); "Add another..."
    keys.tab(2)  # past the height, left blank
    assert focused_name(page) == "treatment_history[0].agent"
    for i, drug in enumerate(("p", "az", "me")):
        if i == 2:  # a third row: "Add another earlier treatment" (focused), from the keyboard
            assert focused_name(page) == "action"
            keys.press("Enter")
            assert focused_name(page) == "treatment_history[2].agent"
        keys.type(drug)
        keys.tab()
        keys.type("i")  # inadequate response: the only outcome beginning so
        if i < 2:
            keys.tab()
    expect(page.locator(by_name("treatment_history[2].agent"))).to_have_value("methotrexate")
    expect(page.locator(by_name("treatment_history[2].outcome"))).to_have_value(
        "inadequate_response"
    )
    axe_clean(page, axe_source, "the resistant case, typed")
    _send_by_enter(page, keys, "resistant case", 40)  # Enter in a select shows the options
    entered = page.locator(".entered")
    expect(entered).to_contain_text("prednisone 40 mg/day")
    expect(entered).to_contain_text(
        "history: prednisone (inadequate response), azathioprine (inadequate response), "
        "methotrexate (inadequate response)"
    )
    expect(page.locator(".summary .course")).to_contain_text("esistant")
    shot(page, artifacts, "resistant-by-keys")
    axe_clean(page, axe_source, "the resistant answer")
    no_sideways_scroll(page, "the resistant answer")


def new_patient(page: Page) -> str:
    page.goto("/patients")
    page.locator("#label").fill(f"E-{uuid.uuid4().hex[:8]}")
    with page.expect_navigation():
        page.get_by_role("button", name="Add patient").click()
    return page.url


def test_an_infusion_drug_is_dosed_per_infusion_with_its_last_date(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    patient_url = new_patient(page)
    page.get_by_role("link", name="New visit").click()
    page.locator(by_name("age_years")).fill("61")
    page.locator(by_name("diagnosis")).select_option("dermatomyositis")
    page.locator(by_name("flare")).select_option("no")
    page.locator(by_name("disease_control_achieved")).select_option("no")
    page.locator(by_name("current_medications[0].agent")).select_option("prednisone")
    page.locator(by_name("current_medications[0].dose.value")).fill("20")
    date = page.locator(by_name("current_medications[1].last_given"))
    expect(date).to_be_hidden()  # only for rituximab, IVIG and cyclophosphamide
    agent = page.locator(by_name("current_medications[1].agent"))
    agent.focus()
    page.keyboard.type("ri")
    expect(agent).to_have_value("rituximab")
    unit = page.locator(by_name("current_medications[1].dose.unit"))
    # Per infusion or per course is the clinician's to say: nothing chosen, no per-day unit.
    expect(unit).to_have_value("")
    offered = unit.evaluate("u => [...u.options].filter(o => !o.disabled).map(o => o.text)")
    assert offered == [
        "— per infusion or course? —",
        "mg per infusion",
        "g per infusion",
        "mg per course",
        "g per course",
    ], offered
    expect(date).to_be_visible()
    page.locator(by_name("current_medications[1].dose.value")).fill("1")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Show options", exact=True).click()
    assert nav.value is not None
    assert nav.value.status == 422
    expect(page.locator("#form-errors")).to_contain_text("choose per infusion or per course")
    axe_clean(page, axe_source, "a course drug without its unit")
    no_sideways_scroll(page, "a course drug without its unit")
    unit.select_option("g/dose")
    date.fill("2026-11-02")
    page.locator(by_name("treatment_history[0].agent")).select_option("azathioprine")
    page.locator(by_name("treatment_history[0].outcome")).select_option("inadequate_response")
    page.locator(by_name("visit_date")).fill("2026-12-01")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Show options and save visit", exact=True).click()
    assert nav.value is not None
    assert nav.value.status == 200
    entered = page.locator(".entered")
    expect(entered).to_contain_text("rituximab 1 g per infusion (last given 2026-11-02)")
    shot(page, artifacts, "rituximab-per-infusion")
    axe_clean(page, axe_source, "an answer with rituximab per infusion")
    no_sideways_scroll(page, "an answer with rituximab per infusion")
    page.emulate_media(media="print")
    printed = page.locator("body").inner_text()
    page.emulate_media(media="screen")
    assert " 1 g/day" not in printed  # prednisone's mg/day stays
    assert "g per infusion" in printed
    stored = page.request.get(patient_url + "/export.json").json()["visits"][-1]["state"]
    rituximab = stored["current_medications"][1]
    assert rituximab["dose"] == {"value": 1.0, "unit": "g/dose"}
    assert rituximab["last_given"] == "2026-11-02"

    # The saved visit, the course page and the next visit carried from it say the same.
    page.goto(patient_url)
    assert " 1 g/day" not in page.locator("main").inner_text()
    axe_clean(page, axe_source, "the course with a rituximab visit")
    page.get_by_role("link", name="New visit from the last one").click()
    expect(unit).to_have_value("g/dose")
    expect(date).to_have_value("2026-11-02")
    axe_clean(page, axe_source, "a visit carried with rituximab per infusion")


# ---- issue 22: a form sent after the session ended comes back after signing in ----------------


@pytest.fixture
def idle_server(launch: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MYOGUIDE_SESSION_IDLE_MINUTES", "0.05")  # 3 s
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    exe = str(Path(sys.executable).with_name("myoguide"))
    for user in ("dr-a", "dr-b"):
        made = subprocess.run(
            [exe, "user", "add", user, "--data-dir", str(data_dir)],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
    return launch(data_dir, host="0.0.0.0")


def sign_in(page: Page, user: str) -> None:
    expect(page.locator("h1")).to_have_text("Sign in")
    page.locator("#username").fill(user)
    page.locator("#password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


TYPED = {
    "age_years": "58",
    "current_medications[0].dose.value": "7.5",
    "weight.value": "11 st 4 lb",
}


def type_and_idle(page: Page) -> None:
    page.goto("/assess")
    sign_in(page, "dr-a")
    page.goto("/assess")
    page.locator(by_name("current_medications[0].agent")).select_option("prednisone")
    for name, value in TYPED.items():
        page.locator(by_name(name)).fill(value)
    page.locator(by_name("diagnosis")).select_option("dermatomyositis")
    page.locator(by_name("flare")).select_option("yes")
    page.wait_for_timeout(4_000)  # past the idle time
    with page.expect_navigation():
        page.get_by_role("button", name="Show options", exact=True).click()
    parts = urlsplit(page.url)
    assert (parts.path, parts.query) == ("/login", "next=/assess&ended=1")  # nothing typed in it


def test_a_form_sent_after_the_session_ended_comes_back_filled(
    browser: Browser, idle_server: Any, artifacts: Path, axe_source: str
) -> None:
    for width, height in WIDTHS:
        context = browser.new_context(
            base_url=idle_server.base, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(15_000)
        try:
            page = context.new_page()
            type_and_idle(page)
            expect(page.locator(".notice")).to_contain_text("Your session has ended")
            axe_clean(page, axe_source, "sign-in after the session ended")
            no_sideways_scroll(page, "sign-in after the session ended")
            sign_in(page, "dr-a")
            expect(page.locator("#restored")).to_contain_text("What you typed is back")
            for name, value in TYPED.items():
                expect(page.locator(by_name(name))).to_have_value(value)
            expect(page.locator(by_name("diagnosis"))).to_have_value("dermatomyositis")
            expect(page.locator(by_name("flare"))).to_have_value("yes")
            expect(page.locator(by_name("current_medications[0].agent"))).to_have_value(
                "prednisone"
            )
            page.screenshot(path=str(artifacts / f"entry-restored-{width}.png"), full_page=True)
            axe_clean(page, axe_source, "the form back after sign-in")
            no_sideways_scroll(page, "the form back after sign-in")
            with page.expect_navigation() as nav:
                page.get_by_role("button", name="Show options", exact=True).click()
            assert nav.value is not None
            assert nav.value.status == 200
            expect(page.locator(".entered")).to_contain_text("prednisone 7.5 mg/day")
            page.goto("/assess")
            expect(page.locator("#restored")).to_have_count(0)  # taken once
        finally:
            context.close()

    # Another clinician signing in at the same browser never gets the first one's entries.
    size = {"width": 1366, "height": 768}
    context = browser.new_context(base_url=idle_server.base, viewport=size)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        type_and_idle(page)
        sign_in(page, "dr-b")
        expect(page.locator("#restored")).to_have_count(0)
        expect(page.locator(by_name("age_years"))).to_have_value("")
    finally:
        context.close()


def _send_by_enter(page: Page, keys: Keys, what: str, most: int) -> None:
    """Send the form with Enter, check the answer page came back, and count the key presses."""
    with page.expect_navigation() as nav:
        keys.press("Enter")
    assert nav.value is not None
    assert nav.value.status == 200
    print(f"{what}: {keys.total} key presses\n{keys.sequence()}")
    assert keys.total <= most, keys.sequence()
