"""How uvicorn runs the app: filtered logs, a bound on connections, and deadlines on requests.

uvicorn's `timeout_keep_alive` only covers the quiet time between requests, and neither h11 nor
httptools has a header timeout, so a client that trickles a request head holds its socket
forever. The protocols below close a connection whose request head is not complete within
`head_timeout` seconds of the connection (or of the previous response), or whose body is not
complete within `body_timeout` seconds of its head. The server runs httptools on uvloop where
both are installed (ADR 0033), h11 on asyncio's own loop otherwise, with the same deadlines.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

try:  # the faster parser and loop, where installed (not on Windows for uvloop)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

from myoguide.adapters.logsafe import uvicorn_log_config

log = logging.getLogger("myoguide.server")


@dataclass(frozen=True)
class ServerLimits:
    """Deadlines and bounds of the HTTP server (seconds; connections)."""

    head_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    keep_alive: int = 5


class _Deadlines:
    """The deadlines of a request head and body, mixed into a uvicorn protocol (before it)."""

    # Class attributes: uvicorn builds the protocol itself, in every worker process, from a
    # class it is given by reference; `apply_limits` sets them in each process.
    head_timeout: float = ServerLimits.head_timeout
    body_timeout: float = ServerLimits.body_timeout

    _deadline: asyncio.TimerHandle | None = None
    _phase: str = ""
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def _owed_now(self) -> str:
        """Return what the client still owes: "head", "body" or "done"."""
        raise NotImplementedError

    # Any: uvicorn's protocols take an asyncio.Transport where asyncio's base takes less.
    def connection_made(self, transport: Any) -> None:
        """Accept the connection and start the clock on its first request head."""
        super().connection_made(transport)  # type: ignore[misc]
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        """Read the bytes, then move the deadline if a head or a body is now complete."""
        super().data_received(data)  # type: ignore[misc]
        self._track()

    def _track(self) -> None:
        """Arm the deadline for the part of a request the client still owes, or none."""
        phase = self._owed_now()
        if phase == self._phase:
            return
        self._phase = phase
        self._disarm()
        if phase != "done" and self.transport is not None and not self.transport.is_closing():
            seconds = self.head_timeout if phase == "head" else self.body_timeout
            self._deadline = self.loop.call_later(seconds, self._too_slow, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self, phase: str) -> None:
        """Drop a client that did not finish its request head (or body) in time."""
        self._deadline = None
        if self.transport.is_closing() or self._phase != phase:
            return
        # No address or path: the line says what happened, not who or what was asked.
        log.warning("request %s not received in time; connection closed", phase)
        self.transport.close()


class GuardedH11Protocol(_Deadlines, H11Protocol):
    """uvicorn's h11 protocol with a deadline on the request head and on the request body."""

    def _owed_now(self) -> str:
        state = self.conn.their_state
        return "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else "done"

    def on_response_complete(self) -> None:
        """After a response, the next request head has its own deadline."""
        super().on_response_complete()
        self._track()


def _guarded_httptools() -> type[Any] | None:
    """Return httptools' protocol with the same deadlines, or None without httptools."""
    if HttpToolsProtocol is None:  # pragma: no cover
        return None

    class GuardedHttpToolsProtocol(_Deadlines, HttpToolsProtocol):
        """uvicorn's httptools protocol with a deadline on the request head and on its body."""

        # What the client still owes, from the parser's callbacks: head, body or nothing.
        _owed: str = "head"

        def _owed_now(self) -> str:
            return self._owed

        def on_headers_complete(self) -> None:
            """The head is in: the body (if any) now has its own deadline."""
            self._owed = "body"
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            """The whole request is in: nothing is owed until the response is sent."""
            self._owed = "done"
            super().on_message_complete()

        def on_response_complete(self) -> None:
            """After a response, the next request head has its own deadline."""
            if self._owed == "done" and not self.pipeline:
                self._owed = "head"
            super().on_response_complete()
            self._track()

    return GuardedHttpToolsProtocol


GuardedHttpToolsProtocol = _guarded_httptools()


def _has_uvloop() -> bool:
    """Return whether uvloop is installed (it is not on Windows)."""
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


def apply_limits(limits: ServerLimits) -> None:
    """Set the request deadlines for every connection this process accepts."""
    for protocol in (GuardedH11Protocol, GuardedHttpToolsProtocol):
        if protocol is not None:
            protocol.head_timeout = limits.head_timeout
            protocol.body_timeout = limits.body_timeout


def uvicorn_options(limits: ServerLimits, *, json_logs: bool = False) -> dict[str, Any]:
    """Return the keyword arguments `uvicorn.run` gets in every mode `serve` runs in."""
    apply_limits(limits)
    return {
        # httptools parses in C and uvloop runs the loop in C; h11 and asyncio are the fallback.
        "http": GuardedHttpToolsProtocol or GuardedH11Protocol,
        "loop": "uvloop" if _has_uvloop() else "asyncio",
        "limit_concurrency": limits.max_connections,
        "timeout_keep_alive": limits.keep_alive,
        "log_level": "info",
        "access_log": False,
        # Every handler filtered: no exception message (which may quote patient data) is
        # logged, and the HTTP client libraries' URL lines are held back.
        "log_config": uvicorn_log_config(LOGGING_CONFIG, as_json=json_logs),
    }
