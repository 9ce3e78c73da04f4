"""Issue 11 in a real Chromium at laptop, tablet and phone widths, with axe-core on every state.

Visits that stay true, fast entry (keystrokes counted), every invalid field in one response,
body size refused or confirmed, an answer that leads with the decision, print for the chart,
no sideways scroll, a readable timeline, sources to follow, and contrast of controls and focus.
Screenshots and PDFs go to test-artifacts/.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pagechecks import (
    IDS,
    WIDTHS,
    axe_clean,
    by_name,
    fill,
    labels_apart,
    no_sideways_scroll,
    screenshot,
)
from pageforms import FLARE_ON_PREDNISONE
from pageforms import RESISTANT as SHARED_RESISTANT
from playwright.sync_api import Browser, BrowserContext, Page, expect

from myoguide.knowledge.loader import load_packaged

KB = load_packaged()


@pytest.fixture(params=WIDTHS, ids=IDS)
def viewport(request: pytest.FixtureRequest) -> tuple[int, int]:
    size: tuple[int, int] = request.param
    return size


@pytest.fixture
def ctx(browser: Browser, server: Any, viewport: tuple[int, int]) -> Iterator[BrowserContext]:
    width, height = viewport
    context = browser.new_context(
        base_url=server.base, viewport={"width": width, "height": height}, locale="en-US"
    )
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def tab(ctx: BrowserContext) -> Page:
    return ctx.new_page()


def shot(page: Page, artifacts: Path, name: str) -> None:
    screenshot(page, artifacts, f"clinic-{name}")


def submit(page: Page, name: str = "Show options") -> int:
    with page.expect_navigation() as nav:
        page.get_by_role("button", name=name, exact=True).click()
    assert nav.value is not None
    return nav.value.status


FLARE = FLARE_ON_PREDNISONE
RESISTANT = {**SHARED_RESISTANT, "height.value": "168"}
AZA_FAILED = {
    "treatment_history[1].agent": "azathioprine",
    "treatment_history[1].outcome": "inadequate_response",
}


def fill_resistant(page: Page) -> None:
    """Fill resistant DM: prednisone and azathioprine both answered inadequately."""
    fill(page, RESISTANT)
    page.get_by_role("button", name="Add another earlier treatment").click()
    fill(page, AZA_FAILED)


MTX = {
    "current_medications[1].agent": "methotrexate",
    "current_medications[1].dose.value": "15",
    "current_medications[1].dose.unit": "mg/week",
}


def fill_flare_on_mtx(page: Page) -> None:
    """Fill a flare on 7.5 mg/day prednisone and methotrexate: two options tie at rank 1."""
    fill(page, FLARE)
    page.get_by_role("button", name="Add another medication").click()
    fill(page, MTX)


def new_patient(page: Page) -> tuple[str, str]:
    label = f"T-{uuid.uuid4().hex[:8]}"
    page.goto("/patients")
    page.locator("#label").fill(label)
    with page.expect_navigation():
        page.get_by_role("button", name="Add patient").click()
    return label, page.url


def visit_count(page: Page, patient_url: str) -> int:
    data = page.request.get(patient_url + "/export.json").json()
    return len(data["visits"])


# ---- 1. visits that stay true ----------------------------------------------------------------


def test_past_visit_opens_read_only_with_its_date_answer_and_decision(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    label, patient_url = new_patient(page)
    page.get_by_role("link", name="New visit").click()
    past = dt.date(2026, 8, 31)
    fill_flare_on_mtx(page)
    page.locator(by_name("visit_date")).fill(past.isoformat())
    assert submit(page, "Show options and save visit") == 200
    page.get_by_label("Chose another option").check()
    page.locator("#chosen").select_option("r2_raise_methotrexate")
    page.locator("#reason").fill("prefers less prednisone")
    with page.expect_navigation():
        page.get_by_role("button", name="Record decision").click()
    assert page.url == patient_url
    before = visit_count(page, patient_url)
    assert before == 1

    page.get_by_role("link", name=past.isoformat(), exact=True).click()
    expect(page.locator("h1")).to_have_text(f"{label}: visit of {past.isoformat()}")
    expect(page.locator("form.assess")).to_have_count(0)  # read-only: nothing to save
    expect(page.locator("#readonly")).to_contain_text(f"knowledge {KB.knowledge_version}")
    expect(page.locator(".recorded")).to_contain_text(
        "chose Methotrexate (prefers less prednisone)"
    )
    expect(page.locator(".summary .course")).to_contain_text("Flare while taking less than 10")
    expect(page.locator(".entered")).to_contain_text("prednisone 7.5 mg/day")
    shot(page, artifacts, "visit-read-only")
    axe_clean(page, axe_source, "a past visit")
    no_sideways_scroll(page, "a past visit")
    page.reload()
    assert visit_count(page, patient_url) == before  # viewing saves nothing

    # The old link (?visit=) no longer opens a form that would save a copy under today's date.
    visit_id = re.search(r"/visits/(\d+)$", page.url)
    assert visit_id
    pid = patient_url.rsplit("/", 1)[1]
    page.goto(f"/assess?patient={pid}&visit={visit_id.group(1)}")
    assert page.url.endswith(f"/patients/{pid}/visits/{visit_id.group(1)}")

    # "New visit from this one" is the explicit way to start from it: today's date, its data.
    page.get_by_role("link", name="New visit from this one").click()
    expect(page.locator("#carried")).to_contain_text(f"visit of {past.isoformat()}")
    today = page.locator(by_name("visit_date")).input_value()
    assert today != past.isoformat()
    expect(page.locator(by_name("current_medications[0].dose.value"))).to_have_value("7.5")
    assert visit_count(page, patient_url) == before
    page.locator(by_name("current_medications[0].dose.value")).fill("20")
    assert submit(page, "Show options and save visit") == 200
    assert visit_count(page, patient_url) == before + 1
    dates = [
        v["visit_date"] for v in page.request.get(patient_url + "/export.json").json()["visits"]
    ]
    assert dates == [past.isoformat(), today]


# ---- 2. fast, forgiving entry ------------------------------------------------------------------


class Keys:
    """Counts every key pressed on the page, and how many of them were Tab."""

    def __init__(self, page: Page) -> None:
        self.page, self.total, self.tabs = page, 0, 0

    def type(self, text: str) -> None:
        for char in text:
            self.page.keyboard.press(char)
            self.total += 1

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.total += 1
        self.tabs += key == "Tab"


def test_flare_case_in_twenty_keystrokes_half_of_them_tab_at_most(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    page.goto("/assess")
    expect(page.locator(by_name("age_years"))).to_be_focused()  # focus starts in the first field
    expect(page.locator(by_name("diagnosis"))).to_have_value("")  # chosen explicitly
    axe_clean(page, axe_source, "the empty form")
    keys = Keys(page)
    keys.type("58")
    keys.press("Tab")
    keys.type("d")  # type-ahead: dermatomyositis
    keys.press("Tab")
    keys.type("72")  # the weight, with the patient before the medications
    keys.press("Tab")
    keys.type("y")  # flare now: yes (which answers "ever controlled" too)
    keys.press("Tab")
    keys.type("p")  # prednisone
    keys.type("7.5")  # a figure in the drug select goes to the row's dose
    expect(page.locator(by_name("weight.value"))).to_have_value("72")
    expect(page.locator(by_name("current_medications[0].dose.value"))).to_have_value("7.5")
    expect(page.locator(by_name("diagnosis"))).to_have_value("dermatomyositis")
    expect(page.locator(by_name("current_medications[0].agent"))).to_have_value("prednisone")
    expect(page.locator(by_name("current_medications[0].dose.unit"))).to_have_value("mg/day")
    shot(page, artifacts, "keyboard-flare-filled")
    with page.expect_navigation() as nav:
        keys.press("Enter")
    assert nav.value is not None
    assert nav.value.status == 200
    print(f"flare case: {keys.total} keystrokes, {keys.tabs} Tab")
    assert keys.total <= 20, keys.total
    assert keys.tabs * 2 <= keys.total, (keys.tabs, keys.total)
    summary = page.locator(".summary")
    expect(summary).to_contain_text("Flare while taking less than 10 mg/day")
    expect(summary.locator("strong.dose").first).to_be_visible()
    expect(summary).to_be_in_viewport()
    shot(page, artifacts, "keyboard-flare-answer")
    axe_clean(page, axe_source, "the flare answer")


def test_enter_in_a_select_submits_and_rows_are_added_by_keyboard(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    page.goto("/assess")
    fill(page, FLARE)
    add = page.get_by_role("button", name="Add another medication")
    add.focus()
    page.keyboard.press("Enter")
    # Two rows are there from the start; the button adds a third.
    new_agent = page.locator(by_name("current_medications[2].agent"))
    expect(new_agent).to_be_focused()
    expect(page.get_by_role("group", name="Medication 3")).to_be_visible()
    page.keyboard.type("meth")
    expect(new_agent).to_have_value("methotrexate")
    # The unit follows the drug's dose period, from the knowledge.
    expect(page.locator(by_name("current_medications[2].dose.unit"))).to_have_value("mg/week")
    page.keyboard.press("Tab")
    page.keyboard.type("15")
    axe_clean(page, axe_source, "the form with an added row")
    new_agent.focus()
    with page.expect_navigation() as nav:
        page.keyboard.press("Enter")  # Enter in a select submits too
    assert nav.value is not None
    assert nav.value.status == 200
    expect(page.locator(".entered")).to_contain_text("methotrexate 15 mg/week")
    shot(page, artifacts, "enter-in-select-answer")


def test_form_works_without_its_script(browser: Browser, server: Any, artifacts: Path) -> None:
    for width, height in WIDTHS:
        context = browser.new_context(
            base_url=server.base, viewport={"width": width, "height": height},
            java_script_enabled=False,
        )  # fmt: skip
        try:
            page = context.new_page()
            page.goto("/assess")
            fill(page, FLARE)
            # Enter in a text field presses the first submit button: "show", not "add a row".
            page.locator(by_name("weight.value")).focus()
            with page.expect_navigation() as nav:
                page.keyboard.press("Enter")
            assert nav.value is not None
            assert nav.value.status == 200
            expect(page.locator(".summary")).to_be_visible()
            # Adding a row without the script: the server adds it, keeps what was typed.
            page.goto("/assess")
            fill(page, FLARE)
            assert submit(page, "Add another medication") == 200
            expect(page.locator(by_name("current_medications[1].agent"))).to_be_focused()
            expect(page.locator(by_name("current_medications[0].dose.value"))).to_have_value("7.5")
            expect(page.locator(by_name("age_years"))).to_have_value("58")
            fill(page, {"current_medications[1].agent": "methotrexate",
                        "current_medications[1].dose.value": "15",
                        "current_medications[1].dose.unit": "mg/week"})  # fmt: skip
            assert submit(page) == 200
            expect(page.locator(".entered")).to_contain_text("methotrexate 15 mg/week")
            page.screenshot(path=str(artifacts / f"clinic-no-script-{width}.png"), full_page=True)
        finally:
            context.close()


def test_every_invalid_field_in_one_response_with_human_labels(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    page.goto("/assess")
    fill(page, {**FLARE, "diagnosis": "", "age_years": "fifty", "height.value": "2 m",
                "current_medications[0].dose.value": "lots"})  # fmt: skip
    add = page.get_by_role("button", name="Add another medication")
    add.click()
    fill(page, {"current_medications[1].agent": "methotrexate",
                "current_medications[1].dose.value": "900"})  # fmt: skip
    assert submit(page) == 422
    summary = page.locator("#form-errors")
    expect(summary).to_be_focused()
    links = summary.locator("a")
    expected = {
        "age_years": "Age",
        "diagnosis": "Diagnosis",
        "height.value": "Height",
        "current_medications[0].dose.value": "Current medication 1: dose",
        "current_medications[1].dose.value": "Current medication 2: dose",
    }
    expect(links).to_have_count(len(expected))
    for name, text in expected.items():
        link = summary.locator(f'a[href="#{name}"]')
        expect(link).to_have_text(text)
        field = page.locator(f'[id="{name}"]')
        expect(field).to_have_attribute("aria-invalid", "true")
        described = field.get_attribute("aria-describedby") or ""
        expect(page.locator(f'[id="{described.split()[0]}"]')).to_be_visible()
    assert "current_medications[" not in summary.inner_text()  # no raw paths
    expect(page.locator("section.answer")).to_have_count(0)
    shot(page, artifacts, "all-errors")
    axe_clean(page, axe_source, "the form with five errors")
    no_sideways_scroll(page, "the form with errors")


def test_impossible_weight_refused_and_unusual_weight_confirmed_before_doses(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    limits = KB.input_limits
    lb = Decimal("0.45359237")
    impossible = int((limits.weight_kg.max + 1) / lb) + 1  # in pounds, above the limit
    unusual = int((limits.weight_kg_usual.max + limits.weight_kg.max) / 2 / lb)
    page.goto("/assess")
    fill(page, {**FLARE, "weight.value": f"{impossible} lb"})
    assert submit(page) == 422
    weight = page.locator('[id="weight.value"]')
    expect(weight).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#form-errors")).to_contain_text("not a plausible human weight")
    expect(page.locator("strong.dose")).to_have_count(0)

    fill(page, {"weight.value": f"{unusual} lb"})
    assert submit(page) == 422
    expect(page.locator("#form-errors")).to_contain_text("unusual")
    expect(page.locator("strong.dose")).to_have_count(0)  # no dose until confirmed
    confirm = page.get_by_label("The weight and height are right: show the doses")
    expect(confirm).not_to_be_checked()
    shot(page, artifacts, "weight-confirm")
    axe_clean(page, axe_source, "the weight confirmation")
    confirm.check()
    assert submit(page) == 200
    expect(page.locator(".summary strong.dose").first).to_be_visible()
    expect(page.locator(".alert-check", has_text="unusual")).to_be_visible()


# ---- 3. an answer that leads with the decision -------------------------------------------------


def test_answer_leads_with_summary_first_choices_and_levelled_warnings(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    page.goto("/assess")
    fill_resistant(page)
    assert submit(page) == 200
    answer = page.locator("section.answer")
    summary = answer.locator(".summary")
    expect(summary).to_be_in_viewport()
    course = summary.locator(".course")
    expect(course).to_have_text(
        "Resistant disease"
    )  # said once, not "Resistant disease: Resistant disease"
    first = summary.locator("ul.first > li")
    expect(first).to_have_count(1)
    expect(first.first).to_contain_text("Rituximab")
    order = page.evaluate(
        "() => { const s = document.querySelector('.summary');"
        " const o = document.querySelector('ol.options');"
        " return !!(s.compareDocumentPosition(o) & Node.DOCUMENT_POSITION_FOLLOWING); }"
    )
    assert order, "the summary must come before the options"
    # Regimens say how they differ: no two lines of one agent read the same.
    rtx = answer.locator("#opt-resistant_rituximab ul.doses > li")
    texts = [t.strip() for t in rtx.all_inner_texts()]
    assert len(texts) >= 2, texts
    assert len(set(texts)) == len(texts), texts
    bolds = [b.strip() for b in rtx.locator("strong.dose").all_inner_texts()]
    assert len(set(bolds)) == len(bolds), bolds
    # No codes in the clinical view, and details folded until asked for.
    assert "RxNorm" not in answer.inner_text()
    assert re.search(r"\(\w+_\w+\)", answer.locator(".summary").inner_text()) is None
    details = answer.locator("ol.options details.more")
    expect(details.first).not_to_have_attribute("open", "")
    expect(details.first.locator(".basis").first).to_be_hidden()
    height = page.evaluate(
        "document.querySelector('section.answer').getBoundingClientRect().height"
    )
    print(f"answer height at {page.viewport_size}: {height:.0f} px")
    shot(page, artifacts, "answer-resistant")
    axe_clean(page, axe_source, "the resistant answer")
    no_sideways_scroll(page, "the resistant answer")
    details.first.locator("summary").click()
    expect(details.first.locator(".basis").first).to_be_visible()

    # A stop-level warning stands apart from checks and notes.
    page.goto("/assess")
    fill(page, {**FLARE, "current_medications[0].dose.value": ""})
    assert submit(page) == 200
    stop = page.locator(".summary .alert-stop")
    expect(stop).to_have_count(1)
    expect(stop.locator(".level")).to_have_text("Stop")
    expect(page.locator(".summary")).to_contain_text("No option is offered")
    shot(page, artifacts, "answer-stop")
    axe_clean(page, axe_source, "an answer with a stop warning")


def test_tied_first_choices_are_all_in_the_summary(tab: Page, axe_source: str) -> None:
    page = tab
    page.goto("/assess")
    fill_flare_on_mtx(page)
    assert submit(page) == 200
    first = page.locator(".summary ul.first > li")
    expect(first).to_have_count(2)  # scenario 2: raise prednisone or raise methotrexate
    expect(page.locator(".first-label")).to_contain_text("equally ranked")
    for i in range(2):
        expect(first.nth(i)).to_be_in_viewport()


# ---- 4. print for the chart --------------------------------------------------------------------


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


def test_print_for_the_chart_one_page_flare_two_resistant(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    label, _ = new_patient(page)
    page.get_by_role("link", name="New visit").click()
    fill(page, FLARE)
    assert submit(page, "Show options and save visit") == 200
    axe_clean(page, axe_source, "a saved visit's answer")
    page.emulate_media(media="print")
    head = page.locator(".print-head")
    expect(head).to_be_visible()
    expect(head).to_contain_text(label)
    expect(head).to_contain_text("Visit date: 20")
    expect(head).to_contain_text(f"Knowledge {KB.knowledge_version}")
    expect(page.locator(".entered")).to_be_visible()
    expect(page.locator(".chart-lines")).to_contain_text("Signature")
    expect(page.locator(".chart-lines")).to_contain_text("Option chosen")
    expect(page.locator("form.assess")).to_be_hidden()
    size = page.evaluate(
        "() => Math.min(...[...document.querySelectorAll('.answer p, .answer li')]"
        ".filter(e => e.offsetParent !== null && e.innerText.trim())"
        ".map(e => parseFloat(getComputedStyle(e).fontSize)))"
    )
    # 10 pt is 13.33 px; Chrome reports it rounded to 13.3.
    assert size >= 13.3, f"smallest printed text {size}px is under 10 pt"
    shot(page, artifacts, "print-flare")
    width = page.viewport_size["width"] if page.viewport_size else 0
    pdf = page.pdf(format="A4", print_background=True)
    (artifacts / f"clinic-print-flare-{width}.pdf").write_bytes(pdf)
    pages = pdf_pages(pdf)
    print(f"flare prints on {pages} page(s)")
    assert pages == 1

    page.emulate_media(media="screen")
    page.goto("/assess")
    fill_resistant(page)
    assert submit(page) == 200
    page.emulate_media(media="print")
    expect(page.locator(".print-head")).to_contain_text("Visit date: 20")
    pdf = page.pdf(format="A4", print_background=True)
    (artifacts / f"clinic-print-resistant-{width}.pdf").write_bytes(pdf)
    pages = pdf_pages(pdf)
    print(f"resistant case prints on {pages} page(s)")
    assert 1 <= pages <= 2
    shot(page, artifacts, "print-resistant")


# ---- 5 and 6. phone and tablet; the timeline ----------------------------------------------------


def demo_patient(page: Page, prefix: str) -> str:
    page.goto("/patients")
    page.get_by_role("link", name=re.compile("^" + re.escape(prefix))).click()
    return page.url


def test_course_timeline_and_list_at_every_width(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    demo_patient(page, "DEMO-A")
    svg = page.locator(".timeline svg")
    expect(svg).to_have_attribute("role", "img")
    # A step line, not a ramp: each dose holds flat until the next visit.
    d = svg.locator("g.prednisone path.pred").get_attribute("d") or ""
    assert re.fullmatch(r"(M[-\d.]+,[-\d.]+(H[-\d.]+V[-\d.]+)*)+", d), d
    # Each agent a bar per run of visits; rituximab starts only at the last visit.
    mtx = svg.locator('g.agent[data-agent="methotrexate"]')
    expect(mtx.locator("rect")).to_have_count(1)
    expect(svg.locator("g.flare")).to_have_count(2)
    expect(svg.locator("g.recommendations text", has_text="Option chosen")).to_have_count(1)
    labels_apart(page)
    # The text alternative and the list view.
    assert len(svg.locator("desc").text_content() or "") > 40
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first.locator('td[data-label="Flare"]')).to_have_text("yes")
    shot(page, artifacts, "course")
    no_sideways_scroll(page, "the patient's course")
    axe_clean(page, axe_source, "the patient's course")
    width = page.viewport_size["width"] if page.viewport_size else 0
    if width < 700:
        # Phone: the table is stacked rows (one block per visit, each cell named).
        display = rows.first.evaluate("e => getComputedStyle(e).display")
        assert display == "block"


def test_no_sideways_scroll_on_any_page(tab: Page, artifacts: Path, axe_source: str) -> None:
    page = tab
    for path in ("/", "/patients", "/guideline", "/assess"):
        page.goto(path)
        no_sideways_scroll(page, path)
        axe_clean(page, axe_source, path)
    page.goto("/assess")
    fill_resistant(page)
    assert submit(page) == 200
    no_sideways_scroll(page, "the answer")
    shot(page, artifacts, "answer-with-history")


# ---- 7. sources you can follow -----------------------------------------------------------------


def test_recommendation_links_to_its_guideline_entry_with_verified_reference_links(
    tab: Page, artifacts: Path, axe_source: str
) -> None:
    page = tab
    page.goto("/assess")
    fill_resistant(page)
    assert submit(page) == 200
    link = page.locator("#opt-resistant_rituximab a.to-guideline")
    expect(link).to_have_attribute("href", "/guideline#rec-resistant_rituximab")
    link.click()
    target = page.locator('[id="rec-resistant_rituximab"]')
    expect(target).to_be_in_viewport()
    expect(page.locator(".review-date")).to_contain_text("2016-02-04")
    ref2 = page.locator("#ref-2")
    expect(ref2.get_by_role("link", name="PubMed 23124935")).to_have_attribute(
        "href", "https://pubmed.ncbi.nlm.nih.gov/23124935/"
    )
    expect(ref2.get_by_role("link", name="DOI 10.1002/art.37754")).to_be_visible()
    # Every recommendation in the knowledge has its anchor.
    for rec_id in KB.recommendations:
        assert page.locator(f'[id="rec-{rec_id}"]').count() == 1, rec_id
    expect(page.locator("footer")).to_contain_text("2016-02-04")
    shot(page, artifacts, "guideline-entry")
    axe_clean(page, axe_source, "the guideline")


# ---- 8. accessibility beyond axe: names are the visible labels, contrast of borders and focus ---


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    def parse(css: str) -> tuple[float, float, float]:
        nums = [float(n) for n in re.findall(r"[\d.]+", css)[:3]]
        return (nums[0], nums[1], nums[2])

    la, lb = sorted((_luminance(parse(a)), _luminance(parse(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_labels_are_names_and_borders_and_focus_reach_three_to_one(tab: Page) -> None:
    page = tab
    page.goto("/assess")
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll(
            'form.assess input:not([type=hidden]), form.assess select')]
          .filter(e => e.getAttribute('aria-label') || !(e.labels && e.labels.length))
          .map(e => e.name)"""
    )
    assert unlabeled == [], f"controls without a visible label as their name: {unlabeled}"
    border, background = page.evaluate(
        "() => { const s = getComputedStyle(document.querySelector('[name=age_years]'));"
        " return [s.borderTopColor, getComputedStyle(document.body).backgroundColor]; }"
    )
    assert contrast(border, background) >= 3, (border, background)
    page.locator(by_name("diagnosis")).focus()
    page.keyboard.press("Shift+Tab")  # keyboard focus shows the ring (:focus-visible)
    ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineColor")
    assert contrast(ring, background) >= 3, ring


def test_a_form_filled_from_a_cds_card_link_is_accessible(
    tab: Page, server: Any, artifacts: Path, axe_source: str
) -> None:
    # A hand-off as the CDS door leaves it (ADR 0014), written straight into the server's store.
    from myoguide.adapters.store import default_url, make_engine
    from myoguide.adapters.store.handoffs import StoreChartHandoffs

    engine = make_engine(default_url(server.data_dir))
    try:
        token = StoreChartHandoffs(engine).put(
            {
                "age_years": 61,
                "diagnosis": "dermatomyositis",
                "weight": {"value": 70, "unit": "kg"},
                "disease_control_achieved": True,
                "flare": True,
                "current_medications": [
                    {"agent": "prednisone", "dose": {"value": 15, "unit": "mg/day"}}
                ],
                "treatment_history": [],
                "unresolved_medications": [
                    "medication resembling methotrexate (MedicationStatement/ms-9)"
                ],
            },
            [("fhir.observation_undated", "the weight Observation used has no effective time")],
        )
    finally:
        engine.dispose()
    page = tab
    page.goto(f"/assess?chart={token}")
    expect(page.locator(by_name("age_years"))).to_have_value("61")
    expect(page.locator(by_name("current_medications[0].agent"))).to_have_value("prednisone")
    expect(page.locator("body")).to_contain_text("has no effective time")
    expect(page.get_by_label("medication resembling methotrexate", exact=False)).to_be_checked()
    shot(page, artifacts, "chart-handoff-form")
    axe_clean(page, axe_source, "the form filled from a CDS card's link")
    # An unknown token: the blank form saying the link has expired, just as accessible.
    page.goto("/assess?chart=unknown-token")
    expect(page.locator(by_name("age_years"))).to_have_value("")
    expect(page.locator(".readonly-note")).to_contain_text("has expired")
    axe_clean(page, axe_source, "the form of an expired chart link")
