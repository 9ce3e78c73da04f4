"""The Python API behind `myoguide.recommend`, and the input rules the command shares with it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypeGuard

from myoguide.bootstrap import default_service
from myoguide.domain.result import RecommendationSet
from myoguide.errors import InputError
from myoguide.service.assess import Service

JsonBytes = bytes | bytearray | memoryview


def parse_json(data: JsonBytes) -> object:
    """Parse JSON bytes; raises InputError for text that is not JSON."""
    from myoguide.adapters.jsonio import read_document

    try:
        # A bytearray or memoryview is copied to bytes once.
        return read_document(data if isinstance(data, bytes) else bytes(data))
    except ValueError as exc:
        raise InputError("(input)", f"not valid JSON: {exc}") from None


def is_bundle(raw: object) -> TypeGuard[Mapping[str, Any]]:
    """Tell whether parsed input is a FHIR Bundle (resourceType "Bundle") rather than a state."""
    return isinstance(raw, Mapping) and raw.get("resourceType") == "Bundle"


def answer(
    service: Service, raw: object, evaluation_date: dt.date | None = None
) -> RecommendationSet:
    """Answer a parsed patient state, or a FHIR Bundle at the date (default today).

    A Bundle's mapping warnings join its answer; the date is not used for a patient state,
    which states the age itself.
    """
    if is_bundle(raw):
        return service.assess_bundle(raw, evaluation_date)
    return service.recommend(raw)


def recommend(x: object, *, evaluation_date: dt.date | None = None) -> RecommendationSet:
    """Answer a patient state or a FHIR R4 Bundle, a dict or JSON bytes (InputError if unusable)."""
    # A parsed chart has no reference cycles: collecting over it is wasted work (ADR 0026). It
    # is freed when `_recommend` returns, before collection resumes. Imported here: the command
    # (which shares this module) runs with collection off instead.
    from myoguide.adapters.gcpause import gc_paused

    with gc_paused():
        return _recommend(x, evaluation_date)


def _recommend(x: object, evaluation_date: dt.date | None) -> RecommendationSet:
    """Parse JSON bytes if given, then answer."""
    raw = parse_json(x) if isinstance(x, JsonBytes) else x
    return answer(default_service(), raw, evaluation_date)
