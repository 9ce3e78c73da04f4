"""The chart in words: dates, doses, its accessible name and its description for screen readers."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Final

from myoguide.adapters.web.timeline.data import DECISIONS, OUTCOMES, Agent, Visit, agent_label

MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip


def format_mg(value: float) -> str:
    """Return a dose in mg with up to two decimals (7.5, 142.86, 40)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def format_date(day: datetime.date) -> str:
    """Return an unambiguous, locale-free date such as 3 Jan 2024."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def format_span(start: datetime.date, end: datetime.date) -> str:
    """Return a date range in words, a single date when both ends agree."""
    return format_date(start) if start == end else f"{format_date(start)} to {format_date(end)}"


def chart_title(visits: Sequence[Visit]) -> str:
    """Return the one-line accessible name of the chart."""
    first, last = visits[0].date, visits[-1].date
    count = f"{len(visits)} visit{'s' if len(visits) != 1 else ''}"
    if first == last:
        return f"Treatment course: {count} on {format_date(first)}"
    return f"Treatment course: {count}, {format_date(first)} to {format_date(last)}"


def describe(visits: Sequence[Visit], agents: Sequence[Agent], labels: Mapping[str, str]) -> str:
    """Return the chart's content in words for readers who cannot see it."""
    known = [(v.date, v.dose) for v in visits if v.dose is not None]
    missing = len(visits) - len(known)
    if not known:
        pred = "Prednisone dose not recorded at any visit."
    elif all(dose == 0 for _, dose in known):
        pred = "Prednisone: off at every visit with a recorded dose."
    elif len(known) == 1:
        pred = f"Prednisone: {format_mg(known[0][1])} mg/day on {format_date(known[0][0])}."
    else:
        peak_date, peak = max(known, key=lambda item: item[1])
        pred = (
            f"Prednisone: {format_mg(known[0][1])} mg/day on {format_date(known[0][0])},"
            f" {format_mg(known[-1][1])} mg/day on {format_date(known[-1][0])}"
            f"; highest {format_mg(peak)} mg/day on {format_date(peak_date)}."
        )
    if missing:
        pred += f" Dose not recorded at {missing} visit{'s' if missing != 1 else ''}."
    flare_dates = [format_date(v.date) for v in visits if v.flare]
    flares = (
        f"Flares: {len(flare_dates)} ({', '.join(flare_dates)})." if flare_dates else "No flares."
    )
    parts: list[str] = []
    for a in agents:
        outcome = OUTCOMES.get(a.outcome or "")
        if a.current:
            span = format_span(visits[a.first].date, visits[a.last].date)
            parts.append(
                f"{agent_label(a.name, labels)} {span}" + (f", {outcome}" if outcome else "")
            )
        else:
            parts.append(
                f"{agent_label(a.name, labels)} (prior, {outcome or 'outcome not recorded'})"
            )
    others = f"Other agents: {'; '.join(parts)}." if parts else "No other agents."
    counts = dict.fromkeys(DECISIONS, 0)
    shown = 0
    for v in visits:
        if v.recommendation is not None:
            shown += 1
        if v.decision is not None:
            counts[v.decision] += 1
    said = ", ".join(f"{n} {DECISIONS[k][1]}" for k, n in counts.items() if n)
    recs = f"Rank-1 options shown at {shown} visit{'s' if shown != 1 else ''}" + (
        f": {said}." if said else "."
    )
    return " ".join((pred, flares, others, recs))
