"""JSON in and out: contract-shaped bytes for the CLI and HTTP doors."""

from __future__ import annotations

import sys
from typing import Any

import msgspec

# Decimals travel as JSON numbers (the engine keeps them normalised: 72, 682.5, 0.075).
_ENCODER = msgspec.json.Encoder(decimal_format="number")
# Every digit made "0": a run of 19 zeros then marks a number orjson and msgspec could read
# differently (see read_document).
_DIGIT_RUNS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19
# Above this, orjson's faster reading repays its import (msgspec reads about 3-6 us per KB more).
_SMALL = 64 * 1024


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

    A small text while orjson is not loaded yet (a one-shot command's patient state) is read
    by `read_small`; large text by orjson, whose faster reading repays its import.
    """
    if len(data) <= _SMALL and "orjson" not in sys.modules:
        return read_small(data)
    return loads(data)


def read_small(data: bytes) -> Any:
    """Parse JSON bytes to the same value as `loads`, raising its error, msgspec first.

    msgspec (loaded by the engine anyway) reads what both read alike. orjson reads the rest:
    text that is not JSON (its message says where), and an integer of 19 digits or more
    (orjson makes a float of one outside 64 bits, msgspec an int; a run of 19 digits anywhere,
    even inside a string, sends the text there: the same value, only slower).
    """
    # Nesting past orjson's limit (1,024) goes to orjson too, whatever the recursion limit.
    deep = data.count(b"[") + data.count(b"{") > 1024
    if not deep and _LONG_NUMBER not in data.translate(_DIGIT_RUNS):
        try:
            return msgspec.json.decode(data)
        except (ValueError, RecursionError):
            pass  # orjson's message, or orjson's value where its nesting limit is the deeper
    return loads(data)
