"""What the browser tests share: filling forms, axe-core, no sideways scroll, chart labels apart."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

# The widths a clinician uses: laptop, tablet, phone (width, height in CSS px).
WIDTHS = [(1366, 768), (1024, 768), (390, 844)]
IDS = ["laptop", "tablet", "phone"]


def axe_clean(page: Page, axe_source: str, what: str) -> None:
    """Inject axe-core and fail on any violation (WCAG 2.x A/AA and best practice, 2.5.3 too)."""
    # Evaluated through the DevTools protocol, so a strict CSP on the page does not block it.
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, {
            rules: {'label-content-name-mismatch': {enabled: true}},
          });
          return r.violations.map(v => ({id: v.id, impact: v.impact,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}));
        }"""
    )
    assert result == [], f"axe violations on {what}: {result}"


def no_sideways_scroll(page: Page, what: str) -> None:
    """Fail if the page is wider than the window."""
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{what} scrolls sideways: {scroll} > {inner}"


def by_name(name: str) -> str:
    """Return the CSS selector of a form control by its name."""
    return f'[name="{name}"]'


def fill(page: Page, values: dict[str, str]) -> None:
    """Fill form controls by name: a select by its option value, any other by typing."""
    for name, value in values.items():
        control = page.locator(by_name(name))
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)


def labels_apart(page: Page) -> None:
    """Fail if two text labels of the course chart overlap or run out of it."""
    # Measured once the chart's stylesheet applies, not in the browser's default font.
    expect(page.locator(".timeline svg text.m").first).to_have_css("text-anchor", "middle")
    boxes = page.evaluate(
        """() => { const svg = document.querySelector('.timeline svg');
          const vb = svg.viewBox.baseVal;
          return [...svg.querySelectorAll('text')].filter(t => t.textContent.trim()).map(t => {
            const b = t.getBBox();
            return [t.textContent, b.x, b.y, b.width, b.height, vb.width]; }); }"""
    )
    for text, x, _, w, _, vb_w in boxes:
        assert x >= -0.5, f"label cut: {text}"
        assert x + w <= vb_w + 0.5, f"label cut: {text}"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap_x = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
            overlap_y = min(a[2] + a[4], b[2] + b[4]) - max(a[2], b[2])
            assert overlap_x <= 1 or overlap_y <= 1, f"labels overlap: {a[0]!r} and {b[0]!r}"


def screenshot(page: Page, artifacts: Path, name: str) -> None:
    """Save the whole page as test-artifacts/<name>-<width>.png, for a person to look at."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    page.screenshot(path=str(artifacts / f"{name}-{width}.png"), full_page=True)
