"""myoguide: decision support for recurrent and resistant DM/PM in adults.

The Python API: `myoguide.recommend(state)` takes a patient state (a dict shaped as in the
contract, or a PatientState) and returns a RecommendationSet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from myoguide.domain.result import RecommendationSet


def recommend(state: object) -> RecommendationSet:
    """Validate a patient state and return its RecommendationSet (raises InputError if unusable)."""
    # Imported on first call so `import myoguide` stays cheap and importing any submodule does
    # not load the whole application.
    from myoguide.entrypoints.api import recommend as _recommend

    return _recommend(state)


__all__ = ["__version__", "recommend"]
