"""Issue 21's done-when day, and issue 18's fold, in a real Chromium.

A clinic day of twelve visits for four patients, driven through the page as a clinician would:
new visits, visits carried forward from the latest one, a blank visit, decisions (accepted,
another option with a coded reason, none), reprints of saved visits. At the end the store holds
exactly the visits and decisions made, and each course says what changed between its visits.
axe-core runs on every state visited; widths 1024 and 390 px are checked on a subset of states.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pagechecks import axe_clean, by_name, fill, labels_apart, no_sideways_scroll
from pageforms import FLARE_ON_PREDNISONE, fill_resistant_after_azathioprine
from playwright.sync_api import Browser, BrowserContext, Page, expect

NARROWER = [(1024, 768), (390, 844)]


FLARE_ON_MTX = {**FLARE_ON_PREDNISONE, "alternative_diagnoses_excluded": "yes"}


@pytest.fixture
def tab(browser: Browser, server: Any) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(
        base_url=server.base, viewport={"width": 1366, "height": 768}, locale="en-US"
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


class Day:
    """The clinician's session: every state visited is checked with axe-core."""

    def __init__(self, page: Page, axe_source: str, artifacts: Path) -> None:
        self.page, self.axe, self.artifacts = page, axe_source, artifacts
        self.states = 0

    def check(self, what: str, *, widths: bool = False) -> None:
        axe_clean(self.page, self.axe, what)
        no_sideways_scroll(self.page, what)
        self.states += 1
        if widths:
            for width, height in NARROWER:
                self.page.set_viewport_size({"width": width, "height": height})
                axe_clean(self.page, self.axe, f"{what} at {width} px")
                no_sideways_scroll(self.page, f"{what} at {width} px")
            self.page.set_viewport_size({"width": 1366, "height": 768})

    def new_patient(self) -> str:
        label = f"Day-{uuid.uuid4().hex[:8]}"
        self.page.goto("/patients")
        self.page.locator("#label").fill(label)
        with self.page.expect_navigation():
            self.page.get_by_role("button", name="Add patient").click()
        return self.page.url

    def open_form(self, patient_url: str, link: str | re.Pattern[str]) -> None:
        self.page.goto(patient_url)
        self.page.get_by_role("link", name=link).click()
        expect(self.page.locator(by_name("visit_date"))).to_be_visible()

    def save(self, day: str, what: str, *, widths: bool = False) -> None:
        self.page.locator(by_name("visit_date")).fill(day)
        with self.page.expect_navigation():
            self.page.get_by_role("button", name="Show options and save visit", exact=True).click()
        expect(self.page.locator(".decision")).to_contain_text(f"Visit of {day} saved")
        self.check(what, widths=widths)

    def decide(
        self, decision: str, chosen: str | None = None, code: str = "", text: str = ""
    ) -> None:
        page = self.page
        page.locator(f'section.decision input[name="decision"][value="{decision}"]').check()
        if chosen == "first":
            page.locator("#chosen").select_option(index=1)
        elif chosen:
            page.locator("#chosen").select_option(chosen)
        if code:
            page.get_by_label("Reason, if not the first option").select_option(code)
        if text:
            page.get_by_label("Reason in your words (optional)").fill(text)
        with page.expect_navigation():
            page.get_by_role("button", name="Record decision").click()
        assert re.search(r"/patients/\d+$", page.url), page.url

    def reprint(self, patient_url: str, row: int, what: str) -> Page:
        """Open a saved visit from its course and show it as printed."""
        page = self.page
        page.goto(patient_url)
        page.locator("table.list tbody tr").nth(row).locator("td a").first.click()
        expect(page.locator("#readonly")).to_be_visible()
        self.check(f"{what} on screen")
        page.emulate_media(media="print")
        expect(page.locator(".print-head")).to_be_visible()
        expect(page.locator("section.decision")).to_have_count(0)
        page.screenshot(path=str(self.artifacts / f"day12-{what}.png"), full_page=True)
        return page

    def export(self, patient_url: str) -> dict[str, Any]:
        data: dict[str, Any] = self.page.request.get(patient_url + "/export.json").json()
        return data


R1_FLARE = {
    "age_years": "45",
    "diagnosis": "polymyositis",
    "weight.value": "80",
    "disease_control_achieved": "yes",
    "flare": "yes",
    "alternative_diagnoses_excluded": "yes",
    "current_medications[0].agent": "prednisone",
    "current_medications[0].dose.value": "15",
}
CONTROLLED = {
    "age_years": "50",
    "diagnosis": "dermatomyositis",
    "weight.value": "70",
    "disease_control_achieved": "yes",
    "flare": "no",
    "alternative_diagnoses_excluded": "yes",
    "current_medications[0].agent": "prednisone",
    "current_medications[0].dose.value": "5",
}
CARRIED = re.compile("^New visit from the last one")


def test_a_clinic_day_of_twelve_visits_leaves_exactly_what_was_done(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    day = Day(tab, axe_source, artifacts)
    page = tab
    a, b, c, d = (day.new_patient() for _ in range(4))
    day.check("a new patient's empty course", widths=True)

    # Morning: each patient's first visit, new.
    day.open_form(a, "New visit")
    fill_resistant_after_azathioprine(page)
    day.check("a new visit's form, filled", widths=True)
    day.save("2026-06-01", "A's first answer")
    day.decide("accepted", "resistant_rituximab")

    day.open_form(b, "New visit")
    fill(page, FLARE_ON_MTX)
    page.get_by_role("button", name="Add another medication").click()
    fill(page, {"current_medications[1].agent": "methotrexate"})
    fill(
        page,
        {"current_medications[1].dose.value": "15", "current_medications[1].dose.unit": "mg/week"},
    )
    day.save("2026-06-02", "B's first answer (tied first choices)")
    expect(page.locator('section.decision input[type="radio"]:checked')).to_have_count(0)
    day.decide("chose_other", "r2_raise_methotrexate", "patient_preference", "fewer tablets")

    day.open_form(c, "New visit")
    fill(page, R1_FLARE)
    day.save("2026-06-03", "C's first answer, a flare above 10 mg/day", widths=True)
    # The resistant ladder sits beneath "manage as resistant", not beside it.
    folded = page.locator("#opt-r1_manage_as_resistant .folded")
    expect(folded.get_by_role("heading", level=4)).to_contain_text(
        "Manage as resistant disease: the"
    )
    expect(folded.locator("#opt-resistant_rituximab")).to_be_visible()
    expect(page.locator("section.answer > ol.options > li.option")).to_have_count(2)
    day.decide("chose_other", "resistant_rituximab", "clinical_judgment")

    day.open_form(d, "New visit")
    fill(page, CONTROLLED)
    day.save("2026-06-04", "D's first answer, controlled")
    day.decide("accepted", "first")

    # Later visits, carried forward from each patient's latest.
    day.open_form(a, CARRIED)
    expect(page.locator("#carried")).to_contain_text("Started from the visit of 2026-06-01")
    expect(page.locator(by_name("current_medications[1].agent"))).to_have_value("rituximab")
    day.check("A's visit carried forward", widths=True)
    fill(page, {"flare": "no", "current_medications[0].dose.value": "30"})
    day.save("2026-07-01", "A's second answer")
    expect(page.locator("p.changed")).to_contain_text("started Rituximab")

    day.open_form(b, CARRIED)
    fill(page, {"flare": "no", "current_medications[1].dose.value": "20"})
    day.save("2026-07-02", "B's second answer")
    day.decide("accepted", "first")

    day.open_form(c, CARRIED)
    expect(page.locator(by_name("current_medications[1].agent"))).to_have_value("rituximab")
    fill(page, {"flare": "no", "current_medications[0].dose.value": "30"})
    day.save("2026-07-03", "C's second answer")
    day.decide("declined", code="other", text="review next month first")

    day.open_form(d, CARRIED)
    fill(page, {"flare": "yes"})
    day.save("2026-07-04", "D's second answer, a flare")

    day.open_form(a, CARRIED)
    fill(page, {"flare": "no", "current_medications[0].dose.value": "20"})
    day.save("2026-08-01", "A's third answer")

    day.open_form(b, CARRIED)
    fill(page, {"flare": "no"})
    day.save("2026-08-02", "B's third answer")

    # D comes back and is entered afresh, not from the last visit.
    day.open_form(d, "New blank visit")
    expect(page.locator("#carried")).to_have_count(0)
    fill(page, {**CONTROLLED, "flare": "yes", "current_medications[0].dose.value": "7.5"})
    day.save("2026-08-04", "D's blank visit")

    day.open_form(a, CARRIED)
    fill(page, {"flare": "no"})
    day.save("2026-09-01", "A's fourth answer", widths=True)
    day.decide("accepted", "first")

    # Reprints of saved visits: shown as printed, nothing stored by them.
    before = {p: day.export(p) for p in (a, b, c, d)}
    printed = day.reprint(c, 0, "C's first visit reprinted")
    expect(
        printed.locator("#opt-r1_manage_as_resistant .folded #opt-resistant_rituximab")
    ).to_be_visible()
    expect(printed.locator(".folded h4")).to_be_visible()
    page.emulate_media(media="screen")
    day.reprint(a, 0, "A's first visit reprinted")
    page.emulate_media(media="screen")
    assert {p: day.export(p) for p in (a, b, c, d)} == before, "a reprint stored something"

    # Exactly the visits and decisions made, on the days they were made.
    expected_visits = {
        a: ["2026-06-01", "2026-07-01", "2026-08-01", "2026-09-01"],
        b: ["2026-06-02", "2026-07-02", "2026-08-02"],
        c: ["2026-06-03", "2026-07-03"],
        d: ["2026-06-04", "2026-07-04", "2026-08-04"],
    }
    expected_decisions: dict[str, list[tuple[str, str, str | None, str | None, str | None]]] = {
        a: [
            ("2026-06-01", "accepted", "resistant_rituximab", None, None),
            ("2026-09-01", "accepted", "*", None, None),
        ],
        b: [
            ("2026-06-02", "chose_other", "r2_raise_methotrexate", "patient_preference",
             "fewer tablets"),
            ("2026-07-02", "accepted", "*", None, None),
        ],
        c: [
            ("2026-06-03", "chose_other", "resistant_rituximab", "clinical_judgment", None),
            ("2026-07-03", "declined", None, "other", "review next month first"),
        ],
        d: [("2026-06-04", "accepted", "*", None, None)],
    }  # fmt: skip
    total_visits = total_decisions = 0
    for patient, days in expected_visits.items():
        data = day.export(patient)
        assert [v["visit_date"] for v in data["visits"]] == days
        assert len(data["answers"]) == len(days), "one answer a saved visit, no more"
        visit_day = {v["id"]: v["visit_date"] for v in data["visits"]}
        answer_day = {x["id"]: visit_day[x["visit_id"]] for x in data["answers"]}
        first_option = {x["id"]: _first(x["result"]) for x in data["answers"]}
        got = [
            (
                answer_day[x["answer_id"]],
                x["decision"],
                x["chosen_recommendation"],
                x["reason_code"],
                x["reason"],
            )
            for x in data["decisions"]
        ]
        want = [
            (
                when,
                what,
                next(first_option[i] for i, dd in answer_day.items() if dd == when)
                if chosen == "*"
                else chosen,
                code,
                text,
            )
            for when, what, chosen, code, text in expected_decisions[patient]
        ]
        assert got == want
        total_visits += len(data["visits"])
        total_decisions += len(data["decisions"])
    assert (total_visits, total_decisions) == (12, 7)

    # Each course says what changed between its visits.
    changes = {
        a: [
            "first visit",
            ["started Rituximab", "Prednisone 40 mg/day → 30 mg/day"],
            ["Prednisone 30 mg/day → 20 mg/day"],
            "nothing entered changed",
        ],
        b: [
            "first visit",
            ["Methotrexate 15 mg/week → 20 mg/week", "flare: yes → no"],
            "nothing entered changed",
        ],
        c: ["first visit",
            ["started Rituximab", "Prednisone 15 mg/day → 30 mg/day", "flare: yes → no"]],
        d: ["first visit", ["flare: no → yes"], ["Prednisone 5 mg/day → 7.5 mg/day"]],
    }  # fmt: skip
    for patient, rows in changes.items():
        page.goto(patient)
        cells = page.locator('table.list tbody td[data-label="Changed since the visit before"]')
        expect(cells).to_have_count(len(rows))
        for n, want_row in enumerate(rows):
            if isinstance(want_row, str):
                expect(cells.nth(n)).to_have_text(want_row)
            else:
                for part in want_row:
                    expect(cells.nth(n)).to_contain_text(part)
        labels_apart(page)
        day.check(f"the course of {patient}", widths=patient == a)
    page.screenshot(path=str(artifacts / "day12-course-a.png"), full_page=True)
    assert day.states >= 20


def _first(result: dict[str, Any]) -> str | None:
    recs = result.get("recommendations") or []
    return str(recs[0]["id"]) if recs else None
