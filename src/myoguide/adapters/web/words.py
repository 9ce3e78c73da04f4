"""How a stored record reads on the page: course rows, decisions, the facts entered."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from markupsafe import Markup, escape

from myoguide.adapters.text import COURSE_WORDS
from myoguide.adapters.web.timeline import VisitPoint
from myoguide.adapters.words import rec_heading as rec_heading  # the pages take it from here
from myoguide.adapters.words import unit_words
from myoguide.domain.state import dec
from myoguide.domain.units import fmt
from myoguide.service.ports import PatientCourse

# Why another option or none was chosen, in the style of CDS Hooks override reasons.
REASON_CHOICES = (
    ("patient_preference", "Patient preference"),
    ("contraindication", "Contraindication"),
    ("cost_or_access", "Cost or access"),
    ("already_tried", "Already tried"),
    ("clinical_judgment", "Clinical judgment"),
    ("other", "Other"),
)
DECISION_LABELS = {"decision": "Decision", "chosen": "Option chosen", "reason_code": "Reason"}


# Engine warnings that leave the course's own words too sure: control reached, flare not known.
_FLARE_UNKNOWN = frozenset({"flare_status_unknown", "status_unknown"})


def headline(course: str, warning_codes: Iterable[str]) -> str:
    """Return the answer's headline: what is known of the course, never more."""
    if course == "controlled" and _FLARE_UNKNOWN & set(warning_codes):
        return "Control was reached; whether the disease is flaring now is not known"
    return COURSE_WORDS.get(course, course)


_URL = re.compile(r"\b(?:https?|urn):[^\s)\]]+")
_IDENTIFIER = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def plain_message(message: str, labels: Mapping[str, str]) -> str:
    """Return a message with no raw URL or field name left in it, for a banner on a page."""
    text = _URL.sub("a coded entry", message)
    return _IDENTIFIER.sub(
        lambda m: labels.get(m.group(0), m.group(0).replace("_", " ")).lower(), text
    )


def linked(text: str) -> Markup:
    """Return text with each web address in it as a link named by its host, not shown raw."""
    out, last = [], 0
    for m in re.finditer(r"\bhttps?://([^/\s]+)[^\s]*?(?=[.,;)]?(?:\s|$))", text):
        host = m.group(1).removeprefix("www.")
        out += [
            escape(text[last : m.start()]),
            Markup('<a href="{}" rel="noopener">{}</a>').format(m.group(0), host),
        ]
        last = m.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def _doses(state: Mapping[str, Any]) -> dict[str, str | None]:
    """Return each current drug with its dose as written (None when no dose was given)."""
    out: dict[str, str | None] = {}
    for med in state.get("current_medications") or []:
        dose = med.get("dose")
        written = None
        if isinstance(dose, Mapping) and isinstance(dose.get("value"), int | float):
            written = f"{fmt(dec(dose['value']))} {unit_words(dose.get('unit'))}"
        out[str(med.get("agent"))] = written
    return out


def changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any], labels: Mapping[str, str]
) -> list[str]:
    """Return what changed between two visits: drugs started, stopped, doses, flare, control."""
    if before is None:
        return []
    old, new = _doses(before), _doses(after)
    out: list[str] = []

    def name(agent: str) -> str:
        return labels.get(agent, agent.replace("_", " "))

    for agent, dose in new.items():
        if agent not in old:
            out.append(f"started {name(agent)}" + (f" {dose}" if dose else ""))
    out += [f"stopped {name(agent)}" for agent in old if agent not in new]
    for agent, dose in new.items():
        if agent in old and dose != old[agent]:
            out.append(f"{name(agent)} {old[agent] or 'dose not given'} → {dose or 'not given'}")
    for key, what in (("flare", "flare"), ("disease_control_achieved", "control ever reached")):
        if before.get(key) != after.get(key):
            was, now = fact_words(before.get(key)), fact_words(after.get(key))
            out.append(f"{what}: {was} → {now}")
    return out


def _agents_taken(state: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    names = [
        labels.get(str(m.get("agent")), str(m.get("agent")))
        for m in state.get("current_medications") or []
        if m.get("agent") != "prednisone"
    ]
    return ", ".join(names) or "none"


def course_rows(
    record: PatientCourse, labels: Mapping[str, str]
) -> tuple[list[VisitPoint], list[dict[str, Any]]]:
    """Return the timeline points and table rows of a patient's record."""
    points: list[VisitPoint] = []
    rows: list[dict[str, Any]] = []
    before: Mapping[str, Any] | None = None
    for entry in record.visits:
        visit = entry.visit
        last = entry.answers[-1] if entry.answers else None
        answer = last.answer if last else None
        top = answer.top_recommendation if answer else None
        latest = last.decisions[-1] if last and last.decisions else None
        decision = latest.decision if latest else None
        label = _option_label(answer.result, top) if answer and top else None
        # The chart shows what was chosen: another option when the clinician chose one.
        chosen = label
        if latest is not None and answer is not None:
            if latest.decision == "chose_other" and latest.chosen_recommendation:
                chosen = _option_label(answer.result, latest.chosen_recommendation)
            elif latest.decision == "declined":
                chosen = "none of the options"
        points.append(VisitPoint(visit.visit_date, visit.state, chosen, decision))
        rows.append(
            {
                "visit_id": visit.id,
                "date": visit.visit_date.isoformat(),
                "prednisone": _prednisone(visit.state),
                "flare": fact_words(visit.state.get("flare")),
                "changes": changes(before, visit.state, labels),
                "agents": _agents_taken(visit.state, labels),
                "course": headline(answer.course, _warning_codes(answer.result)) if answer else "—",
                "top": label,
                "chosen": chosen if latest is not None else None,
                "decision": decision_words(latest, answer.result if answer else {}),
            }
        )
        before = visit.state
    return points, rows


def _warning_codes(result: Mapping[str, Any]) -> list[str]:
    return [str(w.get("code")) for w in result.get("warnings") or [] if isinstance(w, Mapping)]


def decision_words(latest: Any, result: Mapping[str, Any]) -> str | None:
    if latest is None:
        return None
    words = {"accepted": "accepted", "chose_other": "chose", "declined": "declined all"}
    text = words.get(latest.decision, latest.decision)
    if latest.chosen_recommendation and latest.decision == "chose_other":
        text += " " + _option_label(result, latest.chosen_recommendation)
    code = latest.reason_code
    why = [dict(REASON_CHOICES).get(code, code).lower()] if code else []
    if latest.reason:
        why.append(latest.reason)
    if why:
        text += f" ({': '.join(why)})"
    return str(text)


def _option_label(result: Mapping[str, Any], rec_id: str) -> str:
    for rec in result.get("recommendations", []):
        if rec.get("id") == rec_id:
            names = [a.get("display", a.get("agent")) for a in rec.get("agents", [])]
            return ", ".join(n for n in names if n) or rec_id.replace("_", " ")
    return rec_id.replace("_", " ")


def _prednisone(state: Mapping[str, Any]) -> str:
    for med in state.get("current_medications") or []:
        if med.get("agent") == "prednisone":
            dose = med.get("dose")
            if isinstance(dose, Mapping) and isinstance(dose.get("value"), int | float):
                return f"{fmt(dec(dose['value']))} {dose.get('unit')}"
            return "dose not given"
    return "off"


def fact_words(value: object) -> str:
    """Return a trace fact as a person reads it: yes/no, plain numbers, comma-joined lists."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return fmt(dec(value))
    if isinstance(value, list):
        return ", ".join(fact_words(v) for v in value) or "none"
    return str(value)


def state_lines(state: Mapping[str, Any]) -> list[str]:
    """Return what was entered, in short lines, for the answer and its printed summary."""
    lines = []
    dx = str(state.get("diagnosis", "")).replace("_", " ")
    lines.append(f"{fact_words(state.get('age_years'))} years, {dx}")
    for key in ("weight", "height"):
        item = state.get(key)
        if isinstance(item, Mapping):
            lines.append(f"{key} {fact_words(item.get('value'))} {item.get('unit')}")
    lines.append(
        f"control ever reached: {fact_words(state.get('disease_control_achieved'))}; "
        f"flare now: {fact_words(state.get('flare'))}"
        + (f"; severity {state['severity']}" if state.get("severity") else "")
    )
    meds = [
        f"{m.get('agent', '').replace('_', ' ')}"
        + (
            f" {fact_words(m['dose'].get('value'))} {unit_words(m['dose'].get('unit'))}"
            if isinstance(m.get("dose"), Mapping)
            else ""
        )
        + (f" (last given {m['last_given']})" if m.get("last_given") else "")
        for m in state.get("current_medications") or []
    ]
    lines.append("current: " + (", ".join(meds) or "none"))
    history = [
        f"{h.get('agent', '').replace('_', ' ')} ({str(h.get('outcome', '')).replace('_', ' ')})"
        for h in state.get("treatment_history") or []
    ]
    lines.append("history: " + (", ".join(history) or "none"))
    ild = state.get("ild")
    if isinstance(ild, Mapping) and ild.get("present"):
        lines.append("ILD" + (", refractory" if ild.get("refractory") else ""))
    if state.get("skin_predominant"):
        lines.append("rash is the refractory problem")
    lines.append(
        f"alternative diagnoses excluded: {fact_words(state.get('alternative_diagnoses_excluded'))}"
    )
    return lines
