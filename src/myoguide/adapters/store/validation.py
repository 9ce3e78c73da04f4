"""Validators of what the stores are given: text, JSON objects, instants, days and ids."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from myoguide.adapters.store.rows import RecordNotFound
from myoguide.adapters.store.tables import MAX_RECOMMENDATION_ID

MAX_ID = 2**63 - 1
# U+0000 in JSON text (json.dumps escapes every control character): `\u0000` after an even
# run of backslashes, so an escaped backslash followed by the letters "u0000" is not one.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def clean_text(value: object, where: str, max_len: int) -> str:
    """Return text stripped, or ValueError naming where when empty, too long or with controls."""
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be a string")
    text = value.strip()
    if not text:
        raise ValueError(f"{where}: must not be empty")
    if len(text) > max_len:
        raise ValueError(f"{where}: must be at most {max_len} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{where}: must not contain control characters")
    return text


def clean_optional_text(value: object, where: str, max_len: int) -> str | None:
    """Return None for None, else the text checked as by clean_text."""
    return None if value is None else clean_text(value, where, max_len)


def json_object(value: object, where: str) -> dict[str, Any]:
    """Return a private plain-JSON copy of a JSON object, or ValueError naming where."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where}: must be a JSON object")
    try:
        # A private copy that is certainly plain JSON; PostgreSQL refuses NaN and Infinity.
        text = json.dumps(value, allow_nan=False)
        plain: dict[str, Any] = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: is not plain JSON ({exc})") from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        # PostgreSQL text and JSONB cannot hold U+0000.
        raise ValueError(f"{where}: must not contain NUL (U+0000) characters")
    return plain


def utc_instant(value: object, where: str) -> datetime:
    """Return a timezone-aware datetime in UTC, or ValueError naming where."""
    if not isinstance(value, datetime):
        raise ValueError(f"{where}: must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{where}: must be timezone-aware")
    return value.astimezone(UTC)


def calendar_day(value: object, where: str) -> date:
    """Return a calendar date (not a datetime), or ValueError naming where."""
    # datetime is a subclass of date; a visit is a calendar day, not an instant.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ValueError(f"{where}: must be a date")
    return value


def checked_id(value: object, where: str, kind: str) -> int:
    """Return a row id, ValueError when not an integer, RecordNotFound when out of range."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: must be an integer")
    if not 1 <= value <= MAX_ID:
        # PostgreSQL would refuse an out-of-range id with an error instead of finding nothing.
        raise RecordNotFound(f"{kind} {value} not found")
    return value


def top_recommendation(result: Mapping[str, Any]) -> str | None:
    """Return the id of a result's first recommendation, or None when it has none."""
    recommendations = result.get("recommendations")
    if recommendations is None:
        return None
    if not isinstance(recommendations, list):
        raise ValueError("result.recommendations: must be an array")
    if not recommendations:
        return None
    first = recommendations[0]
    if not isinstance(first, Mapping):
        raise ValueError("result.recommendations[0]: must be a JSON object")
    return clean_text(first.get("id"), "result.recommendations[0].id", MAX_RECOMMENDATION_ID)
