"""CDS Hooks 2.0 cards from a RecommendationSet, and the judging of draft medication orders.

Pure functions: values in, JSON-ready dicts out. The HTTP adapter wires them to requests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from myoguide.adapters.text import dose_words, source_words
from myoguide.domain.orders import DraftOrder as DraftOrder  # re-exported for the doors
from myoguide.domain.orders import judge_orders
from myoguide.domain.result import AgentOption, Dose, Recommendation, RecommendationSet
from myoguide.domain.state import PatientState
from myoguide.knowledge.model import Knowledge

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CARD_SYSTEM = "https://myoguide.example/fhir/CodeSystem/recommendation"
OVERRIDE_SYSTEM = "https://myoguide.example/fhir/CodeSystem/override-reason"
OVERRIDE_REASONS = (
    ("already-tried", "Already tried or not tolerated"),
    ("contraindicated", "Contraindicated for this patient"),
    ("patient-preference", "Patient preference"),
    ("clinical-judgment", "Other clinical judgment"),
)
STANCE_WORDS = {
    "recommended": "recommended",
    "alternative": "alternative",
    "reserved": "reserved",
    "not_suggested": "not suggested",
}


def _card_uuid(hook_instance: str, key: str) -> str:
    # Stable per request and card, so feedback can be matched to what was shown.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"myoguide:{hook_instance}:{key}"))


def _source(result: RecommendationSet, topic: str | None = None) -> dict[str, Any]:
    src: dict[str, Any] = {
        "label": f"myoguide (knowledge {result.knowledge_version}): recurrent and resistant "
        "DM/PM in adults",
    }
    if topic:
        src["topic"] = {"system": CARD_SYSTEM, "code": topic}
    return src


def _override_reasons() -> list[dict[str, str]]:
    return [{"system": OVERRIDE_SYSTEM, "code": c, "display": d} for c, d in OVERRIDE_REASONS]


def _short(text: str, limit: int = 139) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _agent_lines(agent: AgentOption) -> list[str]:
    lines = [f"- **{agent.display}**"]
    for reg in agent.regimens:
        if reg.dose is not None:
            lines.append(
                f"  - {dose_words(reg.dose)}: {reg.description} (arithmetic: {reg.dose.basis})"
            )
        else:
            lines.append(f"  - {reg.description}: not computed ({reg.omitted_reason})")
    if agent.maximum:
        lines.append(f"  - stated maximum {agent.maximum}")
    return lines


def _detail(rec: Recommendation, result: RecommendationSet, knowledge: Knowledge) -> str:
    grade = (
        f"**Grade {rec.grade}**: {rec.grade_meaning}"
        if rec.grade
        else "**No grade** given by the source for this option."
    )
    parts = [rec.text, "", grade, ""]
    for agent in rec.agents:
        parts += _agent_lines(agent)
    if rec.cautions:
        parts += ["", "**Cautions**", *(f"- {c}" for c in rec.cautions)]
    refs = sorted({n for s in rec.sources for n in s.references})
    parts += ["", f"**Source**: {source_words(rec.sources)}"]
    parts += [f"{n}. {knowledge.references[n - 1].citation}" for n in refs]
    parts += ["", f"_{result.disclaimer}_"]
    return "\n".join(parts)


def _medication_request(
    agent: AgentOption, patient_ref: str | None, rec: Recommendation
) -> dict[str, Any]:
    dose = agent.dose
    assert dose is not None
    concept: dict[str, Any] = {"text": agent.display}
    if agent.rxnorm:
        concept["coding"] = [{"system": RXNORM, "code": agent.rxnorm, "display": agent.display}]
    quantity = {"unit": dose.unit, "system": UCUM, "code": dose.unit}
    repeat = _repeat(dose)
    # doseQuantity is one administration: a daily total given in n doses is divided by n.
    per_admin = 1
    if dose.period in ("day", "week") and repeat.get("period") == 1:
        per_admin = int(repeat.get("frequency", 1))

    def amount(value: Decimal) -> dict[str, Any]:
        return {"value": _num(value / per_admin), **quantity}

    dose_rate: dict[str, Any]
    if dose.low is not None and dose.low == dose.high:
        dose_rate = {"doseQuantity": amount(dose.low)}
    else:
        bounds: dict[str, Any] = {}
        if dose.low is not None:
            bounds["low"] = amount(dose.low)
        if dose.high is not None:
            bounds["high"] = amount(dose.high)
        dose_rate = {"doseRange": bounds}
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": concept,
        "dosageInstruction": [
            {
                "text": f"{dose_words(dose)} ({dose.basis})",
                "timing": {"repeat": repeat},
                "doseAndRate": [dose_rate],
            }
        ],
        "note": [{"text": f"Suggested by myoguide ({rec.id}); confirm before ordering."}],
    }
    if patient_ref:
        resource["subject"] = {"reference": patient_ref}
    return resource


_PERIOD_UNIT = {"day": "d", "week": "wk"}


def _repeat(dose: Dose) -> dict[str, Any]:
    """Return FHIR Timing.repeat for a dose: its own schedule, or once per its period."""
    t = dose.timing
    if t is None:
        return {"frequency": 1, "period": 1, "periodUnit": _PERIOD_UNIT.get(dose.period, "d")}
    repeat: dict[str, Any] = {}
    if t.frequency is not None:
        repeat["frequency"] = t.frequency
    if t.period is not None:
        repeat["period"] = _num(t.period)
    if t.period_unit is not None:
        repeat["periodUnit"] = t.period_unit
    if t.count is not None:
        repeat["count"] = t.count
    if t.count_max is not None:
        repeat["countMax"] = t.count_max
    return repeat


def _num(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def patient_view_cards(
    result: RecommendationSet,
    knowledge: Knowledge,
    state: PatientState,
    *,
    hook_instance: str,
    patient_id: str | None,
    extra_warnings: Sequence[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """Return the patient-view cards: warnings first, then one card per option, best first."""
    cards: list[dict[str, Any]] = []
    patient_ref = f"Patient/{patient_id}" if patient_id else None
    current = {m.agent for m in state.current_medications}
    for code, message in [*((w.code, w.message) for w in result.warnings), *extra_warnings]:
        indicator = "warning"
        cards.append(
            {
                "uuid": _card_uuid(hook_instance, f"warning:{code}"),
                "summary": _short(f"myoguide: {message}"),
                "detail": f"{message}\n\n_{result.disclaimer}_",
                "indicator": indicator,
                "source": _source(result, f"warning.{code}"),
            }
        )
    if not result.recommendations:
        course = "outside this guideline" if result.course == "out_of_scope" else result.course
        cards.append(
            {
                "uuid": _card_uuid(hook_instance, "no-recommendation"),
                "summary": _short(f"myoguide: no recommendation ({course})"),
                "detail": "No option is recommended for this patient; see the other cards for "
                f"why.\n\n_{result.disclaimer}_",
                "indicator": "info",
                "source": _source(result, "no-recommendation"),
            }
        )
        return cards
    for rec in result.recommendations:
        names = ", ".join(a.display for a in rec.agents) or "see detail"
        grade = f", grade {rec.grade}" if rec.grade else ""
        summary = f"Option {rec.rank} ({STANCE_WORDS[rec.stance]}{grade}): {names}"
        card: dict[str, Any] = {
            "uuid": _card_uuid(hook_instance, rec.id),
            "summary": _short(summary),
            "detail": _detail(rec, result, knowledge),
            "indicator": "info" if rec.stance in ("recommended", "alternative") else "warning",
            "source": _source(result, rec.id),
        }
        starts = [a for a in rec.agents if a.agent not in current]
        first_dose = starts[0].dose if starts else None
        if (
            len(rec.agents) == 1
            and len(starts) == 1
            and first_dose is not None
            and rec.stance != "not_suggested"
        ):
            agent = starts[0]
            card["suggestions"] = [
                {
                    "label": _short(f"Draft {agent.display} {dose_words(first_dose)}", 80),
                    "uuid": _card_uuid(hook_instance, f"{rec.id}:suggest"),
                    "isRecommended": rec.rank == 1,
                    "actions": [
                        {
                            "type": "create",
                            "description": f"Create a draft order for {agent.display}",
                            "resource": _medication_request(agent, patient_ref, rec),
                        }
                    ],
                }
            ]
            card["selectionBehavior"] = "at-most-one"
        card["overrideReasons"] = _override_reasons()
        cards.append(card)
    return cards


def order_cards(
    drafts: Iterable[DraftOrder],
    state: PatientState,
    knowledge: Knowledge,
    *,
    hook_instance: str,
    disclaimer: str,
) -> list[dict[str, Any]]:
    """Render the domain's judgement of draft orders as CDS Hooks cards."""
    version = knowledge.knowledge_version
    source = {"label": f"myoguide (knowledge {version}): recurrent and resistant DM/PM in adults"}
    return [
        {
            "uuid": _card_uuid(hook_instance, f.key),
            "summary": _short(f.summary),
            "detail": f"{f.detail} Source: {source_words(f.sources)}.\n\n_{disclaimer}_",
            "indicator": f.indicator,
            "source": {**source, "topic": {"system": CARD_SYSTEM, "code": f.key.split(":")[0]}},
            "overrideReasons": _override_reasons(),
        }
        for f in judge_orders(drafts, state, knowledge)
    ]


def discovery(prefetch: Mapping[str, str]) -> dict[str, Any]:
    """Return the CDS Hooks discovery document of the three services."""
    services = [
        {
            "hook": "patient-view",
            "id": "myoguide-patient-view",
            "title": "myoguide: recurrent and resistant DM/PM",
            "description": "Options for adults with recurrent or resistant dermatomyositis or "
            "polymyositis, ranked as in the source review, with this patient's doses.",
            "prefetch": dict(prefetch),
        },
        {
            "hook": "order-select",
            "id": "myoguide-order-select",
            "title": "myoguide: check a DM/PM medication order",
            "description": "Checks selected draft orders against the stated maxima, the order of "
            "the resistant ladder and the review's cautions.",
            "prefetch": dict(prefetch),
        },
        {
            "hook": "order-sign",
            "id": "myoguide-order-sign",
            "title": "myoguide: check DM/PM medication orders before signing",
            "description": "Checks draft orders against the stated maxima, the order of the "
            "resistant ladder and the review's cautions.",
            "prefetch": dict(prefetch),
        },
    ]
    return {"services": services}
