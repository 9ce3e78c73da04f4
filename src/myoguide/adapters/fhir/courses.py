"""When an infusion or course agent was last given, read from a medication resource's dates."""

from __future__ import annotations

import datetime
from typing import Any

# The agents contract.md names as given in infusions or courses: only these carry `last_given`
# (the knowledge marks the same three `given_as_course`; tests/test_knowledge.py keeps them equal).
COURSE_AGENTS = frozenset({"rituximab", "ivig", "cyclophosphamide"})


def resource_date(res: dict[str, Any]) -> str | None:
    """Return the ISO date a medication resource says the drug was given (or ordered), if any.

    An administration or statement gives its effective time (the end of a period, else its
    start); a request gives the day it was authored. A value that is not a date is skipped.
    """
    period = res.get("effectivePeriod")
    candidates: list[object] = [res.get("effectiveDateTime")]
    if isinstance(period, dict):
        candidates += [period.get("end"), period.get("start")]
    candidates.append(res.get("authoredOn"))
    for value in candidates:
        if isinstance(value, str) and len(value) >= 10:
            try:
                return datetime.date.fromisoformat(value[:10]).isoformat()
            except ValueError:
                continue
    return None


def note_last_given(
    current: dict[str, dict[str, Any]],
    history: list[dict[str, str]],
    agent: str,
    res: dict[str, Any],
) -> None:
    """Keep the latest date an agent was given on its current entry, or on its history entries."""
    when = resource_date(res) if agent in COURSE_AGENTS else None
    if when is None:
        return
    entries = (
        [current[agent]] if agent in current else [h for h in history if h.get("agent") == agent]
    )
    for entry in entries:
        if entry.get("last_given", "") < when:
            entry["last_given"] = when
    # A second course of the same outcome was added as a new entry before its date was noted:
    # now equal to the first, it is kept once (as the mapping keeps every entry).
    kept: list[dict[str, str]] = []
    for entry in history:
        if entry not in kept:
            kept.append(entry)
    history[:] = kept
