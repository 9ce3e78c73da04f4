"""A pure renderer of a patient's course as an accessible, black-and-white-printable inline SVG."""

from __future__ import annotations

import datetime
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["VisitPoint", "timeline_svg"]


@dataclass(frozen=True, slots=True)
class VisitPoint:
    """One visit: its date, the patient state then, the rank-1 option shown and what was decided."""

    visit_date: datetime.date
    state: Mapping[str, Any]
    recommendation: str | None = None
    decision: str | None = None


PREDNISONE: Final = "prednisone"

_MG_PER_DAY: Final[dict[str, float]] = {
    "mg/day": 1.0,
    "mg/week": 1.0 / 7.0,
    "g/day": 1000.0,
    "g/week": 1000.0 / 7.0,
}
# Stands in for the id prefix until the body is hashed; user text can never contain it.
_ID: Final = "\x00"
_OUTCOMES: Final[dict[str, str]] = {
    "inadequate_response": "inadequate response",
    "intolerance": "intolerance",
    "responded": "responded",
}
# Fill of a bar per outcome: a pattern, not a colour, so the meaning survives greyscale print.
_FILLS: Final[dict[str | None, str]] = {
    "responded": "solid",
    "inadequate_response": f"url(#{_ID}-hatch)",
    "intolerance": f"url(#{_ID}-cross)",
    None: "open",
}
_DECISIONS: Final[dict[str, tuple[str, str]]] = {
    "accepted": ("✓", "accepted"),
    "chose_other": ("↺", "chose another"),
    "declined": ("✕", "declined"),
}
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip

# Characters XML 1.0 forbids; user labels may carry them and must not break the document.
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# Calendar tick steps, finest first: (kind, step, approximate days per step).
_TICK_STEPS: Final[tuple[tuple[str, int, float], ...]] = (
    ("d", 1, 1), ("d", 2, 2), ("d", 7, 7), ("d", 14, 14),
    ("m", 1, 30.44), ("m", 2, 60.9), ("m", 3, 91.3), ("m", 6, 182.6),
    ("y", 1, 365.25), ("y", 2, 730.5), ("y", 5, 1826.25), ("y", 10, 3652.5),
    ("y", 20, 7305), ("y", 50, 18262.5), ("y", 100, 36525), ("y", 250, 91312.5),
    ("y", 500, 182625), ("y", 1000, 365250), ("y", 2500, 913125),
)  # fmt: skip

_FONT: Final = 11.0
# Rough glyph advances (fraction of the font size) of a sans-serif face, to keep labels apart.
_NARROW: Final = frozenset(" .,:;'!|()[]-/ijlrtfI")
_WIDE: Final = frozenset("mwMW@%")
_LEFT: Final = 150.0
_RIGHT: Final = 20.0
_PAD: Final = 14.0
_PANEL: Final = 110.0
_ROW: Final = 30.0
_LANE: Final = 13.0
_MAX_LANES: Final = 3

_STYLE: Final = (
    ".mgtl{font:11px system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;"
    "max-width:100%;height:auto}"
    ".mgtl text{fill:currentColor;stroke:none}"
    ".mgtl .h{font-weight:600}"
    ".mgtl .s{font-size:10px}"
    ".mgtl .i{font-style:italic}"
    ".mgtl .m{text-anchor:middle}"
    ".mgtl .e{text-anchor:end}"
    ".mgtl .ax{stroke:currentColor;fill:none}"
    ".mgtl .grid{stroke:currentColor;stroke-opacity:.15;fill:none}"
    ".mgtl .guide{stroke:currentColor;stroke-opacity:.3;stroke-dasharray:1 3;fill:none}"
    ".mgtl .pred{stroke:currentColor;stroke-width:2;fill:none;stroke-linejoin:round}"
    ".mgtl .dot{fill:currentColor;stroke:none}"
    ".mgtl .unk{fill:none;stroke:currentColor;stroke-dasharray:2 2}"
    ".mgtl .flare-line{stroke:currentColor;stroke-dasharray:6 3;stroke-opacity:.6;fill:none}"
    ".mgtl .flare-mark{fill:currentColor;stroke:none}"
    ".mgtl .bar{stroke:currentColor;stroke-width:1.2}"
    ".mgtl .solid{fill:currentColor;fill-opacity:.55}"
    ".mgtl .open{fill:none}"
    ".mgtl .prior{stroke-dasharray:2 2}"
    ".mgtl .pat{stroke:currentColor;stroke-width:1.3;fill:none}"
    ".mgtl .glyph{font-size:14px;text-anchor:middle;font-weight:700}"
    ".mgtl .nodec{fill:none;stroke:currentColor}"
    ".mgtl .run{stroke:currentColor;stroke-opacity:.6;fill:none}"
)
_DEFS: Final = (
    "<defs>"
    f'<pattern id="{_ID}-hatch" width="5" height="5" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(45)"><path class="pat" d="M2.5,0V5"/></pattern>'
    f'<pattern id="{_ID}-cross" width="6" height="6" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(45)"><path class="pat" d="M3,0V6M0,3H6"/></pattern>'
    "</defs>"
)


@dataclass(slots=True)
class _Visit:
    """One visit reduced to what the chart draws."""

    date: datetime.date
    day: int
    dose: float | None
    flare: bool
    current: list[str]
    history: list[tuple[str, str | None]]
    recommendation: str | None
    decision: str | None


@dataclass(slots=True)
class _Agent:
    """One row of the agents panel: a bar while current, or a prior-only marker."""

    name: str
    first: int
    last: int
    current: bool
    outcome: str | None


def _esc(text: str) -> str:
    """Return text safe inside XML character data and double-quoted attributes."""
    text = _NOT_XML.sub("\ufffd", text)
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _num(value: float) -> str:
    """Return a coordinate with one decimal and no trailing zeros."""
    out = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if out == "-0" else out


def _mg(value: float) -> str:
    """Return a dose in mg with up to two decimals (7.5, 142.86, 40)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _date(day: datetime.date) -> str:
    """Return an unambiguous, locale-free date such as 3 Jan 2024."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _span(start: datetime.date, end: datetime.date) -> str:
    """Return a date range in words, a single date when both ends agree."""
    return _date(start) if start == end else f"{_date(start)} to {_date(end)}"


def _advance(char: str) -> float:
    """Return the rough advance of one character as a fraction of the font size."""
    if char in _NARROW:
        return 0.32
    if char in _WIDE:
        return 0.9
    if char.isupper():
        return 0.68
    return 0.6 if char.isascii() else 1.0


def _width(text: str, size: float = _FONT) -> float:
    """Return an estimate of the rendered width of text in pixels."""
    return sum(_advance(char) for char in text) * size


def _fit(text: str, room: float, size: float = _FONT) -> str:
    """Return text shortened with an ellipsis so that it fits in room pixels."""
    if _width(text, size) <= room:
        return text
    budget, used, keep = room / size - _advance("…"), 0.0, 0
    for char in text:
        used += _advance(char)
        if used > budget:
            break
        keep += 1
    return text[: max(keep, 1)].rstrip() + "…"


def _agent(raw: object) -> str | None:
    """Return the agent name of a raw entry (states are stored with agents resolved to names)."""
    if not isinstance(raw, str):
        return None
    return raw.strip().lower() or None


def _label(name: str, labels: Mapping[str, str]) -> str:
    """Return the display label of an agent name: the caller's (from the knowledge), or the id."""
    return labels.get(name) or name.replace("_", " ").capitalize()


def _entries(state: Mapping[str, Any], key: str) -> list[Mapping[str, Any]] | None:
    """Return the mapping entries of a list field, or None when it is absent or not a list."""
    items = state.get(key)
    if not isinstance(items, list | tuple):
        return None
    return [item for item in items if isinstance(item, Mapping)]


def _dose_mg_day(dose: object) -> float | None:
    """Return a dose in mg/day, or None when it is missing, malformed or in an unknown unit."""
    if not isinstance(dose, Mapping):
        return None
    value, unit = dose.get("value"), dose.get("unit")
    if value is None or isinstance(value, bool) or not isinstance(unit, str):
        return None
    try:
        amount = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    factor = _MG_PER_DAY.get(unit.strip().lower())
    if factor is None or not math.isfinite(amount) or amount < 0:
        return None
    mg = amount * factor
    return mg if math.isfinite(mg) else None


def _reduce(point: VisitPoint) -> _Visit:
    """Return what the chart needs from one visit."""
    state: Mapping[str, Any] = point.state if isinstance(point.state, Mapping) else {}
    meds = _entries(state, "current_medications")
    dose: float | None = None
    current: list[str] = []
    if meds is not None:
        dose = 0.0
        for item in meds:
            name = _agent(item.get("agent"))
            if name is None:
                continue
            if name != PREDNISONE:
                if name not in current:
                    current.append(name)
            elif dose is not None:
                mg = _dose_mg_day(item.get("dose"))
                dose = None if mg is None else dose + mg
    history: list[tuple[str, str | None]] = []
    for item in _entries(state, "treatment_history") or []:
        name = _agent(item.get("agent"))
        raw = item.get("outcome")
        outcome = raw.strip().lower().replace(" ", "_") if isinstance(raw, str) else None
        if name is not None:
            history.append((name, outcome if outcome in _OUTCOMES else None))
    rec = point.recommendation.strip() if isinstance(point.recommendation, str) else ""
    return _Visit(
        date=point.visit_date,
        day=point.visit_date.toordinal(),
        dose=dose,
        flare=state.get("flare") is True,
        current=current,
        history=history,
        recommendation=rec or None,
        decision=point.decision if point.decision in _DECISIONS else None,
    )


def _agents(visits: Sequence[_Visit]) -> list[_Agent]:
    """Return the agents panel rows, in order of first appearance."""
    seen: dict[str, list[int]] = {}
    listed: dict[str, list[tuple[int, str | None]]] = {}
    for i, visit in enumerate(visits):
        for name in visit.current:
            seen.setdefault(name, []).append(i)
            listed.setdefault(name, [])
        for name, outcome in visit.history:
            if name != PREDNISONE:
                seen.setdefault(name, [])
                listed.setdefault(name, []).append((i, outcome))
    rows: list[_Agent] = []
    for name, indices in seen.items():
        if indices:
            first, last, current = indices[0], indices[-1], True
        else:
            first = last = listed[name][0][0]
            current = False
        known = [o for i, o in listed[name] if i >= first and o is not None]
        rows.append(_Agent(name, first, last, current, known[-1] if known else None))
    rows.sort(key=lambda row: row.first)
    return rows


class _Scale:
    """Maps visit days to x pixels and chooses the date ticks."""

    def __init__(self, lo: int, hi: int, x0: float, x1: float) -> None:
        self.lo, self.hi, self.x0, self.x1 = lo, hi, x0, x1

    def x(self, day: int) -> float:
        """Return the x pixel of a day ordinal."""
        if self.hi == self.lo:
            return (self.x0 + self.x1) / 2
        return self.x0 + (day - self.lo) * (self.x1 - self.x0) / (self.hi - self.lo)

    def ticks(self, left: float, right: float) -> list[tuple[int, str, str]]:
        """Return (day, label, year line) ticks between the pixel bounds left and right."""
        if self.hi == self.lo:
            only = datetime.date.fromordinal(self.lo)
            return [(self.lo, _date(only), "")]
        per_px = (self.hi - self.lo) / (self.x1 - self.x0)
        first = max(1, math.ceil(self.lo - (self.x0 - left) * per_px))
        final = min(datetime.date.max.toordinal(), math.floor(self.hi + (right - self.x1) * per_px))
        most = max(2, int((right - left) // 64))
        span = final - first
        kind, step, _ = next((t for t in _TICK_STEPS if span / t[2] <= most), _TICK_STEPS[-1])
        days_in = _tick_days(kind, step, first, final)
        out: list[tuple[int, str, str]] = []
        prev_year: int | None = None
        for day in days_in:
            d = datetime.date.fromordinal(day)
            if kind == "y":
                out.append((day, str(d.year), ""))
                continue
            label = f"{d.day} {_MONTHS[d.month - 1]}" if kind == "d" else _MONTHS[d.month - 1]
            out.append((day, label, str(d.year) if d.year != prev_year else ""))
            prev_year = d.year
        return out


def _tick_days(kind: str, step: int, first: int, final: int) -> list[int]:
    """Return the ordinals of calendar-aligned ticks of one kind and step within [first, final]."""
    out: list[int] = []
    if kind == "d":
        # Weekly ticks fall on Mondays (ordinal 1 is a Monday).
        day = first if step < 7 else first + (1 - first) % step
        out.extend(range(day, final + 1, step))
        return out
    start = datetime.date.fromordinal(first)
    if kind == "m":
        year, month = start.year, start.month
        while year <= datetime.MAXYEAR:
            tick = datetime.date(year, month, 1).toordinal()
            if tick > final:
                break
            if tick >= first and (month - 1) % step == 0:
                out.append(tick)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return out
    year = start.year + (-start.year) % step
    if datetime.date(max(1, min(year, datetime.MAXYEAR)), 1, 1).toordinal() < first:
        year += step
    while year <= datetime.MAXYEAR:
        tick = datetime.date(year, 1, 1).toordinal()
        if tick > final:
            break
        out.append(tick)
        year += step
    return out


def _nice_top(peak: float) -> tuple[float, float]:
    """Return (top, step) of a y axis that holds peak in at most five round steps."""
    if peak < 1e-6:
        return 10.0, 5.0
    magnitude = 10 ** math.floor(math.log10(peak / 5))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if peak / step <= 5 + 1e-9:
            return math.ceil(peak / step - 1e-9) * step, step
    return peak, peak  # unreachable: factor 10 always satisfies the bound


def _spread(xs: Sequence[float], gap: float, lo: float, hi: float) -> list[float]:
    """Return positions near xs (ascending) at least gap apart, clusters centred on their mean."""
    clusters: list[tuple[float, int]] = []  # (mean x, count)
    for x in xs:
        mean, count = x, 1
        while clusters:
            prev_mean, prev_count = clusters[-1]
            prev_right = prev_mean + (prev_count - 1) * gap / 2
            if mean - (count - 1) * gap / 2 - prev_right >= gap:
                break
            clusters.pop()
            mean = (prev_mean * prev_count + mean * count) / (prev_count + count)
            count += prev_count
        clusters.append((mean, count))
    out: list[float] = []
    for mean, count in clusters:
        start = mean - (count - 1) * gap / 2
        start = max(lo, min(start, hi - (count - 1) * gap))
        out.extend(start + k * gap for k in range(count))
    return out


class _Lanes:
    """Greedy placement of labels into horizontal lanes so that none overlap."""

    def __init__(self, count: int, gap: float = 6.0) -> None:
        self.edges = [-math.inf] * count
        self.gap = gap

    def place(self, left: float, right: float) -> int | None:
        """Return the first lane where [left, right] fits, claiming it, or None."""
        for lane, edge in enumerate(self.edges):
            if left >= edge + self.gap:
                self.edges[lane] = right
                return lane
        return None

    def used(self) -> int:
        """Return how many lanes hold at least one label."""
        return sum(1 for edge in self.edges if edge != -math.inf)


def _text(x: float, y: float, text: str, cls: str = "") -> str:
    """Return one escaped <text> element."""
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{_num(x)}" y="{_num(y)}"{klass}>{_esc(text)}</text>'


def _wrap(body: str, width: float, height: float, title: str, desc: str) -> str:
    """Return the root <svg> around body, with ids made unique and stable by hashing the content."""
    head = (
        f'<title id="{_ID}-t">{_esc(title)}</title><desc id="{_ID}-d">{_esc(desc)}</desc>'
        f"<style>{_STYLE}</style>"
    )
    inner = head + body
    prefix = "mgtl-" + hashlib.sha1(inner.encode("utf-8"), usedforsecurity=False).hexdigest()[:10]
    w, h = _num(width), _num(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="mgtl" role="img" width="{w}"'
        f' height="{h}" viewBox="0 0 {w} {h}" aria-labelledby="{_ID}-t {_ID}-d">'
        f"{inner}</svg>"
    ).replace(_ID, prefix)


def _empty(width: float) -> str:
    """Return the small SVG shown before any visit."""
    body = _text(width / 2, 26, "No visits yet", "m i")
    return _wrap(body, width, 40, "Treatment course", "No visits yet.")


@dataclass(frozen=True, slots=True)
class _Frame:
    """The visits in date order and the horizontal geometry shared by every panel."""

    visits: Sequence[_Visit]
    xs: Sequence[float]
    left: float
    right: float
    width: float


def timeline_svg(
    points: Sequence[VisitPoint], *, width: int = 880, labels: Mapping[str, str] | None = None
) -> str:
    """Return the patient's course as one accessible <svg> element (prednisone, flares, agents)."""
    total_w = float(max(int(width), 480))
    if not points:
        return _empty(total_w)
    visits = sorted((_reduce(p) for p in points), key=lambda v: v.day)
    agents = _agents(visits)
    left, right = _LEFT, total_w - _RIGHT
    scale = _Scale(visits[0].day, visits[-1].day, left + _PAD, right - _PAD)
    frame = _Frame(visits, [scale.x(v.day) for v in visits], left, right, total_w)

    flare_y = 8.0
    top = flare_y + (22 if any(v.flare for v in visits) else 0)
    panel, base_y = _prednisone(frame, top)
    flares = _flares(frame, flare_y, base_y)
    names = labels or {}
    rows, y = _agent_rows(frame, agents, base_y + 22, names)
    options, axis_y = _options(frame, y + 10)
    axis = _axis(frame, scale, top, axis_y + 4)
    legend, height = _legend(visits, agents, axis_y + 50, total_w)
    body = _DEFS + "".join(axis + panel + flares + rows + options + legend)
    return _wrap(body, total_w, height, _title(visits), _describe(visits, agents, names))


def _prednisone(frame: _Frame, top: float) -> tuple[list[str], float]:
    """Return the prednisone panel (axis, dose line with gaps, dots, values) and its baseline."""
    plot_top, base_y = top + 26, top + 26 + _PANEL
    peak = max((v.dose for v in frame.visits if v.dose is not None), default=0.0)
    ceiling, step = _nice_top(peak)

    def py(mg: float) -> float:
        return base_y - mg / ceiling * (base_y - plot_top)

    out = ['<g class="prednisone">', _text(8, top + 10, "Prednisone mg/day", "h")]
    for k in range(round(ceiling / step) + 1):
        ty = py(k * step)
        line = "ax" if k == 0 else "grid"
        out.append(f'<path class="{line}" d="M{_num(frame.left)},{_num(ty)}H{_num(frame.right)}"/>')
        out.append(_text(frame.left - 6, ty + 4, _mg(k * step), "e"))
    path: list[str] = []
    pen_down = False
    for v, x in zip(frame.visits, frame.xs, strict=True):
        if v.dose is not None:
            path.append(f"{'L' if pen_down else 'M'}{_num(x)},{_num(py(v.dose))}")
        pen_down = v.dose is not None
    if path:
        out.append(f'<path class="pred" d="{"".join(path)}"/>')
    values = _Lanes(1, gap=4)
    shown: float | None = None
    for n, (v, x) in enumerate(zip(frame.visits, frame.xs, strict=True)):
        when = _esc(_date(v.date))
        if v.dose is None:
            mid = (plot_top + base_y) / 2
            out.append(
                f'<g class="dose-unknown"><title>{when}: prednisone dose not recorded</title>'
                f'<circle class="unk" cx="{_num(x)}" cy="{_num(mid)}" r="7"/>'
                f"{_text(x, mid + 4, '?', 'm h')}</g>"
            )
            continue
        said = "off prednisone (0 mg/day)" if v.dose == 0 else f"prednisone {_mg(v.dose)} mg/day"
        dy = py(v.dose)
        out.append(
            f'<circle class="dot" cx="{_num(x)}" cy="{_num(dy)}" r="3.2">'
            f"<title>{when}: {said}</title></circle>"
        )
        # Of several visits on one day only the last is labelled, so labels never cover dots.
        same_day = n + 1 < len(frame.visits) and frame.visits[n + 1].day == v.day
        if v.dose != shown and not same_day:
            label = _mg(v.dose)
            w = _width(label, 10)
            # A flare's dashed rule runs through the visit, so its value sits beside the rule.
            lo = x + 4 if v.flare else x - w / 2
            if values.place(lo, lo + w) is not None:
                out.append(
                    _text(lo, dy - 7, label, "s") if v.flare else _text(x, dy - 7, label, "m s")
                )
        if not same_day:
            shown = v.dose
    out.append("</g>")
    return out, base_y


def _flares(frame: _Frame, flare_y: float, base_y: float) -> list[str]:
    """Return a labelled downward triangle and a dashed rule through the panel at each flare."""
    flares = [i for i, v in enumerate(frame.visits) if v.flare]
    if not flares:
        return []
    out = ['<g class="flares">']
    w = _width("Flare")
    taken = -math.inf  # right edge of the last triangle or label drawn
    for n, i in enumerate(flares):
        x = frame.xs[i]
        after = frame.xs[flares[n + 1]] if n + 1 < len(flares) else frame.width
        text = ""
        if x + 7 >= taken + 4 and x + 7 + w <= after - 8:
            text, taken = _text(x + 7, flare_y + 10, "Flare"), x + 7 + w
        elif x - 7 - w >= max(taken + 4, frame.left):
            text = _text(x - 7, flare_y + 10, "Flare", "e")
        taken = max(taken, x + 6)
        out.append(
            f'<g class="flare" data-date="{frame.visits[i].date.isoformat()}">'
            f"<title>{_esc(_date(frame.visits[i].date))}: flare</title>"
            f'<path class="flare-line" d="M{_num(x)},{_num(flare_y + 12)}V{_num(base_y)}"/>'
            f'<path class="flare-mark" d="M{_num(x - 5.5)},{_num(flare_y + 2)}h11l-5.5,10z"/>'
            f"{text}</g>"
        )
    out.append("</g>")
    return out


def _agent_rows(
    frame: _Frame, agents: Sequence[_Agent], y: float, labels: Mapping[str, str]
) -> tuple[list[str], float]:
    """Return one labelled bar per agent while current (a short marker if only prior), and y."""
    out = ['<g class="agents">', _text(8, y + 4, "Other agents", "h")]
    y += 10
    if not agents:
        out.append(_text(frame.left, y + 12, "none recorded", "i s"))
        y += 20
    visits, xs = frame.visits, frame.xs
    for agent in agents:
        name = _label(agent.name, labels)
        start, end = visits[agent.first].date, visits[agent.last].date
        outcome = _OUTCOMES.get(agent.outcome or "", "")
        if agent.current:
            x_a, x_b = xs[agent.first] - 5, xs[agent.last] + 5
            ongoing = agent.last == len(visits) - 1 and not outcome
            note = outcome or ("ongoing" if ongoing else "")
            tip = f"{name}: current {_span(start, end)}" + (f"; {note}" if note else "")
        else:
            x_a, x_b = xs[agent.first] - 8, xs[agent.first] + 8
            said = outcome or "outcome not recorded"
            note = f"prior: {said}"
            tip = f"{name}: listed as tried on {_date(start)}; {said}"
        out.append(
            f'<g class="agent" data-agent="{_esc(agent.name)}" data-from="{start.isoformat()}"'
            f' data-to="{end.isoformat()}" data-outcome="{agent.outcome or ""}">'
            f"<title>{_esc(tip)}</title>"
            f"{_text(frame.left - 8, y + 13, _fit(name, frame.left - 16), 'e')}"
            f'<rect {_bar_paint(agent.outcome, prior=not agent.current)} x="{_num(x_a)}"'
            f' y="{_num(y + 4)}" width="{_num(x_b - x_a)}" height="11"/>'
        )
        if note:
            if x_a + _width(note, 10) <= frame.width - 4:
                out.append(_text(x_a, y + 26, note, "s i outcome"))
            else:
                out.append(_text(x_b, y + 26, note, "s i e outcome"))
        out.append("</g>")
        y += _ROW
    out.append("</g>")
    return out, y


def _options(frame: _Frame, y: float) -> tuple[list[str], float]:
    """Return the rank-1 option at each visit (decision glyph) and each run of one option, and y."""
    out = ['<g class="recommendations">', _text(8, y + 12, "Rank-1 option", "h")]
    # Visits on the same or nearby days would stack their glyphs, so the glyphs are spread.
    gxs = _spread(frame.xs, 15, frame.left, frame.width - 8)
    for i, v in enumerate(frame.visits):
        x = gxs[i]
        glyph, said = _DECISIONS.get(v.decision or "", ("", "no decision recorded"))
        if glyph:
            mark = _text(x, y + 16, glyph, "glyph")
        elif v.recommendation is None:
            mark = _text(x, y + 15, "–", "m noopt")
        else:
            mark = f'<circle class="nodec" cx="{_num(x)}" cy="{_num(y + 11)}" r="3.5"/>'
        option = v.recommendation or "no option shown"
        out.append(
            f'<g class="visit" data-date="{v.date.isoformat()}" data-decision="{v.decision or ""}">'
            f"<title>{_esc(_date(v.date))}: {_esc(option)} — {said}</title>{mark}</g>"
        )
    # The same option at consecutive visits is named once, under a rule joining its glyphs.
    runs: list[tuple[int, int, str]] = []
    for i, v in enumerate(frame.visits):
        if v.recommendation is None:
            continue
        if runs and runs[-1][1] == i - 1 and runs[-1][2] == v.recommendation:
            runs[-1] = (runs[-1][0], i, v.recommendation)
        else:
            runs.append((i, i, v.recommendation))
    lanes = _Lanes(_MAX_LANES)
    for first, last, option in runs:
        x_a, x_b = gxs[first], gxs[last]
        shown = _fit(option, frame.right - frame.left)
        w = _width(shown)
        centre = min(max((x_a + x_b) / 2, frame.left + w / 2), frame.width - 4 - w / 2)
        lane = lanes.place(min(x_a, centre - w / 2), max(x_b, centre + w / 2))
        if lane is None:
            # No room for the name: an ellipsis keeps its place and the tooltip keeps the name.
            centre, shown = (x_a + x_b) / 2, "…"
            lane = lanes.place(min(x_a, centre - 4), max(x_b, centre + 4))
        if lane is None:
            continue
        count = last - first + 1
        when = _span(frame.visits[first].date, frame.visits[last].date)
        when = when if count == 1 else f"{count} visits, {when}"
        rule = (
            f'<path class="run" d="M{_num(x_a)},{_num(y + 21)}H{_num(x_b)}"/>' if count > 1 else ""
        )
        out.append(
            f'<g class="option"><title>{_esc(option)}: {when}</title>{rule}'
            f"{_text(centre, y + 32 + _LANE * lane, shown, 'm rec')}</g>"
        )
    out.append("</g>")
    return out, y + 22 + _LANE * max(1, lanes.used())


def _axis(frame: _Frame, scale: _Scale, top: float, axis_y: float) -> list[str]:
    """Return faint guides at each visit through every panel and the date axis below them."""
    out = ['<g class="guides">']
    for v, x in zip(frame.visits, frame.xs, strict=True):
        out.append(
            f'<path class="guide" data-date="{v.date.isoformat()}"'
            f' d="M{_num(x)},{_num(top)}V{_num(axis_y)}"/>'
        )
    out += [
        '</g><g class="date-axis">',
        f'<path class="ax" d="M{_num(frame.left)},{_num(axis_y)}H{_num(frame.right)}"/>',
    ]
    for day, label, year in scale.ticks(frame.left, frame.right):
        x = scale.x(day)
        out.append(f'<path class="ax" d="M{_num(x)},{_num(axis_y)}v5"/>')
        out.append(_text(x, axis_y + 17, label, "m s"))
        if year:
            out.append(_text(x, axis_y + 29, year, "m s h"))
    out.append("</g>")
    return out


def _bar_paint(outcome: str | None, *, prior: bool) -> str:
    """Return the class and fill attributes of a bar for an outcome (pattern, not colour)."""
    fill = _FILLS.get(outcome, "open")
    klass = "bar prior" if prior else "bar"
    if fill.startswith("url("):
        return f'class="{klass}" fill="{fill}"'
    return f'class="{klass} {fill}"'


def _legend(
    visits: Sequence[_Visit], agents: Sequence[_Agent], y: float, total_w: float
) -> tuple[list[str], float]:
    """Return the legend of the symbols in use, wrapped to the width, and the y below it."""
    items: list[tuple[str, str | None, str]] = [("line", None, "prednisone mg/day")]
    if any(v.dose is None for v in visits):
        items.append(("unk", None, "dose not recorded"))
    if any(v.flare for v in visits):
        items.append(("flare", None, "flare"))
    outcomes = {a.outcome for a in agents}
    for key, text in (*_OUTCOMES.items(), (None, "no outcome recorded")):
        if key in outcomes:
            items.append(("bar", key, text))
    if any(not a.current for a in agents):
        items.append(("prior", None, "prior (history only)"))
    decisions = {v.decision for v in visits}
    for key, (glyph, text) in _DECISIONS.items():
        if key in decisions:
            items.append(("glyph", glyph, text))
    if any(v.decision is None and v.recommendation is not None for v in visits):
        items.append(("nodec", None, "no decision recorded"))
    if any(v.recommendation is None for v in visits):
        items.append(("noopt", None, "no option shown"))
    out = ['<g class="legend">']
    x, row_y = _LEFT, y
    for kind, arg, text in items:
        w = 26 + _width(text, 10) + 14
        if x + w > total_w - 4 and x > _LEFT:
            x, row_y = _LEFT, row_y + 16
        out.append(_swatch(kind, arg, x, row_y) + _text(x + 26, row_y + 4, text, "s"))
        x += w
    out.append("</g>")
    return out, row_y + 14


def _swatch(kind: str, arg: str | None, x: float, y: float) -> str:
    """Return the small symbol that stands for one legend entry."""
    cx, cy = _num(x + 10), _num(y)
    if kind == "line":
        return (
            f'<path class="pred" d="M{_num(x)},{cy}h20"/>'
            f'<circle class="dot" cx="{cx}" cy="{cy}" r="3"/>'
        )
    if kind == "unk":
        return f'<circle class="unk" cx="{cx}" cy="{cy}" r="7"/>{_text(x + 10, y + 4, "?", "m h")}'
    if kind == "flare":
        return f'<path class="flare-mark" d="M{_num(x + 4.5)},{_num(y - 5)}h11l-5.5,10z"/>'
    if kind in ("bar", "prior"):
        paint = _bar_paint(arg, prior=kind == "prior")
        return f'<rect {paint} x="{_num(x)}" y="{_num(y - 5)}" width="20" height="10"/>'
    if kind == "glyph":
        return _text(x + 10, y + 5, arg or "", "glyph")
    if kind == "noopt":
        return _text(x + 10, y + 4, "–", "m noopt")
    return f'<circle class="nodec" cx="{cx}" cy="{cy}" r="3.5"/>'


def _title(visits: Sequence[_Visit]) -> str:
    """Return the one-line accessible name of the chart."""
    first, last = visits[0].date, visits[-1].date
    count = f"{len(visits)} visit{'s' if len(visits) != 1 else ''}"
    if first == last:
        return f"Treatment course: {count} on {_date(first)}"
    return f"Treatment course: {count}, {_date(first)} to {_date(last)}"


def _describe(visits: Sequence[_Visit], agents: Sequence[_Agent], labels: Mapping[str, str]) -> str:
    """Return the chart's content in words for readers who cannot see it."""
    known = [(v.date, v.dose) for v in visits if v.dose is not None]
    missing = len(visits) - len(known)
    if not known:
        pred = "Prednisone dose not recorded at any visit."
    elif all(dose == 0 for _, dose in known):
        pred = "Prednisone: off at every visit with a recorded dose."
    elif len(known) == 1:
        pred = f"Prednisone: {_mg(known[0][1])} mg/day on {_date(known[0][0])}."
    else:
        peak_date, peak = max(known, key=lambda item: item[1])
        pred = (
            f"Prednisone: {_mg(known[0][1])} mg/day on {_date(known[0][0])},"
            f" {_mg(known[-1][1])} mg/day on {_date(known[-1][0])}"
            f"; highest {_mg(peak)} mg/day on {_date(peak_date)}."
        )
    if missing:
        pred += f" Dose not recorded at {missing} visit{'s' if missing != 1 else ''}."
    flare_dates = [_date(v.date) for v in visits if v.flare]
    flares = (
        f"Flares: {len(flare_dates)} ({', '.join(flare_dates)})." if flare_dates else "No flares."
    )
    parts: list[str] = []
    for a in agents:
        outcome = _OUTCOMES.get(a.outcome or "")
        if a.current:
            span = _span(visits[a.first].date, visits[a.last].date)
            parts.append(f"{_label(a.name, labels)} {span}" + (f", {outcome}" if outcome else ""))
        else:
            parts.append(f"{_label(a.name, labels)} (prior, {outcome or 'outcome not recorded'})")
    others = f"Other agents: {'; '.join(parts)}." if parts else "No other agents."
    counts = dict.fromkeys(_DECISIONS, 0)
    shown = 0
    for v in visits:
        if v.recommendation is not None:
            shown += 1
        if v.decision is not None:
            counts[v.decision] += 1
    said = ", ".join(f"{n} {_DECISIONS[k][1]}" for k, n in counts.items() if n)
    recs = f"Rank-1 options shown at {shown} visit{'s' if shown != 1 else ''}" + (
        f": {said}." if said else "."
    )
    return " ".join((pred, flares, others, recs))
