"""Issue 22: clients trickling a request head or body are dropped; the service answers meanwhile."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import Server, start_server, stop_server

HEAD_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0
SLOW = 200


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    saved = dict(os.environ)
    os.environ["MYOGUIDE_HEAD_TIMEOUT"] = str(HEAD_TIMEOUT)
    os.environ["MYOGUIDE_BODY_TIMEOUT"] = str(BODY_TIMEOUT)
    try:
        srv = start_server(tmp_path_factory.mktemp("slow"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield srv
    stop_server(srv)


def _trickle(server: Server, first: bytes, drip: bytes, n: int, limit: float) -> list[float]:
    """Open n sockets that send `first`, then `drip` every 0.3 s; return when each was closed."""
    port = int(server.base.rsplit(":", 1)[1])
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(first)
        s.setblocking(False)
        socks.append(s)
    started = time.monotonic()
    closed: dict[socket.socket, float] = {}
    slowest_health = 0.0
    with httpx.Client(base_url=server.base, timeout=5) as client:
        next_drip = started
        while len(closed) < n and time.monotonic() - started < limit:
            now = time.monotonic()
            if now >= next_drip:
                for s in socks:
                    if s not in closed:
                        try:
                            s.send(drip)
                        except OSError:
                            closed[s] = now - started
                next_drip = now + 0.3
                # The service answers the whole time: a fresh connection each time.
                t0 = time.monotonic()
                assert client.get("/healthz", headers={"Connection": "close"}).status_code == 200
                slowest_health = max(slowest_health, time.monotonic() - t0)
            open_ = [s for s in socks if s not in closed]
            readable, _, _ = select.select(open_, [], [], 0.05) if open_ else ([], [], [])
            for s in readable:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:  # EOF: the server hung up
                    closed[s] = time.monotonic() - started
    for s in socks:
        s.close()
    assert slowest_health < 1.0, f"/healthz took {slowest_health:.2f}s among slow clients"
    assert len(closed) == n, f"{n - len(closed)} slow clients were never dropped"
    return sorted(closed.values())


def test_200_clients_trickling_a_head_are_dropped(guarded: Server) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    times = _trickle(guarded, head, b"X-Slow: 1\r\n", SLOW, limit=HEAD_TIMEOUT + 10)
    # Each within the head limit of its connection (plus the time to open them all).
    assert times[-1] < HEAD_TIMEOUT + 4, times[-5:]


def test_a_client_trickling_a_body_is_dropped(guarded: Server) -> None:
    head = (
        b"POST /api/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    times = _trickle(guarded, head, b" ", 20, limit=BODY_TIMEOUT + 10)
    assert times[-1] < BODY_TIMEOUT + 3, times


def test_a_quick_keep_alive_client_is_not_dropped(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.base, timeout=5) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(HEAD_TIMEOUT / 3)


def test_the_limits_are_documented_settings() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for name in ("MYOGUIDE_HEAD_TIMEOUT", "MYOGUIDE_BODY_TIMEOUT", "MYOGUIDE_MAX_CONNECTIONS"):
        assert name in text
