"""Issue 22: JWKS fetches ignore proxy variables and .netrc, as the FHIR client does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from myoguide.adapters.cdshooks.security import HttpxJwksFetcher


class _Seen(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        _Seen.requests.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"keys": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve() -> tuple[ThreadingHTTPServer, str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Seen)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def two_servers() -> Iterator[tuple[str, str]]:
    jwks, jwks_addr = _serve()
    proxy, proxy_addr = _serve()
    _Seen.requests = []
    yield jwks_addr, proxy_addr
    jwks.shutdown()
    proxy.shutdown()


def test_proxy_variables_and_netrc_are_ignored(
    two_servers: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jwks_addr, proxy_addr = two_servers
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://{proxy_addr}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    document = HttpxJwksFetcher().fetch(f"http://{jwks_addr}/jwks.json")
    assert document == {"keys": []}
    # Fetched directly (a proxy would have seen an absolute URL), with no credentials added.
    assert _Seen.requests == [("/jwks.json", None)]
