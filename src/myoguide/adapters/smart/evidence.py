"""The chart's evidence for each question the chart leaves open, as hand-off entries.

Beside "controlled?" and "flare?" the page shows each DM/PM Condition's status and dates;
beside "how did the disease answer drug X?" each stopped, completed or cancelled order or
statement of X with its stated reason, and each allergy or intolerance record of X. Which
Condition is DM/PM and which drug a resource names is decided by the same FHIR reader as the
chart itself (one resource read at a time), so the evidence never disagrees with the form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

# Codes of the hand-off entries the questions page reads (adapters/web/chart_questions.py).
DISEASE: Final = "evidence.disease"
AGENT: Final = "evidence.agent."  # + the agent id
ALLERGY: Final = "evidence.allergy"  # a record naming no guideline drug
ASKED: Final = "evidence.launch"  # marks a hand-off made by a SMART launch

_MEDS: Final = ("MedicationRequest", "MedicationStatement", "MedicationAdministration")
_ENDED: Final = frozenset({"stopped", "completed", "cancelled", "on-hold", "not-taken"})
_MAX_TEXT: Final = 200

MapOne = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def resources_of(answers: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Return the resources in FHIR answers (a Bundle's entries, or the resource itself)."""
    out: list[Mapping[str, Any]] = []
    for answer in answers:
        if answer.get("resourceType") == "Bundle":
            for entry in answer.get("entry") or []:
                res = entry.get("resource") if isinstance(entry, Mapping) else None
                if isinstance(res, Mapping):
                    out.append(res)
        else:
            out.append(answer)
    return out


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _concept(value: object) -> str | None:
    """Return a CodeableConcept's words: its text, else its first coding's display."""
    if isinstance(value, list):
        words = [w for w in (_concept(v) for v in value) if w]
        return "; ".join(words) or None
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("text"), str) and value["text"].strip():
        return _short(value["text"])
    for coding in value.get("coding") or []:
        if isinstance(coding, Mapping) and isinstance(coding.get("display"), str):
            return _short(coding["display"])
    return None


def _status(value: object) -> str | None:
    """Return a status CodeableConcept's code (clinicalStatus, verificationStatus)."""
    if isinstance(value, Mapping):
        for coding in value.get("coding") or []:
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                return str(coding["code"])
    return None


def _date(res: Mapping[str, Any], *names: str) -> str | None:
    """Return the first date among `names` (a period's end for a period), as written."""
    for name in names:
        value = res.get(name)
        if isinstance(value, Mapping):
            value = value.get("end") or value.get("start")
        if isinstance(value, str) and value:
            return value[:10]
    return None


def _parts(*pairs: tuple[str, str | None]) -> str:
    return ", ".join(f"{label} {value}" for label, value in pairs if value)


def _condition(res: Mapping[str, Any]) -> str:
    what = _concept(res.get("code")) or "Condition"
    facts = _parts(
        ("clinical status", _status(res.get("clinicalStatus"))),
        ("verification", _status(res.get("verificationStatus"))),
        ("onset", _date(res, "onsetDateTime", "onsetPeriod")),
        ("recorded", _date(res, "recordedDate")),
        ("abated", _date(res, "abatementDateTime", "abatementPeriod")),
    )
    return f"Problem list: {what}" + (f" ({facts})" if facts else " (no status or date)")


def _medication(res: Mapping[str, Any]) -> str:
    kind = {"MedicationRequest": "Order", "MedicationStatement": "Medication statement"}.get(
        str(res.get("resourceType")), "Administration"
    )
    when = _date(
        res, "effectivePeriod", "effectiveDateTime", "dateAsserted", "authoredOn", "recorded"
    )
    reason = _concept(res.get("statusReason")) or _concept(res.get("reasonCode"))
    said = f"stated reason: “{reason}”" if reason else "no reason stated"
    return f"{kind} {res.get('status')}" + (f" ({when})" if when else "") + f"; {said}"


def _allergy(res: Mapping[str, Any]) -> str:
    what = _concept(res.get("code")) or "a substance"
    reactions = [
        r.get("description") or _concept(r.get("manifestation"))
        for r in res.get("reaction") or []
        if isinstance(r, Mapping)
    ]
    facts = _parts(
        ("type", res.get("type") if isinstance(res.get("type"), str) else None),
        (
            "criticality",
            res.get("criticality") if isinstance(res.get("criticality"), str) else None,
        ),
        ("clinical status", _status(res.get("clinicalStatus"))),
        ("recorded", _date(res, "recordedDate", "onsetDateTime")),
        ("reaction", _short("; ".join(r for r in reactions if isinstance(r, str))) or None),
    )
    return f"Allergy or intolerance record: {what}" + (f" ({facts})" if facts else "")


def _agents(mapped: Mapping[str, Any]) -> list[str]:
    found = [m.get("agent") for m in mapped.get("current_medications") or []]
    found += [h.get("agent") for h in mapped.get("treatment_history") or []]
    return [a for a in found if isinstance(a, str)]


def evidence(resources: Sequence[Mapping[str, Any]], map_one: MapOne) -> list[tuple[str, str]]:
    """Return (code, words) entries: the chart's evidence for each open question."""
    out: list[tuple[str, str]] = [(ASKED, "read through a SMART launch")]
    for res in resources:
        kind = res.get("resourceType")
        if kind == "Condition" and "diagnosis" in map_one(res):
            out.append((DISEASE, _condition(res)))
        elif kind in _MEDS and res.get("status") in _ENDED:
            # Read as if active: the reader then names the drug whatever the status.
            for agent in _agents(map_one({**res, "status": "active"})):
                out.append((AGENT + agent, _medication(res)))
        elif kind == "AllergyIntolerance":
            agents = _agents(map_one(res))
            for agent in agents:
                out.append((AGENT + agent, _allergy(res)))
            if not agents:
                out.append((ALLERGY, _allergy(res)))
    return list(dict.fromkeys(out))
