"""Issue 21 in a real Chromium at 1366, 1024 and 390 px, with axe-core on every new state.

One save per intent (two rapid submits are one visit), decisions that stick (nothing
preselected on a tie, a refused decision keeps what was typed, coded reasons), visits carried
forward from the latest one, and entry in a clinician's units. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from pathlib import Path
from typing import Any

from pagechecks import axe_clean, by_name, fill, labels_apart, no_sideways_scroll, screenshot
from pageforms import FLARE_ON_PREDNISONE as FLARE_ON_MTX
from pageforms import RESISTANT, fill_resistant_after_azathioprine
from playwright.sync_api import APIResponse, Error, Page, Route, expect


def shot(page: Page, artifacts: Path, name: str) -> None:
    screenshot(page, artifacts, f"day-{name}")


MTX = {
    "current_medications[1].agent": "methotrexate",
    "current_medications[1].dose.value": "15",
    "current_medications[1].dose.unit": "mg/week",
}


def new_patient(page: Page) -> tuple[str, str]:
    label = f"D-{uuid.uuid4().hex[:8]}"
    page.goto("/patients")
    page.locator("#label").fill(label)
    with page.expect_navigation():
        page.get_by_role("button", name="Add patient").click()
    return label, page.url


def exported(page: Page, patient_url: str) -> dict[str, Any]:
    data: dict[str, Any] = page.request.get(patient_url + "/export.json").json()
    return data


def flare_visit_form(page: Page) -> None:
    page.get_by_role("link", name="New visit").click()
    fill(page, FLARE_ON_MTX)
    page.get_by_role("button", name="Add another medication").click()
    fill(page, MTX)


def test_two_rapid_submits_save_one_visit(tab: Page, artifacts: Path, axe_source: str) -> None:
    page = tab
    _, patient_url = new_patient(page)
    flare_visit_form(page)
    held: list[tuple[Route, APIResponse]] = []

    def hold(route: Route) -> None:
        # The server gets and answers each press at once; the browser sees the answers only
        # after both presses, as on a slow line.
        if route.request.method == "POST":
            held.append((route, route.fetch()))
        else:
            route.continue_()

    page.route("**/assess", hold)
    # The second press 300 ms after the first, from the page's own script (Playwright's own
    # click would wait for the first press's page).
    page.evaluate(
        """() => { const b = document.querySelector('button[value=save]');
          b.click(); setTimeout(() => b.click(), 300); }"""
    )
    for _ in range(250):
        if len(held) == 2:
            break
        page.wait_for_timeout(20)
    with page.expect_navigation():
        for route, response in held:
            with contextlib.suppress(Error):  # the first press's page was replaced
                route.fulfill(response=response)
    page.unroute("**/assess")
    assert len(held) == 2, "the browser sent both presses"
    data = exported(page, patient_url)
    assert len(data["visits"]) == 1
    assert len(data["answers"]) == 1
    expect(page.locator(".decision")).to_be_visible()
    shot(page, artifacts, "saved-once")
    axe_clean(page, axe_source, "the answer after two presses")
    no_sideways_scroll(page, "the answer after two presses")
    # Pressing again on the answer page is the same form: still one visit, and it says so.
    with page.expect_navigation():
        page.get_by_role("button", name="Show options and save visit", exact=True).click()
    expect(page.locator("#already-saved")).to_contain_text("it was not saved twice")
    assert len(exported(page, patient_url)["visits"]) == 1
    axe_clean(page, axe_source, "the answer saying it was already saved")


def test_a_decision_sticks_tied_choices_named_and_typed_reasons_kept(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    _, patient_url = new_patient(page)
    flare_visit_form(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Show options and save visit", exact=True).click()
    decision = page.locator("section.decision")
    # Two first choices tie: nothing is preselected, and accepting means naming one.
    expect(decision.locator('input[type="radio"]:checked')).to_have_count(0)
    expect(decision).to_contain_text("Accepted one of the tied first choices")
    options = page.locator("#chosen option")
    expect(options).to_have_count(3)  # "none named" and the two options offered
    page.get_by_label("Chose another option").check()
    page.get_by_label("Reason, if not the first option").select_option("patient_preference")
    page.get_by_label("Reason in your words (optional)").fill("wants fewer tablets")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Record decision").click()
    assert nav.value is not None
    assert nav.value.status == 422
    expect(page.locator("#decision-errors")).to_contain_text("choose the option you chose")
    expect(page.get_by_label("Chose another option")).to_be_checked()
    expect(page.get_by_label("Reason in your words (optional)")).to_have_value(
        "wants fewer tablets"
    )
    expect(page.get_by_label("Reason, if not the first option")).to_have_value("patient_preference")
    shot(page, artifacts, "decision-refused")
    axe_clean(page, axe_source, "a refused decision")
    no_sideways_scroll(page, "a refused decision")
    page.locator("#chosen").select_option("r2_raise_methotrexate")
    with page.expect_navigation():
        page.get_by_role("button", name="Record decision").click()
    assert page.url == patient_url
    (recorded,) = exported(page, patient_url)["decisions"]
    assert recorded["chosen_recommendation"] == "r2_raise_methotrexate"
    assert recorded["reason_code"] == "patient_preference"
    expect(page.locator("table.list")).to_contain_text("patient preference: wants fewer tablets")
    axe_clean(page, axe_source, "the course after a decision")


class Keys:
    """Counts every key pressed on the page."""

    def __init__(self, page: Page) -> None:
        self.page, self.total = page, 0

    def type(self, text: str) -> None:
        for char in text:
            self.page.keyboard.press(char)
            self.total += 1

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.total += 1


def test_selects_choose_by_prefix_and_heights_in_feet_and_inches(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    page.goto("/assess")
    severity = page.locator(by_name("severity"))
    severity.focus()
    page.keyboard.press("m")
    # "m" fits mild and moderate: nothing is chosen silently, and the hint says why.
    expect(severity).to_have_value("")
    expect(page.locator("#severity-typeahead")).to_contain_text("mild or moderate")
    axe_clean(page, axe_source, "a select waiting for the next letter")
    # Typed letters last 1.5 s and axe can take longer on a loaded machine: "m" again first
    # (ignored while "m" still stands, as no option begins "mm"), so "o" always follows "m".
    page.keyboard.press("m")
    page.keyboard.press("o")
    expect(severity).to_have_value("moderate")
    expect(page.locator("#severity-typeahead")).to_have_text("")

    # A two-drug flare, keys counted (tests/web/test_entry.py counts it at every width too).
    page.goto("/assess")
    # The age field takes focus as the page loads; keys typed before that would be lost.
    expect(page.locator(by_name("age_years"))).to_be_focused()
    keys = Keys(page)
    keys.type("58")
    keys.press("Tab")
    keys.type("d")
    keys.press("Tab")
    keys.type("66")  # the weight, with the patient
    keys.press("Tab")
    keys.type("y")  # a flare, which answers "ever controlled"
    keys.press("Tab")
    keys.type("p")
    keys.type("7.5")  # a figure in the drug select goes to its dose; the unit is set from the drug
    keys.press("Tab")  # the second row, there from the start
    keys.type("me")  # "m" alone fits methotrexate and mycophenolate
    keys.type("15")
    expect(page.locator(by_name("current_medications[1].agent"))).to_have_value("methotrexate")
    expect(page.locator(by_name("current_medications[1].dose.unit"))).to_have_value("mg/week")
    page.locator(by_name("height.value")).fill("5'9\"")
    with page.expect_navigation():
        keys.press("Enter")
    print(f"two-drug flare: {keys.total} keystrokes")
    assert keys.total <= 20, keys.total
    expect(page.locator(".entered")).to_contain_text("height 69 in")
    expect(page.locator(".entered")).to_contain_text("methotrexate 15 mg/week")
    shot(page, artifacts, "two-drug-flare")
    axe_clean(page, axe_source, "the two-drug flare answer")
    no_sideways_scroll(page, "the two-drug flare answer")


def test_a_course_carried_forward_says_what_changed_and_its_labels_stay_apart(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    _, patient_url = new_patient(page)
    page.get_by_role("link", name="New visit").click()
    fill_resistant_after_azathioprine(page)
    page.locator(by_name("visit_date")).fill("2026-06-01")
    with page.expect_navigation():
        page.get_by_role("button", name="Show options and save visit", exact=True).click()
    page.locator("#chosen").select_option("resistant_rituximab")
    with page.expect_navigation():
        page.get_by_role("button", name="Record decision").click()
    # The next visit starts from the latest, with the drug decided on offered to confirm.
    page.get_by_role("link", name=re.compile("^New visit from the last one")).click()
    carried = page.locator("#carried")
    expect(carried).to_contain_text("Started from the visit of 2026-06-01")
    expect(carried).to_contain_text("start Rituximab")
    expect(carried).to_contain_text("Flare now is not carried over")
    expect(page.locator(by_name("current_medications[1].agent"))).to_have_value("rituximab")
    expect(page.locator(by_name("flare"))).to_have_value("unknown")
    shot(page, artifacts, "carried-forward")
    axe_clean(page, axe_source, "a visit carried forward")
    no_sideways_scroll(page, "a visit carried forward")
    fill(page, {"flare": "no", "current_medications[0].dose.value": "30"})
    page.locator(by_name("visit_date")).fill("2026-07-01")
    with page.expect_navigation():
        page.get_by_role("button", name="Show options and save visit", exact=True).click()
    changed = page.locator("p.changed")
    expect(changed).to_contain_text("Since the visit of 2026-06-01")
    expect(changed).to_contain_text("started Rituximab")
    expect(changed).to_contain_text("Prednisone 40 mg/day → 30 mg/day")
    axe_clean(page, axe_source, "an answer saying what changed")

    # Ten more visits, saved by the same form posts, to crowd the chart.
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value") or ""
    pid = patient_url.rsplit("/", 1)[1]
    for n in range(10):
        dose = str(30 - 2 * n)
        form = {
            **RESISTANT,
            "csrf": csrf,
            "patient_id": pid,
            "action": "save",
            "save_key": f"crowd-{pid}-{n:02d}-xxxxxxxx",
            "visit_date": f"2026-{8 + n // 4:02d}-{1 + 7 * (n % 4):02d}",
            "current_medications[0].dose.value": dose,
            "current_medications[0].dose.unit": "mg/day",
            "current_medications[1].agent": "rituximab" if n < 6 else "ivig",
        }
        assert page.request.post("/assess", form=form).status == 200
    page.goto(patient_url)
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(12)
    expect(rows.nth(8).locator('td[data-label="Changed since the visit before"]')).to_contain_text(
        "started Intravenous immune globulin (IVIG)"
    )
    expect(rows.nth(8).locator('td[data-label="Changed since the visit before"]')).to_contain_text(
        "stopped Rituximab"
    )
    labels_apart(page)
    shot(page, artifacts, "crowded-course")
    axe_clean(page, axe_source, "a course of twelve visits")
    no_sideways_scroll(page, "a course of twelve visits")
