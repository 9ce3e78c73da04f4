"""Draft MedicationRequests (proposals) for the doses an answer computed, as CDS cards offer.

A draft is an order an EHR can sign, so its structured dose is only what the knowledge states
for one administration (docs/adr/0025-drafts-an-ehr-can-sign.md): a single figure per dose, or a
daily (weekly) total divided by the stated number of doses. A range, a limit or a course total
whose split into infusions the source does not give has no structured dose: the words carry it,
and the prescriber fills the dose in before signing. Every draft carries the agent's route.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from myoguide.adapters.fhir.codes import RXNORM, SNOMED, UCUM
from myoguide.adapters.fhir.timing import dose_repeat, fhir_number
from myoguide.adapters.words import dose_words
from myoguide.domain.result import AgentOption, Dose
from myoguide.knowledge.model import Knowledge, Route

# A dose period and the Timing unit that means "the same period" (a total split within it).
_SAME_PERIOD = {"day": "d", "week": "wk"}


def agent_route(knowledge: Knowledge, agent: str) -> Route | None:
    """Return the route the knowledge gives a drafted order of an agent, or None."""
    rx = knowledge.prescribing.get(agent)
    return knowledge.routes.get(rx.route) if rx is not None and rx.route else None


def route_concept(route: Route) -> dict[str, Any]:
    """Return a route as the CodeableConcept of FHIR Dosage.route."""
    return {
        "coding": [{"system": SNOMED, "code": route.code, "display": route.display}],
        "text": route.display,
    }


def proposed_medication_request(
    agent: AgentOption,
    patient_ref: str | None,
    recommendation_id: str,
    route: Route | None = None,
) -> dict[str, Any]:
    """Return a draft MedicationRequest (a proposal) for an agent's computed dose."""
    dose = agent.dose
    assert dose is not None
    concept: dict[str, Any] = {"text": agent.display}
    if agent.rxnorm:
        concept["coding"] = [{"system": RXNORM, "code": agent.rxnorm, "display": agent.display}]
    dosage: dict[str, Any] = {"text": f"{dose_words(dose)} ({dose.basis})"}
    per_admin, left_open = _one_administration(dose)
    if dose.period != "course":
        # A course total's schedule says when courses come, not how many infusions make one.
        dosage["timing"] = {"repeat": dose_repeat(dose)}
    if route is not None:
        dosage["route"] = route_concept(route)
    if per_admin is not None:
        dosage["doseAndRate"] = [{"doseQuantity": _quantity(per_admin, dose.unit)}]
    else:
        dosage["text"] += ". " + left_open
        if dose.practical is not None and dose.practical.kind != "none":
            dosage["text"] += f" {dose.practical.text}."
    ceiling = _ceiling(dose)
    if ceiling is not None:
        dosage["maxDosePerPeriod"] = ceiling
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": concept,
        "dosageInstruction": [dosage],
        "note": [
            {"text": f"Suggested by myoguide ({recommendation_id}); confirm before ordering."}
        ],
    }
    if patient_ref:
        resource["subject"] = {"reference": patient_ref}
    return resource


def _one_administration(dose: Dose) -> tuple[Decimal | None, str]:
    """Return the amount of one administration, or None and the words saying why it is open."""
    if dose.low is None:
        return None, "No dose is filled in: the review gives only an upper limit; choose the dose."
    if dose.high is None:
        return None, (
            "No dose is filled in: the review gives only a lowest dose and no upper figure; "
            "choose the dose."
        )
    if dose.low != dose.high:
        return None, (
            "No dose is filled in: the review gives a range and no rule for choosing within it; "
            "choose the dose within the range."
        )
    if dose.period == "course":
        return None, (
            "No dose per infusion is filled in: the review gives this amount for a whole course "
            "and does not say over how many days or infusions a course is given; set the amount "
            "and the days of each infusion."
        )
    t = dose.timing
    if t is None and dose.period in _SAME_PERIOD:
        # A daily (weekly) total with no schedule in the knowledge: how many doses it is given in
        # is not in the review (tacrolimus for ILD says "divided", no number), so none is drafted.
        return None, (
            f"No dose per administration is filled in: the review gives a total per "
            f"{dose.period} and does not say in how many doses it is given; set the schedule."
        )
    same = _SAME_PERIOD.get(dose.period)
    if t is not None and same is not None and t.period_unit == same and t.period in (None, 1):
        # A daily (weekly) total given in n doses: one administration is the total over n.
        return dose.low / (t.frequency or 1), ""
    # A figure per dose, or a daily figure given on the days the schedule names (one a day).
    return dose.low, ""


def _ceiling(dose: Dose) -> dict[str, Any] | None:
    """Return the stated upper limit of an 'up to' dose as FHIR maxDosePerPeriod, if one fits."""
    unit = _SAME_PERIOD.get(dose.period)
    if dose.qualifier != "up_to" or dose.high is None or unit is None:
        return None
    return {
        "numerator": _quantity(dose.high, dose.unit),
        "denominator": {"value": 1, "unit": unit, "system": UCUM, "code": unit},
    }


def _quantity(value: Decimal, unit: str) -> dict[str, Any]:
    return {"value": fhir_number(value), "unit": unit, "system": UCUM, "code": unit}
