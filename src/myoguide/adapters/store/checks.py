"""Checks shared by the store's input validation."""

from __future__ import annotations

from collections.abc import Mapping


def has_nul(value: object) -> bool:
    """Return whether a JSON-like value holds U+0000 anywhere (PostgreSQL cannot store it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False
