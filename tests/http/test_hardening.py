"""Issue 10 on loopback: outbound FHIR fetches, tokens across processes, the audience."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from helpers import hook_request
from servers import Server, free_port, start_server, stop_server

from clirun import run_cli

PV = "/cds-services/myoguide-patient-view"


@dataclass
class Listener:
    """A raw loopback listener; `behaviour` decides what each connection gets."""

    behaviour: str
    sock: socket.socket = field(default_factory=socket.socket)
    requests: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> Listener:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                self.requests.append(conn.recv(65536))
                if self.behaviour == "tarpit":
                    # Accept, then say nothing: holds the fetch until its budget runs out.
                    self.stop.wait(30)
                elif self.behaviour == "huge":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
                    chunk = b" " * 65536
                    for _ in range(200 * 16):  # 200 MB, until the reader hangs up
                        conn.sendall(chunk)
                else:
                    body = b'{"resourceType": "Bundle", "type": "searchset"}'
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
                        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                        + body
                    )
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture(scope="module")
def listeners() -> Iterator[dict[str, Listener]]:
    made = {
        name: Listener(kind).start()
        for name, kind in (
            ("tarpit", "tarpit"),
            ("huge", "huge"),
            ("echo", "echo"),
            ("decimal", "echo"),
            ("unlisted", "echo"),
        )
    }
    yield made
    for listener in made.values():
        listener.close()


def _url(listener: Listener, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{listener.port}/fhir"


@pytest.fixture(scope="module")
def hardened(
    tmp_path_factory: pytest.TempPathFactory, listeners: dict[str, Listener]
) -> Iterator[Server]:
    dev = {"allow_http": True, "allow_private": True}
    servers = [
        {"url": _url(listeners["tarpit"]), **dev},
        {"url": _url(listeners["huge"]), **dev},
        {"url": _url(listeners["echo"]), **dev},
        # Allowed over http, but not to a private address: 2130706433 is 127.0.0.1.
        {"url": _url(listeners["decimal"], "2130706433"), "allow_http": True},
    ]
    srv = start_server(tmp_path_factory.mktemp("hardened"), fhir_servers=servers)
    yield srv
    stop_server(srv)


def _fetch_call(server: Server, fhir: str, patient_id: str = "p1") -> httpx.Response:
    body = hook_request("patient-view", patient_id, None)
    body["fhirServer"] = fhir
    body["fhirAuthorization"] = {"access_token": "secret-ehr-token", "token_type": "Bearer"}
    return server.post(PV, body)


def _says_nothing_inside(res: httpx.Response, *words: str) -> None:
    assert res.status_code == 412, res.text
    detail = res.json()["detail"]
    assert "could not be fetched" in detail
    for word in ("Error", "Timeout", "127.0.0.1", *words):
        assert word not in detail


def test_a_tarpit_does_not_hold_healthz(hardened: Server, listeners: dict[str, Listener]) -> None:
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_fetch_call, hardened, _url(listeners["tarpit"]))
        deadline = time.monotonic() + 5
        while not listeners["tarpit"].requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listeners["tarpit"].requests, "the tarpit was never reached"
        slowest = 0.0
        with httpx.Client(base_url=hardened.base, timeout=5) as client:
            client.get("/healthz")  # the connection, made once
            for _ in range(10):
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.1, f"/healthz took {slowest:.3f}s while a fetch was held"
        started = time.monotonic()
        res = held.result(timeout=30)
    # The total budget (10 s) ends the fetch, however the server trickles.
    assert time.monotonic() - started < 15
    _says_nothing_inside(res, str(listeners["tarpit"].port))


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_200_mb_answer_is_cut_off_streaming(
    hardened: Server, listeners: dict[str, Listener]
) -> None:
    before = _rss_kb(hardened.process.pid)
    res = _fetch_call(hardened, _url(listeners["huge"]))
    _says_nothing_inside(res, str(listeners["huge"].port))
    grown_mb = (_rss_kb(hardened.process.pid) - before) / 1024
    # The cap is 5 MB and the body is streamed: memory must stay flat, not grow by 200 MB.
    assert grown_mb < 40, f"server memory grew {grown_mb:.0f} MB"


def test_a_decimal_loopback_address_is_refused(
    hardened: Server, listeners: dict[str, Listener]
) -> None:
    res = _fetch_call(hardened, _url(listeners["decimal"], "2130706433"))
    _says_nothing_inside(res, "2130706433")
    assert listeners["decimal"].requests == []


@pytest.mark.parametrize(
    "fhir",
    [
        "http://{port}/fhir",  # a server the issuer does not list
        "http://user:pw@127.0.0.1:{port}/fhir",  # userinfo
        "http://[::ffff:127.0.0.1]:{port}/fhir",  # IPv6-mapped loopback
        "http://0177.0.0.1:{port}/fhir",  # octal
    ],
)
def test_servers_the_issuer_does_not_allow_are_never_contacted(
    hardened: Server, listeners: dict[str, Listener], fhir: str
) -> None:
    port = listeners["unlisted"].port
    url = fhir.format(port=f"127.0.0.1:{port}" if fhir.startswith("http://{") else port)
    res = _fetch_call(hardened, url)
    _says_nothing_inside(res, str(port))
    assert listeners["unlisted"].requests == [], "the token went to an unlisted server"


@pytest.mark.parametrize(
    ("patient_id", "encoded"),
    [
        ("p1\r\nX-Injected: 1", "p1%0D%0AX-Injected%3A%201"),
        ("p1\tx", "p1%09x"),
        ("p1/../../admin/secret", "p1%2F..%2F..%2Fadmin%2Fsecret"),
    ],
)
def test_ids_are_path_encoded(
    hardened: Server, listeners: dict[str, Listener], patient_id: str, encoded: str
) -> None:
    echo = listeners["echo"]
    echo.requests.clear()
    res = _fetch_call(hardened, _url(echo), patient_id)
    assert res.status_code < 500, res.text
    lines = [r.split(b"\r\n", 1)[0].decode() for r in echo.requests]
    assert f"GET /fhir/Patient/{encoded} HTTP/1.1" in lines, lines
    assert not any("admin" in line and "%2F" not in line for line in lines)
    assert all(
        b"X-Injected" not in r.split(b"\r\n\r\n")[0].split(b"\r\n", 1)[1] for r in echo.requests
    )


# ---- tokens across processes ---------------------------------------------------------------


def _other_instance(tmp: Path, first: Server, port: int | None = None) -> Server:
    """A second server on the first one's database, trusting the same key."""
    return start_server(
        tmp,
        "--data-dir",
        str(first.data_dir),
        key=first.key,
        port=port,
    )


def test_a_replayed_token_is_refused_by_another_instance_and_after_restart(
    tmp_path: Path,
) -> None:
    first = start_server(tmp_path / "a")
    second = None
    try:
        # Tokens name the endpoint by URL: the second instance must be called on the same URL
        # prefix, so it gets the first one's port after the first stops (a restart).
        body = hook_request("patient-view", "p1", {"patient": None})
        token = first.token(PV)
        assert first.post(PV, body, token=token).status_code != 401
        assert first.post(PV, body, token=token).status_code == 401
        port = int(first.base.rsplit(":", 1)[1])
        stop_server(first)
        second = _other_instance(tmp_path / "b", first, port)
        res = second.post(PV, body, token=token)
        assert res.status_code == 401
        assert "already been used" in res.text
    finally:
        if second is not None:
            stop_server(second)
        elif first.process.poll() is None:
            stop_server(first)


def test_two_workers_on_one_database_share_the_replay_cache(tmp_path: Path) -> None:
    first = start_server(tmp_path / "a")
    second = _other_instance(tmp_path / "b", first)
    try:
        body = hook_request("patient-view", "p1", {"patient": None})
        # Both instances are given the same public URL (the first one's), as workers are.
        audience = first.base + PV
        token = first.token(PV, claims={"aud": audience})
        second_public = second.base
        assert first.post(PV, body, token=token).status_code != 401
        # The second worker, reached through the same public URL (a proxy), refuses it.
        res = httpx.post(
            second_public + PV,
            content=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert res.status_code == 401
    finally:
        stop_server(second)
        stop_server(first)


def test_trust_off_loopback_needs_a_public_url(tmp_path: Path) -> None:
    (tmp_path / "trust.json").write_text(
        json.dumps({"issuers": [{"iss": "https://x.test", "jku": ["https://x.test/jwks"]}]})
    )
    res = run_cli(
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
        "--trust",
        str(tmp_path / "trust.json"),
        "--data-dir",
        str(tmp_path),
    )
    assert res.code == 2
    assert "--public-url" in res.stderr


def test_a_token_for_another_host_is_refused(server: Server) -> None:
    body = hook_request("patient-view", "p1", {"patient": None})
    token = server.token(PV, claims={"aud": "http://evil.test" + PV})
    res = server.post(PV, body, token=token, headers={"Host": "evil.test"})
    assert res.status_code == 401


def test_content_type_and_duplicate_keys(server: Server) -> None:
    res = httpx.post(server.base + "/api/recommendations", content=b"{}", timeout=10)
    assert res.status_code == 415
    res = httpx.post(
        server.base + "/api/recommendations",
        content=b'{"age_years": 50, "age_years": 60}',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert res.status_code == 400
    assert res.json()["key"] == "age_years"
    assert "age_years" in res.json()["detail"]


def test_docs_load_no_external_script_and_headers_are_set(server: Server) -> None:
    res = server.get("/docs")
    assert res.status_code == 200
    assert "<script" not in res.text
    assert "cdn" not in res.text.lower()
    csp = res.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert res.headers["x-content-type-options"] == "nosniff"
    assert res.headers["referrer-policy"] == "no-referrer"
    health = server.get("/healthz").json()
    assert health["store"] in ("writable", "unknown")
