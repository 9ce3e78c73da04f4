"""What the browser tests share: filling the form by field name, axe-core, no sideways scroll."""

from __future__ import annotations

from playwright.sync_api import Page


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
