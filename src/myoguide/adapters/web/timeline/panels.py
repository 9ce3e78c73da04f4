"""The chart's panels as SVG fragments: prednisone, flares, agents, options, date axis, legend."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from myoguide.adapters.web.timeline.data import DECISIONS, OUTCOMES, Agent, Visit, agent_label
from myoguide.adapters.web.timeline.layout import (
    LANE,
    LEFT,
    MAX_LANES,
    PANEL,
    ROW,
    Frame,
    Lanes,
    Scale,
    fit_text,
    nice_top,
    spread,
    text_width,
)
from myoguide.adapters.web.timeline.svg import bar_paint, esc, num, svg_text
from myoguide.adapters.web.timeline.words import format_date, format_mg, format_span


class Run(NamedTuple):
    """Consecutive visits (first to last, by position) that showed the same rank-1 option."""

    first: int
    last: int
    option: str


def prednisone_panel(frame: Frame, top: float) -> tuple[list[str], float]:
    """Return the prednisone panel (axis, dose line with gaps, dots, values) and its baseline."""
    plot_top, base_y = top + 26, top + 26 + PANEL
    peak = max((v.dose for v in frame.visits if v.dose is not None), default=0.0)
    ceiling, step = nice_top(peak)

    def py(mg: float) -> float:
        return base_y - mg / ceiling * (base_y - plot_top)

    out = ['<g class="prednisone">', svg_text(8, top + 10, "Prednisone mg/day", "h")]
    for k in range(round(ceiling / step) + 1):
        ty = py(k * step)
        line = "ax" if k == 0 else "grid"
        out.append(f'<path class="{line}" d="M{num(frame.left)},{num(ty)}H{num(frame.right)}"/>')
        out.append(svg_text(frame.left - 6, ty + 4, format_mg(k * step), "e"))
    # A step line: a dose holds from its visit until the next one (no ramp between visits).
    path: list[str] = []
    prev: float | None = None
    for v, x in zip(frame.visits, frame.xs, strict=True):
        if v.dose is None:
            prev = None
            continue
        y = num(py(v.dose))
        path.append(f"M{num(x)},{y}" if prev is None else f"H{num(x)}V{y}")
        prev = v.dose
    if path:
        out.append(f'<path class="pred" d="{"".join(path)}"/>')
    values = Lanes(1, gap=4)
    shown: float | None = None
    for n, (v, x) in enumerate(zip(frame.visits, frame.xs, strict=True)):
        when = esc(format_date(v.date))
        if v.dose is None:
            mid = (plot_top + base_y) / 2
            out.append(
                f'<g class="dose-unknown"><title>{when}: prednisone dose not recorded</title>'
                f'<circle class="unk" cx="{num(x)}" cy="{num(mid)}" r="7"/>'
                f"{svg_text(x, mid + 4, '?', 'm h')}</g>"
            )
            continue
        said = (
            "off prednisone (0 mg/day)" if v.dose == 0 else f"prednisone {format_mg(v.dose)} mg/day"
        )
        dy = py(v.dose)
        out.append(
            f'<circle class="dot" cx="{num(x)}" cy="{num(dy)}" r="3.2">'
            f"<title>{when}: {said}</title></circle>"
        )
        # Of several visits on one day only the last is labelled, so labels never cover dots.
        same_day = n + 1 < len(frame.visits) and frame.visits[n + 1].day == v.day
        if v.dose != shown and not same_day:
            label = format_mg(v.dose)
            w = text_width(label, 10)
            # A flare's dashed rule runs through the visit, so its value sits beside the rule.
            lo = x + 4 if v.flare else x - w / 2
            if values.place(lo, lo + w) is not None:
                out.append(
                    svg_text(lo, dy - 7, label, "s")
                    if v.flare
                    else svg_text(x, dy - 7, label, "m s")
                )
        if not same_day:
            shown = v.dose
    out.append("</g>")
    return out, base_y


def flare_marks(frame: Frame, flare_y: float, base_y: float) -> list[str]:
    """Return a labelled downward triangle and a dashed rule through the panel at each flare."""
    flares = [i for i, v in enumerate(frame.visits) if v.flare]
    if not flares:
        return []
    out = ['<g class="flares">']
    w = text_width("Flare")
    taken = -math.inf  # right edge of the last triangle or label drawn
    for n, i in enumerate(flares):
        x = frame.xs[i]
        after = frame.xs[flares[n + 1]] if n + 1 < len(flares) else frame.width
        text = ""
        if x + 7 >= taken + 4 and x + 7 + w <= after - 8:
            text, taken = svg_text(x + 7, flare_y + 10, "Flare"), x + 7 + w
        elif x - 7 - w >= max(taken + 4, frame.left):
            text = svg_text(x - 7, flare_y + 10, "Flare", "e")
        taken = max(taken, x + 6)
        out.append(
            f'<g class="flare" data-date="{frame.visits[i].date.isoformat()}">'
            f"<title>{esc(format_date(frame.visits[i].date))}: flare</title>"
            f'<path class="flare-line" d="M{num(x)},{num(flare_y + 12)}V{num(base_y)}"/>'
            f'<path class="flare-mark" d="M{num(x - 5.5)},{num(flare_y + 2)}h11l-5.5,10z"/>'
            f"{text}</g>"
        )
    out.append("</g>")
    return out


def agent_note(agent: Agent, visit_count: int) -> str:
    """Return the words at the end of an agent's bar: its outcome, or whether it goes on."""
    outcome = OUTCOMES.get(agent.outcome or "", "")
    if not agent.current:
        return f"prior: {outcome or 'outcome not recorded'}"
    ongoing = agent.last == visit_count - 1 and not outcome
    return outcome or ("ongoing" if ongoing else "stopped")


def agent_panel(
    frame: Frame, agents: Sequence[Agent], y: float, labels: Mapping[str, str]
) -> tuple[list[str], float]:
    """Return one labelled bar per agent while current (a short marker if only prior), and y."""
    out = ['<g class="agents">', svg_text(8, y + 4, "Other agents", "h")]
    y += 10
    if not agents:
        out.append(svg_text(frame.left, y + 12, "none recorded", "i s"))
        y += 20
    visits, xs = frame.visits, frame.xs
    for agent in agents:
        name = agent_label(agent.name, labels)
        start, end = visits[agent.first].date, visits[agent.last].date
        outcome = OUTCOMES.get(agent.outcome or "", "")
        bars: list[tuple[float, float]] = []
        if agent.current:
            bars = [(xs[a] - 5, xs[b] + 5) for a, b in agent.runs or ((agent.first, agent.last),)]
            note = agent_note(agent, len(visits))
            spans = ", ".join(
                format_span(visits[a].date, visits[b].date)
                for a, b in agent.runs or ((agent.first, agent.last),)
            )
            tip = f"{name}: taken {spans}; {note}"
        else:
            bars = [(xs[agent.first] - 8, xs[agent.first] + 8)]
            said = outcome or "outcome not recorded"
            note = agent_note(agent, len(visits))
            tip = f"{name}: listed as tried on {format_date(start)}; {said}"
        rects = "".join(
            f'<rect {bar_paint(agent.outcome, prior=not agent.current)} x="{num(x_a)}"'
            f' y="{num(y + 4)}" width="{num(x_b - x_a)}" height="11"/>'
            for x_a, x_b in bars
        )
        gaps = "".join(
            f'<path class="gap" d="M{num(bars[k][1])},{num(y + 9.5)}H{num(bars[k + 1][0])}"/>'
            for k in range(len(bars) - 1)
        )
        out.append(
            f'<g class="agent" data-agent="{esc(agent.name)}" data-from="{start.isoformat()}"'
            f' data-to="{end.isoformat()}" data-outcome="{agent.outcome or ""}"'
            f' data-runs="{len(bars)}">'
            f"<title>{esc(tip)}</title>"
            f"{svg_text(frame.left - 8, y + 13, fit_text(name, frame.left - 16), 'e')}"
            f"{gaps}{rects}"
        )
        # The outcome is written where the last bar ends: after it if there is room, else before.
        x_end = bars[-1][1]
        if x_end + 4 + text_width(note, 10) <= frame.width - 4:
            out.append(svg_text(x_end + 4, y + 13, note, "s i outcome"))
        else:
            out.append(svg_text(bars[-1][0] - 4, y + 13, note, "s i e outcome"))
        out.append("</g>")
        y += ROW
    out.append("</g>")
    return out, y


def options_panel(frame: Frame, y: float) -> tuple[list[str], float]:
    """Return the option chosen at each visit (decision glyph) and each run of one option, and y."""
    out = ['<g class="recommendations">', svg_text(8, y + 12, "Option chosen", "h")]
    # Visits on the same or nearby days would stack their glyphs, so the glyphs are spread.
    gxs = spread(frame.xs, 15, frame.left, frame.width - 8)
    for i, v in enumerate(frame.visits):
        x = gxs[i]
        glyph, said = DECISIONS.get(v.decision or "", ("", "no decision recorded"))
        if glyph:
            mark = svg_text(x, y + 16, glyph, "glyph")
        elif v.recommendation is None:
            mark = svg_text(x, y + 15, "–", "m noopt")
        else:
            mark = f'<circle class="nodec" cx="{num(x)}" cy="{num(y + 11)}" r="3.5"/>'
        option = v.recommendation or "no option shown"
        out.append(
            f'<g class="visit" data-date="{v.date.isoformat()}" data-decision="{v.decision or ""}">'
            f"<title>{esc(format_date(v.date))}: {esc(option)} — {said}</title>{mark}</g>"
        )
    # The same option at consecutive visits is named once, under a rule joining its glyphs.
    runs: list[Run] = []
    for i, v in enumerate(frame.visits):
        if v.recommendation is None:
            continue
        if runs and runs[-1].last == i - 1 and runs[-1].option == v.recommendation:
            runs[-1] = Run(runs[-1].first, i, v.recommendation)
        else:
            runs.append(Run(i, i, v.recommendation))
    lanes = Lanes(MAX_LANES)
    for first, last, option in runs:
        x_a, x_b = gxs[first], gxs[last]
        shown = fit_text(option, frame.right - frame.left)
        w = text_width(shown)
        centre = min(max((x_a + x_b) / 2, frame.left + w / 2), frame.width - 4 - w / 2)
        lane = lanes.place(min(x_a, centre - w / 2), max(x_b, centre + w / 2))
        if lane is None:
            # No room for the name: an ellipsis keeps its place and the tooltip keeps the name.
            centre, shown = (x_a + x_b) / 2, "…"
            lane = lanes.place(min(x_a, centre - 4), max(x_b, centre + 4))
        if lane is None:
            continue
        count = last - first + 1
        when = format_span(frame.visits[first].date, frame.visits[last].date)
        when = when if count == 1 else f"{count} visits, {when}"
        rule = f'<path class="run" d="M{num(x_a)},{num(y + 21)}H{num(x_b)}"/>' if count > 1 else ""
        out.append(
            f'<g class="option"><title>{esc(option)}: {when}</title>{rule}'
            f"{svg_text(centre, y + 32 + LANE * lane, shown, 'm rec')}</g>"
        )
    out.append("</g>")
    return out, y + 22 + LANE * max(1, lanes.used())


def date_axis(frame: Frame, scale: Scale, top: float, axis_y: float) -> list[str]:
    """Return faint guides at each visit through every panel and the date axis below them."""
    out = ['<g class="guides">']
    for v, x in zip(frame.visits, frame.xs, strict=True):
        out.append(
            f'<path class="guide" data-date="{v.date.isoformat()}"'
            f' d="M{num(x)},{num(top)}V{num(axis_y)}"/>'
        )
    out += [
        '</g><g class="date-axis">',
        f'<path class="ax" d="M{num(frame.left)},{num(axis_y)}H{num(frame.right)}"/>',
    ]
    for day, label, year in scale.ticks(frame.left, frame.right):
        x = scale.x(day)
        out.append(f'<path class="ax" d="M{num(x)},{num(axis_y)}v5"/>')
        out.append(svg_text(x, axis_y + 17, label, "m s"))
        if year:
            out.append(svg_text(x, axis_y + 29, year, "m s h"))
    out.append("</g>")
    return out


def legend_panel(
    visits: Sequence[Visit], agents: Sequence[Agent], y: float, total_w: float
) -> tuple[list[str], float]:
    """Return the legend of the symbols in use, wrapped to the width, and the y below it."""
    items: list[tuple[str, str | None, str]] = [("line", None, "prednisone mg/day")]
    if any(v.dose is None for v in visits):
        items.append(("unk", None, "dose not recorded"))
    if any(v.flare for v in visits):
        items.append(("flare", None, "flare"))
    outcomes = {a.outcome for a in agents}
    for key, text in (*OUTCOMES.items(), (None, "no outcome recorded")):
        if key in outcomes:
            items.append(("bar", key, text))
    if any(not a.current for a in agents):
        items.append(("prior", None, "prior (history only)"))
    decisions = {v.decision for v in visits}
    for key, (glyph, text) in DECISIONS.items():
        if key in decisions:
            items.append(("glyph", glyph, text))
    if any(v.decision is None and v.recommendation is not None for v in visits):
        items.append(("nodec", None, "no decision recorded"))
    if any(v.recommendation is None for v in visits):
        items.append(("noopt", None, "no option shown"))
    out = ['<g class="legend">']
    x, row_y = LEFT, y
    for kind, arg, text in items:
        w = 26 + text_width(text, 10) + 14
        if x + w > total_w - 4 and x > LEFT:
            x, row_y = LEFT, row_y + 16
        out.append(_swatch(kind, arg, x, row_y) + svg_text(x + 26, row_y + 4, text, "s"))
        x += w
    out.append("</g>")
    return out, row_y + 14


def _swatch(kind: str, arg: str | None, x: float, y: float) -> str:
    """Return the small symbol that stands for one legend entry."""
    cx, cy = num(x + 10), num(y)
    if kind == "line":
        return (
            f'<path class="pred" d="M{num(x)},{cy}h20"/>'
            f'<circle class="dot" cx="{cx}" cy="{cy}" r="3"/>'
        )
    if kind == "unk":
        return (
            f'<circle class="unk" cx="{cx}" cy="{cy}" r="7"/>{svg_text(x + 10, y + 4, "?", "m h")}'
        )
    if kind == "flare":
        return f'<path class="flare-mark" d="M{num(x + 4.5)},{num(y - 5)}h11l-5.5,10z"/>'
    if kind in ("bar", "prior"):
        paint = bar_paint(arg, prior=kind == "prior")
        return f'<rect {paint} x="{num(x)}" y="{num(y - 5)}" width="20" height="10"/>'
    if kind == "glyph":
        return svg_text(x + 10, y + 5, arg or "", "glyph")
    if kind == "noopt":
        return svg_text(x + 10, y + 4, "–", "m noopt")
    return f'<circle class="nodec" cx="{cx}" cy="{cy}" r="3.5"/>'
