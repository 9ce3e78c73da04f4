"""The audit report: one self-contained HTML page (inline SVG bars, no scripts, no fonts).

Disclosure control (ADR 0017): a count from 1 to `min_cell - 1` is hidden, and so are as many
other cells of the same table as it takes that no subtraction from the published numbers (the
table's total, the other cells) can show a hidden cell to be small. Every hidden cell reads
"hidden", whether it was small or hidden to protect a small one.
"""

from __future__ import annotations

import datetime
import html
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from myoguide.domain.audit import DECEASED, UNUSABLE
from myoguide.knowledge.flags import Flags
from myoguide.knowledge.model import Knowledge
from myoguide.knowledge.terminology import Terminology

_BAR_W, _ROW_H = 360, 22
HIDDEN = "hidden"
_PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def cell(n: int, min_cell: int) -> str:
    """Return a count as shown alone: itself, or 'hidden' when 0 < n < min_cell."""
    return HIDDEN if 0 < n < min_cell else f"{n:,}"


def protect(cells: Sequence[int], total: int, min_cell: int) -> list[bool] | None:
    """Return which cells of a table summing to a published `total` to hide, or None to withhold.

    Hidden: every cell from 1 to min_cell - 1, then the smallest other non-zero cells until the
    hidden cells' sum S (known to a reader as total minus the shown cells) leaves each of the k
    hidden cells room to be min_cell or more (S - (k - 1) >= min_cell): nothing published then
    bounds a hidden cell below the threshold. A table that cannot meet this is withheld whole.
    """
    hide = [0 < c < min_cell for c in cells]
    if 0 < total < min_cell:
        return None
    while any(hide):
        k = sum(hide)
        hidden_sum = sum(c for c, h in zip(cells, hide, strict=True) if h)
        if hidden_sum - (k - 1) >= min_cell:
            return hide
        shown = [(c, i) for i, (c, h) in enumerate(zip(cells, hide, strict=True)) if c and not h]
        if not shown:
            return None
        hide[min(shown)[1]] = True
    return hide


def binary(n: int, total: int, min_cell: int) -> str:
    """Return a count of patients with a property, hidden if it or its complement is small."""
    small = 0 < n < min_cell or 0 < total - n < min_cell
    return HIDDEN if small or 0 < total < min_cell else f"{n:,}"


@dataclass(frozen=True)
class Report:
    """What the report page shows."""

    rows: Sequence[dict[str, Any]]
    flags: Flags
    knowledge: Knowledge
    terminology: Terminology
    min_cell: int
    problems: Sequence[str]
    notes: Sequence[str]
    evaluation_date: datetime.date
    patients_scanned: int
    engine: str


def _bar_rows(items: Sequence[tuple[str, str, int]], shown: Sequence[str]) -> str:
    top = max((n for (_, _, n), s in zip(items, shown, strict=True) if s != HIDDEN), default=1)
    out = []
    for (label, meaning, n), s in zip(items, shown, strict=True):
        width = 0 if s == HIDDEN else round(_BAR_W * n / (top or 1))
        svg = (
            f'<svg width="{_BAR_W}" height="{_ROW_H - 6}" role="img" aria-label="{s}">'
            f'<rect width="{width}" height="{_ROW_H - 6}" fill="#3b6ea5"/></svg>'
        )
        out.append(
            f"<tr><td>{html.escape(label)}</td><td>{html.escape(meaning)}</td>"
            f"<td class=n>{html.escape(s)}</td><td>{svg}</td></tr>"
        )
    return "".join(out)


def _partition(title: str, items: Sequence[tuple[str, str, int]], total: int, min_cell: int) -> str:
    """Return a table whose cells add up to `total`, protected by `protect`."""
    head = f"<h2>{html.escape(title)}</h2>"
    if not items:
        return head + "<p>None.</p>"
    hide = protect([n for _, _, n in items], total, min_cell)
    if hide is None:
        return head + "<p>Not shown: too few patients to show this table without revealing a "
        "small group.</p>"
    shown = [HIDDEN if h else f"{n:,}" for (_, _, n), h in zip(items, hide, strict=True)]
    return (
        head
        + "<table><tr><th>group</th><th>meaning</th><th>patients</th><th></th></tr>"
        + _bar_rows(items, shown)
        + f"<tr><td>total</td><td></td><td class=n>{total:,}</td><td></td></tr></table>"
    )


def _each(title: str, items: Sequence[tuple[str, str, int]], total: int, min_cell: int) -> str:
    """Return a table of properties a patient may have several of (no cell sums to another)."""
    head = f"<h2>{html.escape(title)}</h2>"
    if not items:
        return head + "<p>None.</p>"
    shown = [binary(n, total, min_cell) for _, _, n in items]
    return (
        head
        + "<table><tr><th>code</th><th>meaning</th><th>patients</th><th></th></tr>"
        + _bar_rows(items, shown)
        + "</table>"
    )


def _words(text: str) -> str:
    return _PLACEHOLDER.sub("…", text)


def _problem_meaning(code: str, kb: Knowledge) -> str:
    kind, _, name = code.partition(".")
    if code in kb.warnings:
        return _words(kb.warnings[code].text)
    if kind == "fhir":
        return "the FHIR record: " + name.replace("_", " ")
    if kind == "input":
        return f"the record gave no usable value for {name}"
    return ""


def render_report(r: Report) -> str:
    """Return the report page for a quality lead."""
    m, kb, rows = r.min_cell, r.knowledge, r.rows
    total = len(rows)
    by_course = Counter((row["course"], row["scenario"]) for row in rows)
    course_items = [
        (
            course + (f" / {scenario}" if scenario else ""),
            kb.scenarios[scenario].title
            if scenario in kb.scenarios
            else {
                DECEASED: "died by the evaluation date: counted apart, not audited",
                UNUSABLE: "the record gave no usable state: no answer, no flags",
            }.get(course, ""),
            n,
        )
        for (course, scenario), n in sorted(
            by_course.items(), key=lambda x: (x[0][0], x[0][1] or "")
        )
    ]
    years = Counter((row["diagnosis_date"] or "not recorded")[:4] for row in rows)
    year_items = [(y if y != "not " else "not recorded", "", n) for y, n in sorted(years.items())]
    by_flag = Counter(f for row in rows for f in row["flags"])
    flagged = sum(1 for row in rows if row["flags"])
    by_problem = Counter(p for row in rows for p in row["data_problems"])
    flag_rows = []
    for f in r.flags.flags:
        refs = "; ".join(
            f"{s.document}, {s.section}"
            + (f", refs {', '.join(map(str, s.references))}" if s.references else "")
            for s in f.sources
        )
        flag_rows.append(
            f"<tr><td><code>{html.escape(f.id)}</code></td><td>{html.escape(f.text)}</td>"
            f"<td class=n>{html.escape(binary(by_flag.get(f.id, 0), total, m))}</td>"
            f"<td>{html.escape(refs)}</td></tr>"
        )
    codes = "".join(
        f"<tr><td>{html.escape(d.system)}</td><td><code>{html.escape(d.code)}</code></td>"
        f"<td>{html.escape(d.display)}</td><td>{html.escape(d.meaning)}</td></tr>"
        for d in r.terminology.file.diagnoses
        if d.meaning in ("dermatomyositis", "polymyositis", "unresolved")
    )
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>myoguide population audit</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}",
        "table{border-collapse:collapse;margin-bottom:1.5em}td,th{padding:2px 8px;text-align:left;",
        "border-bottom:1px solid #ddd;vertical-align:top}.n{text-align:right}",
        "</style></head><body>",
        "<h1>Population audit: adult dermatomyositis and polymyositis</h1>",
        "<table>",
        f"<tr><th>evaluation date (ages and deaths as of)</th><td>{r.evaluation_date}</td></tr>",
        f"<tr><th>knowledge version</th><td>{html.escape(kb.knowledge_version)}</td></tr>",
        f"<tr><th>patients scanned</th><td class=n>{cell(r.patients_scanned, m)}</td></tr>",
        f"<tr><th>patients with DM/PM</th><td class=n>{cell(total, m)}</td></tr>",
        f"<tr><th>patients with a flag</th><td class=n>{binary(flagged, total, m)}</td></tr>",
        f"<tr><th>runner</th><td>{html.escape(r.engine)}</td></tr></table>",
        f"<p>Counts from 1 to {m - 1} are hidden, and so are other cells of the same table where "
        "a subtraction could otherwise reveal a hidden one; every hidden cell reads "
        f"\u201c{HIDDEN}\u201d.</p>",
        "<p>A flag marks care that <em>differs from the review's suggested order</em>; it is a "
        "prompt to look at the record, not a judgment that the care was wrong.</p>",
        _partition("Patients by course and scenario", course_items, total, m),
        "<h2>Patients by flag</h2><table><tr><th>flag</th><th>what it means</th>"
        "<th>patients</th><th>sources</th></tr>" + "".join(flag_rows) + "</table>",
        _partition("DM/PM patients by year the diagnosis was recorded", year_items, total, m),
        _each(
            "Data problems in the records (patients)",
            [(p, _problem_meaning(p, kb), n) for p, n in sorted(by_problem.items())],
            total,
            m,
        ),
        "<h2>Diagnosis codes that put a patient in the audit</h2><table><tr><th>system</th>"
        "<th>code</th><th>meaning</th><th>counted as</th></tr>" + codes + "</table>",
        "<h2>Input skipped (problems)</h2>",
        "<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in r.problems) + "</ul>"
        if r.problems
        else "<p>Nothing was skipped.</p>",
        "<h2>Passed over (normal content of an export)</h2>",
        "<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in r.notes) + "</ul>"
        if r.notes
        else "<p>Nothing.</p>",
        "<p>Decision support only: it informs, and does not replace, the clinician's judgment.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
