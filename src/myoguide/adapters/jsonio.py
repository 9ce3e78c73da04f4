"""JSON in and out: contract-shaped bytes for the CLI and HTTP doors."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

# Decimals travel as JSON numbers (the engine keeps them normalised: 72, 682.5, 0.075).
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def dumps(value: object, *, pretty: bool = False) -> bytes:
    """Serialise a RecommendationSet (or any result value) to JSON bytes."""
    data = _ENCODER.encode(value)
    return msgspec.json.format(data, indent=2) if pretty else data


def to_jsonable(value: object) -> Any:
    """Return a result value as plain JSON-compatible Python data."""
    return orjson.loads(_ENCODER.encode(value))


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes; raises orjson.JSONDecodeError (a ValueError) on bad JSON."""
    return orjson.loads(data)
