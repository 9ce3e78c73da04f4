"""FHIR primitives: dates, decimals, quantities and units, codings, extensions and labels."""

from __future__ import annotations

import calendar
import datetime
import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, NamedTuple

from myoguide.adapters.fhir.codes import STATED_EXTENSIONS, UCUM

_BIRTH_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2})(?:T[0-9:.+\-Z]*)?)?)?")
_PARTIAL_DATE = re.compile(r"([0-9]{4})(?:-([0-9]{2}))?")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
DIGITS = re.compile(r"[0-9]{1,18}")

# A private context so no caller's decimal settings can change a dose.
DECIMAL_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# FHIR times carry a zone; one without is read as UTC rather than dropped.
_NAIVE_EPOCH = datetime.datetime(1970, 1, 1)

# Records one warning: its code, its message and the resource it concerns.
Warn = Callable[[str, str, str | None], None]


class SortKey(NamedTuple):
    """Orders resources by a FHIR date/dateTime, undated first, then by entry position."""

    dated: bool
    seconds: float
    position: int


class DateSpan(NamedTuple):
    """The earliest and latest day a partial date can mean."""

    earliest: datetime.date
    latest: datetime.date


def birth_span(birth: object) -> DateSpan | None:
    """Return the earliest and latest day a FHIR birthDate (YYYY, YYYY-MM or full) can mean."""
    m = _BIRTH_DATE.fullmatch(birth) if isinstance(birth, str) else None
    if m is None:
        return None
    try:
        year = int(m[1])
        if m[3] is not None:
            day = datetime.date(year, int(m[2]), int(m[3]))
            return DateSpan(day, day)
        if m[2] is not None:
            month = int(m[2])
            last = calendar.monthrange(year, month)[1]
            return DateSpan(datetime.date(year, month, 1), datetime.date(year, month, last))
        return DateSpan(datetime.date(year, 1, 1), datetime.date(year, 12, 31))
    except ValueError:
        return None


def shown(name: str) -> str:
    """Return an agent or diagnosis id in a clinician's words (no internal underscores)."""
    return "IVIG" if name == "ivig" else name.replace("_", " ")


def entry_at(i: int) -> str:
    """Return the location of a Bundle entry."""
    return f"Bundle.entry[{i}]"


def resource_label(res: dict[str, Any], i: int) -> str:
    """Return 'Type/id' for a resource, or its type and entry position when the id is unusable."""
    rt = res.get("resourceType")
    kind = rt if isinstance(rt, str) and _RESOURCE_TYPE.fullmatch(rt) else "resource"
    rid = res.get("id")
    if isinstance(rid, str) and _FHIR_ID.fullmatch(rid):
        return f"{kind}/{rid}"
    return f"{kind} at {entry_at(i)}"


def stated_extensions(res: dict[str, Any]) -> dict[str, bool | None]:
    """Return the stating extensions a resource carries: url to its boolean, None if unusable.

    An extension whose value is not a boolean, or that is repeated with different values, is
    unusable. Other extensions are not looked at.
    """
    out: dict[str, bool | None] = {}
    extensions = res.get("extension")
    if isinstance(extensions, list):
        for ext in extensions:
            if not isinstance(ext, dict):
                continue
            url = ext.get("url")
            if not isinstance(url, str) or url not in STATED_EXTENSIONS:
                continue
            value = ext.get("valueBoolean")
            if not isinstance(value, bool) or out.get(url, value) != value:
                out[url] = None
            else:
                out[url] = value
    return out


def coding_codes(concept: object, system: str) -> list[str]:
    """Return the codes of a CodeableConcept's codings in one code system."""
    out: list[str] = []
    if isinstance(concept, dict):
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, dict) and coding.get("system") == system:
                    code = coding.get("code")
                    if isinstance(code, str):
                        out.append(code)
    return out


def status_code(concept: object, system: str) -> str | None:
    """Return the first code of a status CodeableConcept in its system (or with no system)."""
    if isinstance(concept, dict):
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, dict) and coding.get("system") in (system, None):
                    code = coding.get("code")
                    if isinstance(code, str):
                        return code
    return None


def effective_time(res: dict[str, Any]) -> object:
    """Return the time an Observation applies to: effective[x], else issued."""
    for name in ("effectiveDateTime", "effectiveInstant"):
        value = res.get(name)
        if value is not None:
            return value
    period = res.get("effectivePeriod")
    if isinstance(period, dict):
        value = period.get("end") or period.get("start")
        if value is not None:
            return value
    return res.get("issued")


def to_date(value: object) -> datetime.date | None:
    """Return the calendar day of a FHIR date or dateTime (a partial date gives None)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.date.fromisoformat(value[:10])
    except ValueError:
        return None


def period_dates(period: object) -> tuple[datetime.date | None, datetime.date | None]:
    """Return the first and last day of a FHIR Period (None where not stated)."""
    if not isinstance(period, dict):
        return None, None
    return to_date(period.get("start")), to_date(period.get("end"))


def sort_key(value: object, i: int) -> SortKey:
    """Return a key ordering resources by a FHIR date/dateTime, undated first, then by position."""
    seconds = _seconds(value)
    return SortKey(seconds is not None, seconds or 0.0, i)


def _seconds(value: object) -> float | None:
    """Return a FHIR date, dateTime or instant as seconds from the epoch (UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        if len(value) < 10:
            partial = _PARTIAL_DATE.fullmatch(value)
            if partial is None:
                return None
            moment = datetime.datetime(int(partial[1]), int(partial[2] or 1), 1)
        else:
            moment = datetime.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return (moment - _NAIVE_EPOCH).total_seconds()
        return (moment - _EPOCH).total_seconds()
    except (ValueError, OverflowError):
        return None


def to_decimal(value: object) -> Decimal | None:
    """Return a JSON number as an exact Decimal (floats by their shortest repr), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        return Decimal(repr(value))
    return None


def to_number(value: Decimal) -> int | float | None:
    """Return a Decimal as an int when integral, a float otherwise, or None when not finite."""
    if not value.is_finite():
        return None
    if value.adjusted() < 16 and value == value.to_integral_value():
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def ucum_code(quantity: dict[str, Any]) -> str | None:
    """Return a Quantity's UCUM code, or its unit text when it has no UCUM code."""
    code = quantity.get("code")
    if isinstance(code, str) and quantity.get("system") in (UCUM, None):
        return code
    unit = quantity.get("unit")
    return unit if isinstance(unit, str) else None


def unit_key(quantity: dict[str, Any]) -> tuple[object, str] | None:
    """Return what identifies a Quantity's unit for matching: system and code, else unit text."""
    code = quantity.get("code")
    if isinstance(code, str):
        return (quantity.get("system"), code)
    unit = quantity.get("unit")
    return (None, unit.strip().lower()) if isinstance(unit, str) else None
