"""The clinician's pages in a real Chromium against a real `myoguide serve`.

Keyboard-only visit entry, the answer and its "why", the patient's course, form errors, the
print view and PDF, tablet and laptop widths, the guideline's references, and sign-in.
Screenshots (and the printed PDF) go to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

MAX_TABS = 200
PASSWORD = "correct horse battery staple"
DM_FORM = {
    "age_years": "58",
    "diagnosis": "dermatomyositis",
    "weight.value": "72",
    "height.value": "165",
    "disease_control_achieved": "yes",
    "flare": "yes",
    "severity": "moderate",
    "current_medications[0].agent": "prednisone",
    "current_medications[0].dose.value": "7.5",
    "current_medications[0].dose.unit": "mg/day",
}
MTX_ROW = {
    "current_medications[1].agent": "methotrexate",
    "current_medications[1].dose.value": "15",
    "current_medications[1].dose.unit": "mg/week",
}


def by_name(name: str) -> str:
    """Return a CSS selector for the form control named `name` (names hold dots and [])."""
    return f'[name="{name}"]'


def focused(page: Page, selector: str) -> bool:
    return bool(
        page.evaluate(
            "s => { const a = document.activeElement; return !!a && a.matches(s); }", selector
        )
    )


def tab_to(page: Page, selector: str) -> None:
    """Press Tab until the element matching `selector` has the keyboard focus."""
    for _ in range(MAX_TABS):
        if focused(page, selector):
            return
        page.keyboard.press("Tab")
    active = page.evaluate("document.activeElement && document.activeElement.outerHTML")
    raise AssertionError(f"Tab never reached {selector}; focus is on {active}")


def type_into(page: Page, name: str, text: str) -> None:
    """Tab to a text field, clear it with the keyboard and type `text`."""
    tab_to(page, by_name(name))
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    page.keyboard.type(text)
    expect(page.locator(by_name(name))).to_have_value(text)


def choose_by_keyboard(page: Page, name: str, typed: str, value: str) -> None:
    """Tab to a <select> and pick an option by typing the start of its text (type-ahead)."""
    tab_to(page, by_name(name))
    page.keyboard.type(typed)
    # Type-ahead forgets the typed prefix after a pause; the check confirms it matched.
    expect(page.locator(by_name(name))).to_have_value(value)


def submit_with(page: Page, selector: str, key: str = "Enter") -> Any:
    """Tab to a control, press `key` on it and return the navigation's response."""
    tab_to(page, selector)
    with page.expect_navigation() as nav:
        page.keyboard.press(key)
    return nav.value


def fill_form(page: Page, values: dict[str, str]) -> None:
    """Fill the assessment form with the mouse-free API (for tests not about the keyboard)."""
    for name, value in values.items():
        control = page.locator(by_name(name))
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)


def answer_page(page: Page) -> None:
    """Show the answer for the DM patient on /assess (no patient record involved)."""
    page.goto("/assess")
    fill_form(page, DM_FORM)
    page.get_by_role("button", name="Add another medication").click()
    fill_form(page, MTX_ROW)
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Show options", exact=True).click()
    assert nav.value is not None
    assert nav.value.status == 200
    expect(page.locator("section.answer")).to_be_visible()


def page_widths(page: Page) -> tuple[int, int]:
    """Return the document's scroll width and the viewport's inner width."""
    sizes = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return int(sizes[0]), int(sizes[1])


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no csrf field in the page"
    return match.group(1)


# ---- (a) and (b): a visit entered with the keyboard only, then the patient's course ---------


def test_keyboard_only_visit_answer_decision_and_course(page: Page, artifacts: Path) -> None:
    label = f"KB-{uuid.uuid4().hex[:8]}"
    first_date = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=60)

    # Patients: add a patient by label, with Enter in the label field.
    page.goto("/patients")
    expect(page.locator("table.list")).to_contain_text("DEMO-A (synthetic)")
    page.screenshot(path=str(artifacts / "patients.png"), full_page=True)
    tab_to(page, "#label")
    page.keyboard.type(label)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert re.search(r"/patients/\d+$", page.url), page.url
    patient_url = page.url
    expect(page.locator("h1")).to_have_text(label)
    expect(page.locator("main p", has_text="No visits yet.")).to_be_visible()

    # "New visit", followed from the keyboard.
    submit_with(page, 'a.button[href^="/assess?patient="]')
    assert "/assess?patient=" in page.url
    expect(page.locator("h1")).to_have_text(f"Visit for {label}")

    type_into(page, "age_years", "58")
    choose_by_keyboard(page, "diagnosis", "derm", "dermatomyositis")
    type_into(page, "weight.value", "72")
    choose_by_keyboard(page, "disease_control_achieved", "yes", "yes")
    choose_by_keyboard(page, "flare", "yes", "yes")
    choose_by_keyboard(page, "current_medications[0].agent", "pred", "prednisone")
    type_into(page, "current_medications[0].dose.value", "7.5")
    expect(page.locator(by_name("current_medications[0].dose.unit"))).to_have_value("mg/day")
    # A second medication row, added from the keyboard; its unit follows the drug.
    tab_to(page, '[data-add="med"]')
    page.keyboard.press("Enter")
    choose_by_keyboard(page, "current_medications[1].agent", "meth", "methotrexate")
    expect(page.locator(by_name("current_medications[1].dose.unit"))).to_have_value("mg/week")
    type_into(page, "current_medications[1].dose.value", "15")
    type_into(page, "height.value", "165")
    choose_by_keyboard(page, "severity", "mod", "moderate")
    # The date field takes digits segment by segment (month, day, year in en-US).
    tab_to(page, by_name("visit_date"))
    page.keyboard.type(first_date.strftime("%m%d%Y"))
    expect(page.locator(by_name("visit_date"))).to_have_value(first_date.isoformat())
    page.screenshot(path=str(artifacts / "assess-form-filled.png"), full_page=True)

    response = submit_with(page, 'button[name="action"][value="save"]')
    assert response.status == 200, page.content()[:2000]

    answer = page.locator("section.answer")
    expect(answer).to_be_visible()
    expect(answer.locator(".course")).to_contain_text("Flare while taking less than 10 mg/day")
    options = answer.locator("ol.options > li.option")
    assert options.count() >= 1
    expect(options.filter(has_text="Grade 2C").first).to_be_visible()
    prednisone = options.filter(has=page.locator(".agent-name", has_text="Prednisone"))
    expect(prednisone).to_have_count(1)
    expect(prednisone.locator(".badge")).to_have_text("Grade 2C")
    expect(prednisone.locator("strong.dose")).to_have_text("20 to 72 mg/day")
    prednisone.locator("details.more > summary").click()
    expect(prednisone.locator(".basis")).to_have_text(
        "Prednisone: 20 mg/day up to 1 mg/kg/day x 72 kg = 72 mg/day"
    )
    answer.locator("details.references > summary").click()
    assert answer.locator("ol.refs > li").count() >= 1
    expect(answer.locator(".disclaimer")).to_contain_text("does not replace")
    expect(answer.locator(".disclaimer")).to_contain_text("judgment")

    # "Why": closed at first, opened from the keyboard, then a table of the steps, in words.
    why = answer.locator("details.why")
    trace = why.locator("table")
    expect(trace).to_be_hidden()
    tab_to(page, "details.why > summary")
    page.keyboard.press("Enter")
    expect(why).to_have_attribute("open", "")
    expect(trace).to_be_visible()
    expect(trace.locator("thead th")).to_have_text(["Step", "Looked at", "Outcome"])
    assert trace.locator("tbody tr").count() >= 3
    expect(trace.locator("tbody")).to_contain_text("Course of the disease")
    expect(trace.locator("tbody")).not_to_contain_text("course.classify")
    page.screenshot(path=str(artifacts / "answer-keyboard-why-open.png"), full_page=True)
    answer.screenshot(path=str(artifacts / "answer-section.png"))

    # Decision: "chose another option" (arrow keys in the radio group), the option, a reason.
    tab_to(page, 'input[name="decision"]')
    expect(page.locator('input[name="decision"][value="accepted"]')).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.locator('input[name="decision"][value="chose_other"]')).to_be_checked()
    choose_by_keyboard(page, "chosen", "1. Recommended: M", "r2_raise_methotrexate")
    type_into(page, "reason", "Patient prefers to avoid more prednisone")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == patient_url

    # (b) The patient's course: the visit with its decision, and the timeline.
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(1)
    cells = rows.first.locator("td")
    expect(cells.nth(0)).to_have_text(first_date.isoformat())
    expect(cells.nth(1)).to_have_text("7.5 mg/day")
    expect(cells.nth(4)).to_contain_text("Recurrent")
    expect(cells.nth(6)).to_have_text(
        "chose Methotrexate (Patient prefers to avoid more prednisone)"
    )
    svg = page.locator(".timeline svg")
    expect(svg).to_have_count(1)
    assert svg.get_attribute("role") == "img"
    dots = svg.locator("g.prednisone circle.dot")
    expect(dots).to_have_count(1)
    expect(dots.first.locator("title")).to_contain_text("prednisone 7.5 mg/day")
    expect(svg.locator("g.flare")).to_have_count(1)
    assert svg.locator(f'g.flare[data-date="{first_date.isoformat()}"]').count() == 1
    assert svg.locator('g.visit[data-decision="chose_other"]').count() == 1
    page.screenshot(path=str(artifacts / "patient-one-visit.png"), full_page=True)
    # The export holds the decision as taken: which option, and why.
    exported = page.request.get(patient_url + "/export.json").json()
    assert [d["decision"] for d in exported["decisions"]] == ["chose_other"]
    assert exported["decisions"][0]["chosen_recommendation"] == "r2_raise_methotrexate"
    assert exported["decisions"][0]["reason"] == "Patient prefers to avoid more prednisone"

    # A second visit, today, with prednisone raised to 20 mg/day: the form starts from the
    # last visit, so only the dose changes. It adds a second point to the prednisone line.
    page.get_by_role("link", name=re.compile("^New visit from the last one")).click()
    expect(page.locator(by_name("age_years"))).to_have_value("58")
    expect(page.locator(by_name("current_medications[0].agent"))).to_have_value("prednisone")
    page.locator(by_name("current_medications[0].dose.value")).fill("20")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Show options and save visit").click()
    assert nav.value is not None
    assert nav.value.status == 200
    page.goto(patient_url)
    expect(rows).to_have_count(2)
    # The table prints the stored float as is ("20.0 mg/day"); either spelling is the dose.
    expect(rows.nth(1).locator("td").nth(1)).to_have_text(re.compile(r"^20(\.0)? mg/day$"))
    expect(rows.nth(1).locator("td").nth(6)).to_have_text("—")
    expect(dots).to_have_count(2)
    titles = [dots.nth(i).locator("title").text_content() or "" for i in range(2)]
    assert "prednisone 7.5 mg/day" in titles[0]
    assert "prednisone 20 mg/day" in titles[1]
    page.screenshot(path=str(artifacts / "patient-two-visits.png"), full_page=True)


# ---- (c) invalid entries are marked at the field and listed with links -----------------------


@pytest.mark.parametrize(
    ("name", "value", "label", "message"),
    [
        ("weight.value", "-3", "Weight", "greater than 0"),
        ("age_years", "fifty", "Age", "'fifty' is not a number"),
    ],
)
def test_invalid_entry_is_marked_and_listed(
    page: Page, artifacts: Path, name: str, value: str, label: str, message: str
) -> None:
    page.goto("/assess")
    fill_form(page, {**DM_FORM, name: value})
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Show options", exact=True).click()
    assert nav.value is not None
    assert nav.value.status == 422
    field = page.locator(f'[id="{name}"]')
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value(value)  # what was typed is kept for correction
    described = field.get_attribute("aria-describedby")
    assert described, "the invalid field is not described by its error"
    error_id = described.split()[0]
    error = page.locator(f'[id="{error_id}"]')
    expect(error).to_be_visible()
    expect(error).to_contain_text(message)
    # "Next to it": the message sits in the same form row as the field.
    assert error.evaluate(
        "(e, f) => e.closest('.row') === f.closest('.row')", field.element_handle()
    )
    assert page.locator('[aria-invalid="true"]').count() == 1
    expect(page.locator("section.answer")).to_have_count(0)

    summary = page.locator("#form-errors")
    expect(summary).to_be_visible()
    assert summary.get_attribute("role") == "alert"
    link = summary.locator(f'a[href="#{name}"]')
    expect(link).to_have_text(label)
    expect(summary).to_contain_text(message)
    page.screenshot(path=str(artifacts / f"error-{name}.png"), full_page=True)
    link.click()
    assert page.evaluate("decodeURIComponent(location.hash)") == f"#{name}"
    expect(field).to_be_in_viewport()


# ---- (d) print view and PDF ----------------------------------------------------------------


def pdf_pages(data: bytes) -> int:
    """Count the pages of a PDF: with pypdf if installed, else its /Type /Page objects."""
    try:
        from pypdf import PdfReader  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
    import io

    return len(PdfReader(io.BytesIO(data)).pages)


def test_print_view_hides_form_and_nav_and_fits_two_pages(page: Page, artifacts: Path) -> None:
    answer_page(page)
    page.emulate_media(media="print")
    expect(page.locator("form.assess")).to_be_hidden()
    expect(page.locator("header.top nav")).to_be_hidden()
    expect(page.locator("section.answer")).to_be_visible()
    expect(page.locator("section.answer .disclaimer")).to_be_visible()
    expect(page.locator("section.answer strong.dose").first).to_be_visible()
    page.screenshot(path=str(artifacts / "answer-print-media.png"), full_page=True)
    # A4 with margins like the browser's print dialog: the page has no @page rule of its own.
    margin = {"top": "1.5cm", "bottom": "1.5cm", "left": "1.5cm", "right": "1.5cm"}
    pdf = page.pdf(format="A4", print_background=True, margin=margin)
    (artifacts / "answer-print.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF")
    pages = pdf_pages(pdf)
    assert 1 <= pages <= 2, f"the printed answer takes {pages} pages"


# ---- (e) tablet and laptop widths ------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(820, 1180), (1366, 768)])
def test_answer_fits_width_without_horizontal_scroll(
    page: Page, artifacts: Path, width: int, height: int
) -> None:
    page.set_viewport_size({"width": width, "height": height})
    answer_page(page)
    page.screenshot(path=str(artifacts / f"answer-{width}x{height}.png"), full_page=True)
    scroll_width, inner_width = page_widths(page)
    assert scroll_width <= inner_width, f"scrolls sideways: {scroll_width} > {inner_width}"


# ---- (f) the guideline page --------------------------------------------------------------------


def test_guideline_lists_all_31_references(page: Page, artifacts: Path) -> None:
    page.goto("/guideline")
    refs = page.locator("#references + ol.refs > li")
    expect(refs).to_have_count(31)
    numbers = [int(refs.nth(i).get_attribute("value") or 0) for i in range(31)]
    assert numbers == list(range(1, 32))
    texts = [t.strip() for t in refs.all_inner_texts()]
    assert all(len(t) > 20 for t in texts), "a reference has no citation text"
    assert len(set(texts)) == 31
    page.screenshot(path=str(artifacts / "guideline.png"), full_page=False)
    refs.last.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "guideline-references.png"), full_page=False)


# ---- (g) sign-in when bound to a non-loopback address ---------------------------------------


def test_login_required_on_non_loopback_address(
    browser: Browser, launch: Any, tmp_path: Path, artifacts: Path
) -> None:
    data_dir = tmp_path / "data"
    exe = str(Path(sys.executable).with_name("myoguide"))
    made = subprocess.run(
        [exe, "user", "add", "clinician", "--data-dir", str(data_dir)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    server = launch(data_dir, host="0.0.0.0")

    # Every page sends a visitor without a session to the sign-in page.
    with httpx.Client(base_url=server.base, follow_redirects=False, timeout=10) as anon:
        for path in ("/", "/assess", "/patients", "/patients/1", "/patients/1/export.json",
                     "/guideline"):  # fmt: skip
            r = anon.get(path)
            assert r.status_code == 303, (path, r.status_code)
            assert r.headers["location"].startswith("/login?next="), path
        r = anon.get("/login")
        assert r.status_code == 200
        # A form post without the csrf field is refused before anything else.
        r = anon.post("/login", data={"username": "clinician", "password": PASSWORD})
        assert r.status_code == 403

    context = browser.new_context(base_url=server.base, viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        page.goto("/patients")
        assert page.url.startswith(server.base + "/login?next=/patients")
        expect(page.locator("h1")).to_have_text("Sign in")

        page.locator("#username").fill("clinician")
        page.locator("#password").fill("not the right password")
        with page.expect_navigation() as nav:
            page.get_by_role("button", name="Sign in").click()
        assert nav.value is not None
        assert nav.value.status == 401
        expect(page.locator("#login-error")).to_have_text("User name or password is not right.")
        expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
        page.screenshot(path=str(artifacts / "login-wrong-password.png"), full_page=True)

        page.locator("#username").fill("clinician")
        page.locator("#password").fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        assert page.url == server.base + "/patients"
        expect(page.locator("h1")).to_have_text("Patients")
        expect(page.get_by_role("button", name="Sign out (clinician)")).to_be_visible()

        # Signed in, a POST with the session cookie but without the csrf field is refused ...
        refused = context.request.post(
            server.base + "/patients", form={"label": "no-csrf"}, max_redirects=0
        )
        assert refused.status == 403
        # ... and so is one with a csrf value that is not this session's.
        forged = context.request.post(
            server.base + "/patients", form={"label": "forged", "csrf": "x" * 43}, max_redirects=0
        )
        assert forged.status == 403
        # With the page's own token the same post works.
        token = csrf_of(page.content())
        made_ok = context.request.post(
            server.base + "/patients",
            form={"label": "with-csrf", "csrf": token},
            max_redirects=0,
        )
        assert made_ok.status == 303
        page.goto("/patients")
        expect(page.locator("table.list")).to_contain_text("with-csrf")
        expect(page.locator("table.list")).not_to_contain_text("no-csrf")
        page.screenshot(path=str(artifacts / "login-signed-in-patients.png"), full_page=True)
    finally:
        context.close()
