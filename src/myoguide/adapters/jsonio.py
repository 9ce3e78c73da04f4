"""JSON in and out: contract-shaped bytes for the CLI and HTTP doors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from myoguide.domain.result import RecommendationSet


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        # Whole figures stay integers (72, not 72.0); others become the nearest float.
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: object, *, pretty: bool = False) -> bytes:
    """Serialise a RecommendationSet (or any result value) to JSON bytes."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(value, default=_default, option=option)


def to_jsonable(result: RecommendationSet) -> dict[str, Any]:
    """Return the RecommendationSet as plain JSON-compatible Python data."""
    data: dict[str, Any] = orjson.loads(dumps(result))
    return data


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes; raises orjson.JSONDecodeError (a ValueError) on bad JSON."""
    return orjson.loads(data)
