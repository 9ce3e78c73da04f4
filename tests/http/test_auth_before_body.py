"""Issue 22: a CDS call's body is read only once its token holds (real sockets on loopback)."""

from __future__ import annotations

import json
import socket
import time

from helpers import hook_request
from servers import Server

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
