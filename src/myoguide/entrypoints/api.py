"""The Python API's entry point behind `myoguide.recommend`."""

from __future__ import annotations

from myoguide.bootstrap import default_service
from myoguide.domain.result import RecommendationSet


def recommend(state: object) -> RecommendationSet:
    """Validate a patient state and return its RecommendationSet (raises InputError if unusable)."""
    return default_service().recommend(state)
