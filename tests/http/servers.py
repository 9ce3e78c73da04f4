"""A real `myoguide serve` on loopback, trusted CDS client keys, and signed tokens.

A module of its own (not conftest) so test modules import it by a name no other folder uses.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://sandbox.cds-hooks.test"
KID = "test-key-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server and what a trusted client needs to call it."""

    base: str
    key: rsa.RSAPrivateKey
    data_dir: Path
    process: subprocess.Popen[str]

    def token(self, path: str, **overrides: Any) -> str:
        """Return a signed JWT for a call to `path`, as the CDS Hooks sandbox makes one."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": self.base + path,
            "exp": now + 300,
            "iat": now,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides.pop("claims", {}))
        headers = {"kid": KID, "typ": "JWT", **overrides.pop("headers", {})}
        return jwt.encode(claims, self.key, algorithm="RS384", headers=headers)

    def post(
        self, path: str, body: Any, *, token: str | None = "auto", **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token == "auto":
            token = self.token(path)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
        return httpx.post(self.base + path, content=content, headers=headers, timeout=30, **kw)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30)


def _jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {
        "kty": "RSA",
        "kid": KID,
        "use": "sig",
        "alg": "RS384",
        "n": b64(numbers.n),
        "e": b64(numbers.e),
    }


def start_server(
    tmp: Path,
    *extra: str,
    fhir_servers: list[Any] | None = None,
    key: rsa.RSAPrivateKey | None = None,
    port: int | None = None,
    public_url: bool = True,
    env: dict[str, str] | None = None,
) -> Server:
    """Start `myoguide serve` on a free loopback port and wait until it answers."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "jwks.json").write_text(json.dumps({"keys": [_jwk(key)]}))
    issuer: dict[str, Any] = {"iss": ISSUER, "jwks_file": "jwks.json"}
    if fhir_servers is not None:
        issuer["fhir_servers"] = fhir_servers
    (tmp / "trust.json").write_text(json.dumps({"issuers": [issuer]}))
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    exe = str(Path(sys.executable).with_name("myoguide"))
    args = [
        exe,
        "serve",
        "--port",
        str(port),
        "--trust",
        str(tmp / "trust.json"),
        "--data-dir",
        str(tmp / "data"),
        *(("--public-url", base) if public_url else ()),
        "--max-body",
        "200000",
        *extra,
    ]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return Server(base, key, tmp / "data", proc)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def stop_server(srv: Server) -> str:
    """Stop a server and return its output, also kept for the suite's log check."""
    srv.process.terminate()
    out, _ = srv.process.communicate(timeout=10)
    keep_log(out or "")
    return out or ""


def keep_log(text: str) -> None:
    """Keep a server's output where tests/test_zz_logs.py greps it for patient data."""
    folder = os.environ.get("MYOGUIDE_TEST_LOG_DIR")
    if folder:
        with (Path(folder) / "servers.log").open("a") as f:
            f.write(text)
