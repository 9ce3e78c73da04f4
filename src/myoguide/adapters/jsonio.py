"""JSON in and out: contract-shaped bytes for the CLI and HTTP doors."""

from __future__ import annotations

from typing import Any

import msgspec

# Decimals travel as JSON numbers (the engine keeps them normalised: 72, 682.5, 0.075).
_ENCODER = msgspec.json.Encoder(decimal_format="number")
# Every digit made "0": a run of 19 zeros then marks a number orjson and msgspec could read
# differently (see read_document).
_DIGIT_RUNS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def dumps(value: object, *, pretty: bool = False) -> bytes:
    """Serialise a RecommendationSet (or any result value) to JSON bytes."""
    data = _ENCODER.encode(value)
    return msgspec.json.format(data, indent=2) if pretty else data


def to_jsonable(value: object) -> Any:
    """Return a result value as plain JSON-compatible Python data."""
    return loads(_ENCODER.encode(value))


def loads(data: bytes | str) -> Any:
    """Parse JSON bytes; raises orjson.JSONDecodeError (a ValueError) on bad JSON."""
    # Imported on use: orjson brings json and dataclasses, a one-shot command's start-up cost.
    import orjson

    return orjson.loads(data)


def read_document(data: bytes) -> Any:
    """Parse JSON bytes to the same value as `loads`, raising its error; cheaper to start.

    msgspec (already loaded) reads what both read alike. orjson reads the rest: text that is
    not JSON (its message says where), and an integer of 19 digits or more, which orjson turns
    into a float outside 64 bits and msgspec keeps exact (a run of 19 digits anywhere, even
    inside a string, is enough to send the text there; the answer is the same, only slower).
    """
    if _LONG_NUMBER not in data.translate(_DIGIT_RUNS):
        try:
            return msgspec.json.decode(data)
        except (ValueError, RecursionError):
            pass  # orjson's message, or orjson's value where its nesting limit is the deeper
    return loads(data)
