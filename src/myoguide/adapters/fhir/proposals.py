"""Draft MedicationRequests (proposals) for the doses an answer computed, as CDS cards offer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from myoguide.adapters.fhir.codes import RXNORM, UCUM
from myoguide.adapters.fhir.timing import dose_repeat
from myoguide.adapters.words import dose_words
from myoguide.domain.result import AgentOption


def proposed_medication_request(
    agent: AgentOption, patient_ref: str | None, recommendation_id: str
) -> dict[str, Any]:
    """Return a draft MedicationRequest (a proposal) for an agent's computed dose."""
    dose = agent.dose
    assert dose is not None
    concept: dict[str, Any] = {"text": agent.display}
    if agent.rxnorm:
        concept["coding"] = [{"system": RXNORM, "code": agent.rxnorm, "display": agent.display}]
    quantity = {"unit": dose.unit, "system": UCUM, "code": dose.unit}
    repeat = dose_repeat(dose)
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
        "note": [
            {"text": f"Suggested by myoguide ({recommendation_id}); confirm before ordering."}
        ],
    }
    if patient_ref:
        resource["subject"] = {"reference": patient_ref}
    return resource


def _num(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
