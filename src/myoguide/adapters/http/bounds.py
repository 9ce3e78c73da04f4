"""Bounds on what the HTTP door sends back: warnings merged by code and capped."""

from __future__ import annotations

import msgspec

from myoguide.domain.result import RecommendationSet, Warning

MAX_WARNINGS = 50


def bounded_warnings(result: RecommendationSet, limit: int = MAX_WARNINGS) -> RecommendationSet:
    """Merge warnings that share a code (first message kept, the rest counted) and cap them."""
    if len(result.warnings) <= limit and len({w.code for w in result.warnings}) == len(
        result.warnings
    ):
        return result
    first: dict[str, Warning] = {}
    extra: dict[str, int] = {}
    for warning in result.warnings:
        if warning.code in first:
            extra[warning.code] = extra.get(warning.code, 0) + 1
        else:
            first[warning.code] = warning
    merged = [
        msgspec.structs.replace(w, message=f"{w.message} (and {extra[code]} more like this)")
        if code in extra
        else w
        for code, w in first.items()
    ]
    if len(merged) > limit:
        hidden = len(merged) - (limit - 1)
        merged = [
            *merged[: limit - 1],
            Warning("warnings_truncated", f"{hidden} more kinds of warning not shown"),
        ]
    return msgspec.structs.replace(result, warnings=tuple(merged))
