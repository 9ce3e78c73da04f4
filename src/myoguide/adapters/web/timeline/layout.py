"""Chart geometry: margins, glyph widths, the date scale and its ticks, and label placement."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from myoguide.adapters.web.timeline.data import Visit
from myoguide.adapters.web.timeline.words import MONTHS, format_date

# Calendar tick steps, finest first: (kind, step, approximate days per step).
_TICK_STEPS: Final[tuple[tuple[str, int, float], ...]] = (
    ("d", 1, 1), ("d", 2, 2), ("d", 7, 7), ("d", 14, 14),
    ("m", 1, 30.44), ("m", 2, 60.9), ("m", 3, 91.3), ("m", 6, 182.6),
    ("y", 1, 365.25), ("y", 2, 730.5), ("y", 5, 1826.25), ("y", 10, 3652.5),
    ("y", 20, 7305), ("y", 50, 18262.5), ("y", 100, 36525), ("y", 250, 91312.5),
    ("y", 500, 182625), ("y", 1000, 365250), ("y", 2500, 913125),
)  # fmt: skip

FONT: Final = 11.0
# Rough glyph advances (fraction of the font size) of a sans-serif face, to keep labels apart.
_NARROW: Final = frozenset(" .,:;'!|()[]-/ijlrtfI")
_WIDE: Final = frozenset("mwMW@%")
LEFT: Final = 150.0
RIGHT: Final = 20.0
PAD: Final = 14.0
PANEL: Final = 110.0
ROW: Final = 24.0
LANE: Final = 13.0

MAX_LANES: Final = 3


def _advance(char: str) -> float:
    """Return the rough advance of one character as a fraction of the font size."""
    if char in _NARROW:
        return 0.32
    if char in _WIDE:
        return 0.9
    if char.isupper():
        return 0.68
    return 0.6 if char.isascii() else 1.0


def text_width(text: str, size: float = FONT) -> float:
    """Return an estimate of the rendered width of text in pixels."""
    return sum(_advance(char) for char in text) * size


def fit_text(text: str, room: float, size: float = FONT) -> str:
    """Return text shortened with an ellipsis so that it fits in room pixels."""
    if text_width(text, size) <= room:
        return text
    budget, used, keep = room / size - _advance("…"), 0.0, 0
    for char in text:
        used += _advance(char)
        if used > budget:
            break
        keep += 1
    return text[: max(keep, 1)].rstrip() + "…"


class Tick(NamedTuple):
    """A date tick: its day ordinal, its label and the year shown under it (or empty)."""

    day: int
    label: str
    year: str


class AxisTop(NamedTuple):
    """The top of a y axis and the step between its gridlines."""

    top: float
    step: float


class Scale:
    """Maps visit days to x pixels and chooses the date ticks."""

    def __init__(self, lo: int, hi: int, x0: float, x1: float) -> None:
        self.lo, self.hi, self.x0, self.x1 = lo, hi, x0, x1

    def x(self, day: int) -> float:
        """Return the x pixel of a day ordinal."""
        if self.hi == self.lo:
            return (self.x0 + self.x1) / 2
        return self.x0 + (day - self.lo) * (self.x1 - self.x0) / (self.hi - self.lo)

    def ticks(self, left: float, right: float) -> list[Tick]:
        """Return (day, label, year line) ticks between the pixel bounds left and right."""
        if self.hi == self.lo:
            only = datetime.date.fromordinal(self.lo)
            return [Tick(self.lo, format_date(only), "")]
        per_px = (self.hi - self.lo) / (self.x1 - self.x0)
        first = max(1, math.ceil(self.lo - (self.x0 - left) * per_px))
        final = min(datetime.date.max.toordinal(), math.floor(self.hi + (right - self.x1) * per_px))
        most = max(2, int((right - left) // 64))
        span = final - first
        kind, step, _ = next((t for t in _TICK_STEPS if span / t[2] <= most), _TICK_STEPS[-1])
        days_in = _tick_days(kind, step, first, final)
        out: list[Tick] = []
        prev_year: int | None = None
        for day in days_in:
            d = datetime.date.fromordinal(day)
            if kind == "y":
                out.append(Tick(day, str(d.year), ""))
                continue
            label = f"{d.day} {MONTHS[d.month - 1]}" if kind == "d" else MONTHS[d.month - 1]
            out.append(Tick(day, label, str(d.year) if d.year != prev_year else ""))
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


def nice_top(peak: float) -> AxisTop:
    """Return (top, step) of a y axis that holds peak in at most five round steps."""
    if peak < 1e-6:
        return AxisTop(10.0, 5.0)
    magnitude = 10 ** math.floor(math.log10(peak / 5))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if peak / step <= 5 + 1e-9:
            return AxisTop(math.ceil(peak / step - 1e-9) * step, step)
    return AxisTop(peak, peak)  # unreachable: factor 10 always satisfies the bound


def spread(xs: Sequence[float], gap: float, lo: float, hi: float) -> list[float]:
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


class Lanes:
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


@dataclass(frozen=True, slots=True)
class Frame:
    """The visits in date order and the horizontal geometry shared by every panel."""

    visits: Sequence[Visit]
    xs: Sequence[float]
    left: float
    right: float
    width: float
