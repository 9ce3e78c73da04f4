"""Draw a patient's course as one accessible, black-and-white-printable inline SVG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from myoguide.adapters.web.timeline.data import VisitPoint, collect_agents, reduce_visit
from myoguide.adapters.web.timeline.layout import LEFT, PAD, RIGHT, Frame, Scale, text_width
from myoguide.adapters.web.timeline.panels import (
    agent_note,
    agent_panel,
    date_axis,
    flare_marks,
    legend_panel,
    options_panel,
    prednisone_panel,
)
from myoguide.adapters.web.timeline.svg import DEFS, empty_svg, wrap_svg
from myoguide.adapters.web.timeline.words import chart_title, describe


def timeline_svg(
    points: Sequence[VisitPoint],
    *,
    width: int = 880,
    labels: Mapping[str, str] | None = None,
    embed_style: bool = True,
) -> str:
    """Return the patient's course as one accessible <svg> element (prednisone, flares, agents)."""
    total_w = float(max(int(width), 480))
    if not points:
        return empty_svg(total_w, embed_style=embed_style)
    visits = sorted((reduce_visit(p) for p in points), key=lambda v: v.day)
    agents = collect_agents(visits)
    # Room on the right for the words at the end of the bars, so they are never cut or moved.
    notes = [text_width(agent_note(a, len(visits)), 10) + 8 for a in agents]
    left, right = LEFT, total_w - RIGHT - min(max(notes, default=0.0), total_w / 4)
    scale = Scale(visits[0].day, visits[-1].day, left + PAD, right - PAD)
    frame = Frame(visits, [scale.x(v.day) for v in visits], left, right, total_w)

    flare_y = 8.0
    top = flare_y + (22 if any(v.flare for v in visits) else 0)
    panel, base_y = prednisone_panel(frame, top)
    flares = flare_marks(frame, flare_y, base_y)
    names = labels or {}
    rows, y = agent_panel(frame, agents, base_y + 22, names)
    options, axis_y = options_panel(frame, y + 10)
    axis = date_axis(frame, scale, top, axis_y + 4)
    legend, height = legend_panel(visits, agents, axis_y + 50, total_w)
    body = DEFS + "".join(axis + panel + flares + rows + options + legend)
    return wrap_svg(
        body,
        total_w,
        height,
        chart_title(visits),
        describe(visits, agents, names),
        embed_style=embed_style,
    )
