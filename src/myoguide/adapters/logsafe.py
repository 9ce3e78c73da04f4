"""A logging filter that keeps patient data out of log lines and tracebacks.

Exception messages can quote a statement's parameters or a patient's state, so a record's
traceback is reduced to exception types and code locations; the message text of an exception
never reaches a handler. Log calls in myoguide name reasons and origins, never patient values.
A chart hand-off's token (`chart=...` in a URL) and a FHIR URL's patient id (`Patient/...`,
`patient=...`) are replaced wherever a line would show it; the HTTP client libraries, whose INFO
lines quote every URL they fetch, are held at WARNING.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# A CDS card's link opens a patient's chart with this token for an hour (ADR 0014).
# Also URL-encoded, as in a sign-in page's `next=/assess%3Fchart%3D...`.
_CHART_TOKEN = re.compile(r"(chart(?:=|%3[Dd]))[^&\s\"'#%]+")
# A FHIR read or search names its patient in the path or the query (ADR 0011's templates).
_PATIENT_ID = re.compile(r"(Patient/|Patient%2F|patient=)[^&/?\s\"'#]+")
# Libraries whose INFO lines quote whole URLs (httpx: "HTTP Request: GET https://.../Patient/x").
# HTTP clients log every URL (patient ids); Alembic logs two lines on each /readyz probe.
QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "urllib3", "alembic")


def redact_urls(text: str) -> str:
    """Return text with every `chart=` token and every patient id of a FHIR URL replaced."""
    if "chart" in text:
        text = _CHART_TOKEN.sub(r"\1[redacted]", text)
    if "atient" in text:
        text = _PATIENT_ID.sub(r"\1[redacted]", text)
    return text


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
            # httpx passes its URL object, so anything not a number is read as text.
            record.args = tuple(
                a if a is None or isinstance(a, int | float) else redact_urls(str(a))
                for a in record.args
            )
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}\n  {_safe_trace(record.exc_info[1])}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


FILTER = f"{__name__}.RedactingFilter"

# The id of the request being answered (X-Request-ID), set by the HTTP door's middleware.
REQUEST_ID: ContextVar[str | None] = ContextVar("myoguide_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds the current request's id (or "-") to every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set `record.request_id`; always keep the record."""
        record.request_id = REQUEST_ID.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, request id and the (filtered) message."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        return json.dumps(
            {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname,
                "logger": record.name,
                "request_id": getattr(record, "request_id", None) or REQUEST_ID.get() or "-",
                "message": record.getMessage(),
            },
            ensure_ascii=False,
        )


def uvicorn_log_config(base: dict[str, Any], *, as_json: bool = False) -> dict[str, Any]:
    """Return uvicorn's logging configuration with the filters on every handler.

    `as_json` writes JSON lines (for a log collector); otherwise plain lines for a terminal,
    with the request id in brackets.
    """
    config = copy.deepcopy(base)
    config.setdefault("filters", {})["redact"] = {"()": FILTER}
    config["filters"]["request_id"] = {"()": f"{__name__}.RequestIdFilter"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).extend(["request_id", "redact"])
    formatters = config.setdefault("formatters", {})
    if as_json:
        for name in list(formatters):
            formatters[name] = {"()": f"{__name__}.JsonFormatter"}
    elif "default" in formatters:
        formatters["default"]["fmt"] = "%(levelprefix)s [%(request_id)s] %(message)s"
    # The root logger (myoguide's own loggers propagate to it) gets a filtered handler too.
    config["root"] = {"handlers": ["default"], "level": "INFO"}
    # Set here, not in their modules: dictConfig would otherwise leave them at the root's INFO.
    for name in QUIET_LOGGERS:
        config.setdefault("loggers", {})[name] = {"level": "WARNING"}
    return config


def install(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of a logger (default: the root logger)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
