"""A logging filter that keeps patient data out of log lines and tracebacks.

Exception messages can quote a statement's parameters or a patient's state, so a record's
traceback is reduced to exception types and code locations; the message text of an exception
never reaches a handler. Log calls in myoguide name reasons and origins, never patient values.
A chart hand-off's token (`chart=...` in a URL) is replaced wherever a line would show it.
"""

from __future__ import annotations

import copy
import logging
import re
import traceback
from typing import Any

# A CDS card's link opens a patient's chart with this token for an hour (ADR 0014).
# Also URL-encoded, as in a sign-in page's `next=/assess%3Fchart%3D...`.
_CHART_TOKEN = re.compile(r"(chart(?:=|%3[Dd]))[^&\s\"'#%]+")


def redact_urls(text: str) -> str:
    """Return text with every `chart=` token replaced."""
    return _CHART_TOKEN.sub(r"\1[redacted]", text) if "chart" in text else text


def _safe_trace(exc: BaseException) -> str:
    """Return a traceback with every frame's location but no exception message."""
    lines = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        where = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frames[::-1])
        lines.append(f"{type(current).__module__}.{type(current).__qualname__} at {where}")
        current = current.__cause__ or current.__context__
    return "\n  caused by ".join(lines)


class RedactingFilter(logging.Filter):
    """Replaces a record's exception (message and traceback) with types and locations only."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's exception part and any chart token; always keep the record."""
        if isinstance(record.msg, str):
            record.msg = redact_urls(record.msg)
        if isinstance(record.args, tuple):
            # uvicorn's access lines keep the path in args, which its formatter unpacks.
            record.args = tuple(redact_urls(a) if isinstance(a, str) else a for a in record.args)
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}\n  {_safe_trace(record.exc_info[1])}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


FILTER = f"{__name__}.RedactingFilter"


def uvicorn_log_config(base: dict[str, Any]) -> dict[str, Any]:
    """Return uvicorn's logging configuration with the filter on every handler."""
    config = copy.deepcopy(base)
    config.setdefault("filters", {})["redact"] = {"()": FILTER}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact")
    # The root logger (myoguide's own loggers propagate to it) gets a filtered handler too.
    config["root"] = {"handlers": ["default"], "level": "INFO"}
    # httpx logs each request's URL at INFO, and a FHIR search URL names the patient.
    config.setdefault("loggers", {})["httpx"] = {"level": "WARNING"}
    return config


def install(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of a logger (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
