"""The audit report: one self-contained HTML page (inline SVG bars, no scripts, no fonts).

Counts below the small-cell threshold are shown as "<N" so that no small group can be picked out.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from typing import Any

from myoguide.knowledge.flags import Flags

_BAR_W, _ROW_H = 360, 22


def cell(n: int, min_cell: int) -> str:
    """Return a count as shown: itself, or '<min_cell' when 0 < n < min_cell."""
    return f"<{min_cell}" if 0 < n < min_cell else f"{n:,}"


def _bars(title: str, items: Sequence[tuple[str, int]], min_cell: int) -> str:
    """Return a titled table with inline SVG bars; suppressed cells draw no bar."""
    if not items:
        return f"<h2>{html.escape(title)}</h2><p>None.</p>"
    top = max(n for _, n in items) or 1
    rows = []
    for label, n in items:
        shown = cell(n, min_cell)
        width = 0 if 0 < n < min_cell else round(_BAR_W * n / top)
        label_svg = html.escape(shown)
        svg = (
            f'<svg width="{_BAR_W}" height="{_ROW_H - 6}" role="img" aria-label="{label_svg}">'
            f'<rect width="{width}" height="{_ROW_H - 6}" fill="#3b6ea5"/></svg>'
        )
        rows.append(
            f"<tr><td>{html.escape(label)}</td><td class=n>{label_svg}</td><td>{svg}</td></tr>"
        )
    return (
        f"<h2>{html.escape(title)}</h2><table><tr><th>group</th><th>patients</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )


def render_report(
    rows: Sequence[dict[str, Any]],
    flags: Flags,
    *,
    min_cell: int,
    problems: Sequence[str],
    summary: str,
    engine: str,
) -> str:
    """Return the report page for a quality lead."""
    by_course = Counter(
        f"{r['course']}" + (f" / {r['scenario']}" if r["scenario"] else "") for r in rows
    )
    by_flag = Counter(f for r in rows for f in r["flags"])
    by_problem = Counter(p for r in rows for p in r["data_problems"])
    years = Counter((r["diagnosis_date"] or "")[:4] for r in rows if r["diagnosis_date"])
    flagged_years = Counter(
        (r["diagnosis_date"] or "")[:4] for r in rows if r["diagnosis_date"] and r["flags"]
    )
    flag_rows = []
    for f in flags.flags:
        refs = "; ".join(
            f"{s.document}, {s.section}"
            + (f", refs {', '.join(map(str, s.references))}" if s.references else "")
            for s in f.sources
        )
        flag_rows.append(
            f"<tr><td><code>{html.escape(f.id)}</code></td><td>{html.escape(f.text)}</td>"
            f"<td class=n>{html.escape(cell(by_flag.get(f.id, 0), min_cell))}</td>"
            f"<td>{html.escape(refs)}</td></tr>"
        )
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>myoguide population audit</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}",
        "table{border-collapse:collapse;margin-bottom:1.5em}td,th{padding:2px 8px;text-align:left;",
        "border-bottom:1px solid #ddd;vertical-align:top}.n{text-align:right}",
        "</style></head><body>",
        "<h1>Population audit: adult dermatomyositis and polymyositis</h1>",
        f"<p>{html.escape(summary)} Runner: {html.escape(engine)}. Knowledge version "
        f"{html.escape(flags.knowledge_version)}. Counts from 1 to {min_cell - 1} are shown as "
        f"&lt;{min_cell}.</p>",
        "<p>A flag marks care that <em>differs from the review's suggested order</em>; it is a "
        "prompt to look at the record, not a judgment that the care was wrong.</p>",
        _bars("Patients by course and scenario", sorted(by_course.items()), min_cell),
        "<h2>Patients by flag</h2><table><tr><th>flag</th><th>what it means</th>"
        "<th>patients</th><th>sources</th></tr>" + "".join(flag_rows) + "</table>",
        _bars(
            "Patients by flag (chart)",
            [(f.id, by_flag.get(f.id, 0)) for f in flags.flags],
            min_cell,
        ),
        _bars("DM/PM patients by year the diagnosis was recorded", sorted(years.items()), min_cell),
        _bars(
            "Flagged patients by year the diagnosis was recorded",
            sorted(flagged_years.items()),
            min_cell,
        ),
        _bars("Data problems in the records (patients)", by_problem.most_common(), min_cell),
        "<h2>Input skipped</h2>",
        "<ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in problems) + "</ul>"
        if problems
        else "<p>Nothing was skipped.</p>",
        "<p>Decision support only: it informs, and does not replace, the clinician's judgment.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
