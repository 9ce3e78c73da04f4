"""Stopping reasons: the outcome (intolerance, lack of effect, unknown) a finished course gives."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from myoguide.adapters.fhir.agents import concept_names
from myoguide.adapters.fhir.codes import (
    ADMINISTRATIVE_WORDS,
    INADEQUATE_WORDS,
    INTOLERANCE_CODES,
    INTOLERANCE_WORDS,
    MEDREQ_STATUS_REASON,
)
from myoguide.adapters.fhir.primitives import coding_codes


def _any_of(words: tuple[str, ...]) -> re.Pattern[str]:
    """Return a pattern found in a text exactly when one of the words is a part of it."""
    # One search instead of a containment test per word (issue 24).
    return re.compile("|".join(re.escape(word) for word in words))


_ADMINISTRATIVE = _any_of(ADMINISTRATIVE_WORDS)
_INADEQUATE = _any_of(INADEQUATE_WORDS)
_INTOLERANCE = _any_of(INTOLERANCE_WORDS)


class StopOutcome(NamedTuple):
    """The outcome a stopping reason gives, and why it is unknown when it is (else empty)."""

    outcome: str
    problem: str
    note: str = ""


def stop_outcome(res: dict[str, Any]) -> StopOutcome:
    """Return the outcome a stopping reason gives, and why it is unknown when it is.

    Only why a drug was stopped counts; why it was started (the indication) never does.
    """
    concepts: list[dict[str, Any]] = []
    for name in ("statusReason", "statusReasonCodeableConcept"):
        value = res.get(name)
        if isinstance(value, dict):
            concepts.append(value)
        elif isinstance(value, list):
            concepts.extend(v for v in value if isinstance(v, dict))
    if not concepts:
        return StopOutcome("unknown", "no reason for stopping is recorded")
    codes = [c for concept in concepts for c in coding_codes(concept, MEDREQ_STATUS_REASON)]
    if not INTOLERANCE_CODES.isdisjoint(codes):
        return StopOutcome(
            "intolerance", "", "stopped for a suspected allergy or intolerance (coded reason)"
        )
    blob = " | ".join(name.lower() for concept in concepts for name in concept_names(concept))
    if codes or _ADMINISTRATIVE.search(blob) is not None:
        return StopOutcome(
            "unknown",
            "the reason it was stopped is practical (not about how it worked or was tolerated)",
        )
    inadequate = _INADEQUATE.search(blob) is not None
    intolerance = _INTOLERANCE.search(blob) is not None
    if inadequate and intolerance:
        return StopOutcome(
            "unknown", "the stopping reason names both lack of effect and intolerance"
        )
    if inadequate:
        return StopOutcome(
            "inadequate_response", "", "stopped for lack of effect, as the stopping reason words it"
        )
    if intolerance:
        return StopOutcome(
            "intolerance", "", "stopped for intolerance, as the stopping reason words it"
        )
    return StopOutcome(
        "unknown", "the stopping reason names neither lack of effect nor intolerance"
    )
