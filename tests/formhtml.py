"""Reading a rendered form's fields back out of its HTML, for tests of filled forms."""

from __future__ import annotations

import re
from typing import Any


def field_value(html: str, name: str) -> str:
    """Return the value of the input named `name`; fail if there is none."""
    match = re.search(rf'name="{re.escape(name)}"[^>]*value="([^"]*)"', html)
    assert match, name
    return match.group(1)


def selected(html: str, name: str) -> str | None:
    """Return the selected option of the select named `name` (None if none is selected)."""
    select = re.search(rf'<select name="{re.escape(name)}".*?</select>', html, re.S)
    assert select, name
    chosen = re.search(r'<option value="([^"]*)" selected>', select.group(0))
    return chosen.group(1) if chosen else None


def answer_page(client: Any, fields: dict[str, str]) -> str:
    """Post the visit form (with its CSRF token) through a TestClient; return the answer page."""
    page = client.get("/assess").text
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match
    res = client.post("/assess", data={"csrf": match.group(1), **fields})
    assert res.status_code == 200, res.text[:500]
    return str(res.text)
