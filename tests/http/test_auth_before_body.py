"""Issue 22: a CDS call's body is read only once its token holds (real sockets on loopback)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from helpers import hook_request
from servers import Server

from myoguide.bootstrap import ServeConfig, build_http_app, record_stores

PV = "/cds-services/myoguide-patient-view"


def _head(server: Server, token: str, length: int) -> bytes:
    host = server.base.removeprefix("http://")
    return (
        f"POST {PV} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _first_reply(server: Server, data: bytes, wait: float) -> bytes:
    port = int(server.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)
        s.settimeout(wait)
        try:
            return s.recv(65536)
        except TimeoutError:
            return b""


def test_a_bad_token_is_refused_before_the_body_arrives(server: Server) -> None:
    # The head promises 150 kB and none is sent: only a refusal from the headers can answer.
    started = time.monotonic()
    reply = _first_reply(server, _head(server, "not-a-token", 150_000), wait=3)
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert time.monotonic() - started < 2


def test_a_good_token_waits_for_the_body_and_repeated_keys_are_named(server: Server) -> None:
    body = json.dumps(hook_request("patient-view", "p1", {})).encode()
    # With a valid token the server waits for the promised body: no answer from the head alone.
    assert _first_reply(server, _head(server, server.token(PV), len(body)), wait=1) == b""
    doubled = body[:-1] + b', "hook": "patient-view"}'
    res = server.post(PV, doubled)
    assert res.status_code == 400
    assert res.json()["key"] == "hook"


def test_the_api_off_loopback_refuses_before_reading_the_body(tmp_path: Path) -> None:
    config = ServeConfig((), False, None, tmp_path, require_login=True, host="0.0.0.0")
    _, users = record_stores(config)
    users.add_user("dr-a", "correct horse battery")
    app = build_http_app(config)
    reads: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b'{"age_years": 50}', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/recommendations",
        "raw_path": b"/api/recommendations",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"myoguide.test"), (b"content-type", b"application/json")],
        "client": ("10.0.0.9", 50000),
        "server": ("myoguide.test", 80),
    }
    # A thread of its own: a browser test on the same worker may hold this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    assert sent[0]["status"] == 401
    assert reads == [], "the body was read before the caller was known"
