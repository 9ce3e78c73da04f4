"""Read visits for the chart: each visit's state reduced to doses, agents, flares and decisions."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

PREDNISONE: Final = "prednisone"

_MG_PER_DAY: Final[dict[str, float]] = {
    "mg/day": 1.0,
    "mg/week": 1.0 / 7.0,
    "g/day": 1000.0,
    "g/week": 1000.0 / 7.0,
}

OUTCOMES: Final[dict[str, str]] = {
    "inadequate_response": "inadequate response",
    "intolerance": "intolerance",
    "responded": "responded",
}

DECISIONS: Final[dict[str, tuple[str, str]]] = {
    "accepted": ("✓", "accepted"),
    "chose_other": ("↺", "chose another"),
    "declined": ("✕", "declined"),
}


@dataclass(frozen=True, slots=True)
class VisitPoint:
    """One visit: its date, the patient state then, the rank-1 option shown and what was decided."""

    visit_date: datetime.date
    state: Mapping[str, Any]
    recommendation: str | None = None
    decision: str | None = None


class HistoryEntry(NamedTuple):
    """An agent listed in the treatment history, and its outcome when it is a known one."""

    agent: str
    outcome: str | None


@dataclass(slots=True)
class Visit:
    """One visit reduced to what the chart draws."""

    date: datetime.date
    day: int
    dose: float | None
    flare: bool
    current: list[str]
    history: list[HistoryEntry]
    recommendation: str | None
    decision: str | None


@dataclass(slots=True)
class Agent:
    """One row of the agents panel: a bar per run of visits it was taken, or a prior marker."""

    name: str
    first: int
    last: int
    current: bool
    outcome: str | None
    # (first, last) visit positions of each unbroken run; a visit without it is a gap.
    runs: tuple[tuple[int, int], ...] = ()


def agent_name(raw: object) -> str | None:
    """Return the agent name of a raw entry (states are stored with agents resolved to names)."""
    if not isinstance(raw, str):
        return None
    return raw.strip().lower() or None


def agent_label(name: str, labels: Mapping[str, str]) -> str:
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


def reduce_visit(point: VisitPoint) -> Visit:
    """Return what the chart needs from one visit."""
    state: Mapping[str, Any] = point.state if isinstance(point.state, Mapping) else {}
    meds = _entries(state, "current_medications")
    dose: float | None = None
    current: list[str] = []
    if meds is not None:
        dose = 0.0
        for item in meds:
            name = agent_name(item.get("agent"))
            if name is None:
                continue
            if name != PREDNISONE:
                if name not in current:
                    current.append(name)
            elif dose is not None:
                mg = _dose_mg_day(item.get("dose"))
                dose = None if mg is None else dose + mg
    history: list[HistoryEntry] = []
    for item in _entries(state, "treatment_history") or []:
        name = agent_name(item.get("agent"))
        raw = item.get("outcome")
        outcome = raw.strip().lower().replace(" ", "_") if isinstance(raw, str) else None
        if name is not None:
            history.append(HistoryEntry(name, outcome if outcome in OUTCOMES else None))
    rec = point.recommendation.strip() if isinstance(point.recommendation, str) else ""
    return Visit(
        date=point.visit_date,
        day=point.visit_date.toordinal(),
        dose=dose,
        flare=state.get("flare") is True,
        current=current,
        history=history,
        recommendation=rec or None,
        decision=point.decision if point.decision in DECISIONS else None,
    )


def _runs(indices: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Return the unbroken runs of consecutive visit positions."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return tuple(runs)


def collect_agents(visits: Sequence[Visit]) -> list[Agent]:
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
    rows: list[Agent] = []
    for name, indices in seen.items():
        if indices:
            first, last, current = indices[0], indices[-1], True
        else:
            first = last = listed[name][0][0]
            current = False
        known = [o for i, o in listed[name] if i >= first and o is not None]
        rows.append(Agent(name, first, last, current, known[-1] if known else None, _runs(indices)))
    rows.sort(key=lambda row: row.first)
    return rows
