"""App-wide request and response rules: security headers, JSON content type and duplicate keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from myoguide.adapters.http.common import PROBLEM, problem
from myoguide.adapters.jsonio import dumps

# No inline script or style anywhere; the pages load only their own files.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_ALWAYS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
# The JSON doors: their request bodies must be JSON.
JSON_PREFIXES = ("/api/", "/cds-services")
HSTS = "max-age=31536000"
# Every header name SecurityHeaders may add.
_OURS = frozenset((*(name for name, _ in _ALWAYS), b"cache-control", b"strict-transport-security"))


class SecurityHeaders:
    """ASGI middleware adding the security headers to every response.

    Everything but the static files is `Cache-Control: no-store`: pages, exports and API answers
    carry patient data, and a shared or back-button cache must not keep them.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        # HSTS only when the public URL is https: a browser then never tries plain http for a
        # year. No includeSubDomains: a hospital's other hosts are not this service's to decide.
        # Built once: every response gets the same lines, in this order.
        extra = ((b"strict-transport-security", HSTS.encode()),) if hsts else ()
        self._static = (*_ALWAYS, *extra)
        self._dynamic = (*_ALWAYS, (b"cache-control", b"no-store"), *extra)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        added = self._static if static else self._dynamic

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = message["headers"] = list(message.get("headers") or ())
                if any(name in _OURS for name, _ in raw):
                    # The route set one of ours (rare): replaced in place, as before.
                    headers = MutableHeaders(scope=message)
                    for name, value in added:
                        headers[name.decode()] = value.decode()
                else:
                    raw.extend(added)
            await send(message)

        await self.app(scope, receive, with_headers)


def is_json_type(content_type: str) -> bool:
    """Tell whether a Content-Type is JSON (application/json or application/*+json)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def duplicate_key(body: bytes) -> str | None:
    """Return the first key repeated within one JSON object of the body, or None."""
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        return exc.key
    except (ValueError, RecursionError):
        return None  # not JSON: the route says so in its own words
    return None


def duplicate_key_of(body: bytes, parsed: object) -> str | None:
    """Return the first key repeated within one JSON object of the body, or None.

    `parsed` is the body already parsed. For a chart of megabytes the exact check costs more
    than the answer, so colons are counted first: every key brings one, and a parser keeps one
    value per key, so re-encoding the parsed value loses colons exactly when a key repeats
    (a dropped pair takes its own colon with it). Only the escape \\u003a (or \\u003A) can make
    a colon the text does not show, so a body with one, and any body whose counts differ, gets
    the exact check. Other escapes (an accented name written as \\u00e9) change no colon.
    """
    # A backslash alone is found by memchr, far faster than a search for a longer string (and
    # a chart of megabytes often has none), so the escape is looked for only after one.
    escaped_colon = b"\\" in body and (b"\\u003a" in body or b"\\u003A" in body)
    if not escaped_colon and body.count(b":") == orjson.dumps(parsed).count(b":"):
        return None
    return duplicate_key(body)


class JsonGate:
    """ASGI middleware: JSON doors take only JSON bodies (415), judged from the headers alone.

    The body is not read here: each JSON route reads it once the caller is known and refuses a
    repeated key (`duplicate_key`; parsers keep the first or the last, so it is named rather
    than guessed at), so an unauthenticated body costs nothing (ADR 0018).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] == "http"
            and scope.get("method") in ("POST", "PUT", "PATCH")
            and path.startswith(JSON_PREFIXES)
        ):
            headers = dict(scope.get("headers") or [])
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            if not is_json_type(content_type):
                await send_problem(
                    send, 415, "Unsupported media type", "the body must be application/json"
                )
                return
        await self.app(scope, receive, send)


async def send_problem(send: Send, status: int, title: str, detail: str, **extra: Any) -> None:
    """Send a problem-details response straight from middleware."""
    await send_json(send, status, problem(status, title, detail, **extra))


async def send_json(send: Send, status: int, body: Mapping[str, Any]) -> None:
    """Send a JSON body with the problem media type."""
    data = dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
