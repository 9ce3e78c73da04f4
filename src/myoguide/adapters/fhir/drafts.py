"""Reading a draft MedicationRequest (an order hook's draftOrders) as the order it would be."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from myoguide.adapters.fhir.mapping import reading_terminology
from myoguide.adapters.fhir.medications import MedicationReader, read_dose
from myoguide.knowledge.model import Knowledge
from myoguide.knowledge.terminology import Terminology


def _unheard(code: str, message: str, resource: str | None) -> None:
    """Drop a data warning: a draft is judged, not a chart read (its problems are no card)."""


def read_draft_order(
    resource: Mapping[str, Any],
    *,
    rxnorm_to_agent: Mapping[str, str],
    evaluation_date: datetime.date,
    knowledge: Knowledge | None = None,
    terminology: Terminology | None = None,
) -> dict[str, Any] | None:
    """Return the agent and dose ({agent, dose?}) a draft order names, or None if no one agent.

    The draft is read with the chart's own medication reading (its agent by code or name, its
    dose by the dosage rules at the evaluation date) but not sorted by status, intent or dates:
    a draft is what is about to be ordered, neither current nor past.
    """
    if resource.get("doNotPerform") is True:
        return None
    term = reading_terminology(terminology, knowledge)
    res = dict(resource)
    # Medications contained in the draft are found through it; no Bundle holds any other.
    reader = MedicationReader(rxnorm_to_agent, term, {}, _unheard, evaluation_date)
    resolved = reader.agent(res, 0, "medicationCodeableConcept")
    if resolved is None:
        return None
    reading = read_dose(res.get("dosageInstruction"), resolved, term, evaluation_date)
    if reading.dose is None:
        return {"agent": resolved.agent}
    return {"agent": resolved.agent, "dose": reading.dose}
