"""Map a FHIR R4 Bundle to the contract's patient state, collecting data problems as warnings.

The mapping is written down in docs/fhir-mapping.md. It is pure (no I/O, no clock) and tolerant:
any JSON shape gives a MappingResult, never an exception. Warning messages never echo free text
from the Bundle (names, identifiers or notes could hide there); only codes made of digits are shown.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from myoguide.adapters.fhir.readers import BundleReader
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.model import Knowledge
from myoguide.knowledge.terminology import Terminology, load_packaged_terminology


@cache
def packaged_knowledge() -> Knowledge:
    """Return the packaged guideline, read once, for callers that pass no knowledge."""
    return load_packaged()


def reading_terminology(
    terminology: Terminology | None, knowledge: Knowledge | None
) -> Terminology:
    """Return the terminology a chart is read with, holding the guideline's reading facts."""
    term = terminology if terminology is not None else load_packaged_terminology()
    kb = knowledge if knowledge is not None else packaged_knowledge()
    # The same pair comes with every chart a service reads: copy once (ADR 0026).
    key = (id(term), id(kb))
    held = _READING.get(key)
    if held is not None and held[0] is term and held[1] is kb:
        return held[2]
    if len(_READING) >= 8:
        _READING.clear()
    reading = term.with_guideline(kb)
    _READING[key] = (term, kb, reading)
    return reading


# Reading terminologies by (terminology, knowledge); the pair is held so its ids stay theirs.
_READING: dict[tuple[int, int], tuple[Terminology, Knowledge, Terminology]] = {}


@dataclass(frozen=True, slots=True)
class FhirWarning:
    """A data-quality problem met while mapping, and the resource it concerns."""

    code: str
    message: str
    resource: str | None


@dataclass(frozen=True, slots=True)
class MappingResult:
    """The patient state derived from a Bundle, with the problems met on the way."""

    state: dict[str, Any]
    warnings: tuple[FhirWarning, ...]


def bundle_to_state(
    bundle: Mapping[str, Any],
    *,
    evaluation_date: datetime.date,
    rxnorm_to_agent: Mapping[str, str] | None = None,
    terminology: Terminology | None = None,
    knowledge: Knowledge | None = None,
) -> MappingResult:
    """Map a parsed FHIR R4 Bundle to a contract patient state, with warnings for data problems."""
    # rxnorm_to_agent (the caller's ingredient codes) is consulted before the terminology, which
    # is the packaged terminology.yaml unless a caller passes its own. Each agent's dose period
    # and the flare boundary come from `knowledge` (the packaged guideline when none is given).
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        return MappingResult(
            {"current_medications": []},
            (
                FhirWarning(
                    "not_a_bundle",
                    "the input is not a FHIR record bundle; nothing was read",
                    None,
                ),
            ),
        )
    if isinstance(evaluation_date, datetime.datetime):
        # A datetime is a date subclass but cannot be compared with a plain date.
        evaluation_date = evaluation_date.date()
    warnings: list[FhirWarning] = []

    def warn(code: str, message: str, resource: str | None) -> None:
        """Record one warning."""
        warnings.append(FhirWarning(code, message, resource))

    term = reading_terminology(terminology, knowledge)
    reader = BundleReader(evaluation_date, rxnorm_to_agent or {}, term, warn)
    entries = bundle.get("entry")
    if isinstance(entries, list):
        reader.read(entries)
    elif entries is None:
        warn("bundle_empty", "the record is empty", "Bundle")
    else:
        warn(
            "bundle_entries_invalid",
            "the record's contents are not readable; nothing was read",
            "Bundle",
        )
    state = reader.finish()
    return MappingResult(state, tuple(warnings))
