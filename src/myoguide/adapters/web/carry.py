"""Visits carried forward: a new visit's form from an earlier one, and what changed since."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from myoguide.adapters.web.forms import FormData, form_from_state
from myoguide.adapters.web.words import changes, fact_words
from myoguide.service.ports import VisitEntry

# A chosen option's actions that put a drug into the next visit's medications, to confirm.
_STARTS = ("start", "restart", "switch_to")


def carry_forward(
    entry: VisitEntry,
    visits: Sequence[VisitEntry],
    labels: Mapping[str, str],
    choices: Mapping[str, Any],
) -> tuple[FormData, list[str]]:
    """Return the form of a new visit started from `entry`, and what the clinician should know.

    Flare status is not carried: it is today's fact. A drug the clinician decided to start at
    that visit is added to the medications, without a dose, for the clinician to confirm.
    """
    visit = entry.visit
    form = form_from_state(visit.state)
    day = visit.visit_date.isoformat()
    notes = [f"Started from the visit of {day}; change what is different today."]
    later = [e.visit.visit_date for e in visits if _after(e, entry)]
    if later:
        latest = max(later).isoformat()
        notes.append(
            f"This copies an earlier visit: {len(later)} later "
            f"{'visits exist' if len(later) > 1 else 'visit exists'}, the latest on {latest}. "
            "Drugs started or stopped since are not in this form."
        )
    was = visit.state.get("flare")
    form.values["flare"] = "unknown"
    notes.append(
        f"Flare now is not carried over (it was “{fact_words(was)}” on {day}): enter today's."
    )
    added = _decided_starts(entry, visit.state)
    if added:
        periods = choices.get("agent_periods", {})
        row = form.med_count - 1  # the first empty row
        for agent in added:
            form.values[f"current_medications[{row}].agent"] = agent
            if periods.get(agent):
                form.values[f"current_medications[{row}].dose.unit"] = f"mg/{periods[agent]}"
            row += 1
        form.med_count = row + 1
        names = ", ".join(labels.get(a, a) for a in added)
        notes.append(
            f"Decided at the visit of {day}: start {names}. Added to the medications below "
            "without a dose: confirm it is being taken and enter the dose, or remove it."
        )
    return form, notes


def _after(other: VisitEntry, entry: VisitEntry) -> bool:
    a, b = other.visit, entry.visit
    return (a.visit_date, a.id) > (b.visit_date, b.id)


def _decided_starts(entry: VisitEntry, state: Mapping[str, Any]) -> list[str]:
    """Return the drugs the last decision at a visit chose to start, not yet in its state."""
    taking = {str(m.get("agent")) for m in state.get("current_medications") or []}
    for shown in reversed(entry.answers):
        if not shown.decisions:
            continue
        decided = shown.decisions[-1]
        if decided.decision == "declined" or not decided.chosen_recommendation:
            return []
        for rec in shown.answer.result.get("recommendations") or []:
            if rec.get("id") != decided.chosen_recommendation:
                continue
            return [
                str(a.get("agent"))
                for a in rec.get("agents") or []
                if a.get("action") in _STARTS and str(a.get("agent")) not in taking
            ]
        return []
    return []


def changes_since(
    visits: Sequence[VisitEntry],
    state: Mapping[str, Any],
    day: dt.date,
    labels: Mapping[str, str],
    skip: int | None = None,
) -> tuple[str | None, list[str]]:
    """Return the visit before `day` (its date) and what changed from it to `state`."""
    before = [e for e in visits if e.visit.id != skip and e.visit.visit_date <= day]
    if not before:
        return None, []
    prev = before[-1].visit
    return prev.visit_date.isoformat(), changes(prev.state, state, labels)
