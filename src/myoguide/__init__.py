"""myoguide: decision support for recurrent and resistant DM/PM in adults.

The Python API: `myoguide.recommend(x)` takes what the command takes, a patient state (a dict
shaped as in the contract, or a PatientState) or a FHIR R4 Bundle, as a dict or as JSON bytes,
and returns a RecommendationSet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    import datetime as dt

    from myoguide.domain.result import RecommendationSet


def recommend(x: object, *, evaluation_date: dt.date | None = None) -> RecommendationSet:
    """Answer a patient state or a FHIR R4 Bundle (dict or JSON bytes); InputError if unusable.

    A Bundle is read at `evaluation_date` (default today); a patient state states the age.
    """
    # Imported on first call so `import myoguide` stays cheap and importing any submodule does
    # not load the whole application.
    from myoguide.entrypoints.api import recommend as _recommend

    return _recommend(x, evaluation_date=evaluation_date)


__all__ = ["__version__", "recommend"]
