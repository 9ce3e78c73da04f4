"""Real parts for the SMART App Launch tests: the authorization server (oauth2-mock-server from
the npm registry, scripts/smart-oauth.sh), a FHIR server on loopback that refuses requests
without a bearer token the authorization server signed, and `myoguide serve` registering both.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
OAUTH_DIR = ROOT / "tests" / "smart" / "oauth"
BUNDLES = ROOT / "tests" / "fhir" / "bundles"
CLIENT_ID = "myoguide-test"
START_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_oauth_server() -> None:
    """Install oauth2-mock-server (pinned in its package-lock.json) if it is missing."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "smart-oauth.sh")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"scripts/smart-oauth.sh failed: {proc.stderr}"


@dataclass
class OAuthServer:
    """The running authorization server and the file that steers its answers."""

    url: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen[str]

    def configure(self, **config: Any) -> None:
        """Set what the next token responses hold (see tests/smart/oauth/server.mjs)."""
        self.config_path.write_text(json.dumps(config))

    def authorize_requests(self) -> list[dict[str, str]]:
        """Return the query of every authorize request so far."""
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


def start_oauth_server(folder: Path) -> OAuthServer:
    """Start tests/smart/oauth/server.mjs on 127.0.0.1 and wait for its READY line."""
    install_oauth_server()
    config, log = folder / "oauth-config.json", folder / "oauth-authorize.log"
    config.write_text("{}")
    env = {**os.environ, "MOCK_CONFIG": str(config), "MOCK_LOG": str(log)}
    proc = subprocess.Popen(
        ["node", str(OAUTH_DIR / "server.mjs")],
        cwd=OAUTH_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("READY "), f"oauth2-mock-server did not start: {line}"
    return OAuthServer(line.removeprefix("READY "), config, log, proc)


def load_chart(name: str = "resistant-dm") -> dict[str, Any]:
    """Return a synthetic test chart (a collection Bundle)."""
    bundle: dict[str, Any] = json.loads((BUNDLES / f"{name}.json").read_text())["bundle"]
    return bundle


def without_control_facts(bundle: dict[str, Any]) -> dict[str, Any]:
    """Return the chart with the Condition's control extensions removed (as most charts are)."""
    out = json.loads(json.dumps(bundle))
    for entry in out["entry"]:
        if entry["resource"]["resourceType"] == "Condition":
            entry["resource"].pop("extension", None)
    return out


@dataclass
class FhirServer:
    """A FHIR server on loopback serving one chart to requests with a valid bearer token."""

    oauth: OAuthServer
    chart: dict[str, Any]
    base: str = ""
    fail: dict[str, int] = field(default_factory=dict)  # resource type -> HTTP status
    tokens_seen: list[str] = field(default_factory=list)
    refused: int = 0
    # The browser's way to the authorization server: another site than the app's 127.0.0.1,
    # so the redirect back is cross-site, as from a real EHR.
    authorize_host: str = "127.0.0.1"
    _keys: KeySet | None = None

    def resources(self, kind: str) -> list[dict[str, Any]]:
        return [e["resource"] for e in self.chart["entry"] if e["resource"]["resourceType"] == kind]

    def _authorised(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        if self._keys is None:
            jwks = httpx.get(self.oauth.url + "/jwks", timeout=10).json()
            self._keys = KeySet.import_key_set(jwks)
        try:
            claims = jwt.decode(token, self._keys, algorithms=["RS256"]).claims
            jwt.JWTClaimsRegistry(exp={"essential": True}).validate(claims)
        except JoseError:
            return False
        self.tokens_seen.append(token)
        return True

    async def smart_configuration(self, _: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.oauth.url,
                "authorization_endpoint": self.oauth.url.replace("127.0.0.1", self.authorize_host)
                + "/authorize",
                "token_endpoint": self.oauth.url + "/token",
                "jwks_uri": self.oauth.url + "/jwks",
                "code_challenge_methods_supported": ["S256"],
                "capabilities": [
                    "launch-ehr",
                    "launch-standalone",
                    "client-public",
                    "client-confidential-symmetric",
                    "context-ehr-patient",
                    "context-standalone-patient",
                    "sso-openid-connect",
                    "permission-v2",
                ],
                "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient"],
            }
        )

    async def read(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if not self._authorised(request):
            self.refused += 1
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        if kind in self.fail:
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=self.fail[kind])
        rid = request.path_params.get("rid")
        if rid is not None:
            found = [r for r in self.resources(kind) if r.get("id") == rid]
            if not found:
                return JSONResponse({"resourceType": "OperationOutcome"}, status_code=404)
            return JSONResponse(found[0])
        found = self.resources(kind)
        codes = request.query_params.get("code")
        if codes:
            wanted = {c.split("|")[-1] for c in codes.split(",")}
            found = [
                r
                for r in found
                if wanted & {c.get("code") for c in r.get("code", {}).get("coding", [])}
            ]
        return JSONResponse(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(found),
                "entry": [{"resource": r} for r in found],
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/fhir/.well-known/smart-configuration", self.smart_configuration),
                Route("/fhir/{kind}", self.read),
                Route("/fhir/{kind}/{rid}", self.read),
            ]
        )


@contextmanager
def serve_fhir(oauth: OAuthServer, chart: dict[str, Any]) -> Iterator[FhirServer]:
    """Run a FhirServer with uvicorn in a thread on a free loopback port."""
    fhir = FhirServer(oauth, chart)
    port = free_port()
    fhir.base = f"http://127.0.0.1:{port}/fhir"
    server = uvicorn.Server(
        uvicorn.Config(fhir.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield fhir
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def trust_file(folder: Path, *smart: dict[str, Any]) -> Path:
    """Write a trust file registering the given EHRs under `smart` (no CDS client)."""
    path = folder / "trust.json"
    path.write_text(json.dumps({"smart": list(smart)}))
    return path


def ehr_entry(fhir: FhirServer, **extra: Any) -> dict[str, Any]:
    """The trust entry of the loopback EHR (http and a private address allowed, as in tests)."""
    return {
        "iss": fhir.base,
        "client_id": CLIENT_ID,
        "allow_http": True,
        "allow_private": True,
        **extra,
    }


@dataclass
class App:
    """A running `myoguide serve` on loopback."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> str:
        """Stop the server and return everything it wrote (its log)."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        return self.output()


def start_app(data_dir: Path, trust: Path, *extra: str) -> App:
    """Start `myoguide serve --trust TRUST` on a free loopback port and wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    exe = str(Path(sys.executable).with_name("myoguide"))
    args = [exe, "serve", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--data-dir", str(data_dir), "--trust", str(trust), *extra]
    log = data_dir / f"server-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    app = App(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited: {app.output()}"
        try:
            if httpx.get(app.base + "/healthz", timeout=1).status_code == 200:
                return app
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    app.stop()
    raise AssertionError(f"server did not answer: {app.output()}")


def query_of(url: str) -> dict[str, str]:
    """Return a URL's query as a dict of single values."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def patient_view(fhir: FhirServer, fhir_server: str) -> dict[str, Any]:
    """A patient-view call for the chart, with the chart as prefetch and `fhirServer` given."""

    def searchset(kind: str) -> dict[str, Any]:
        found = fhir.resources(kind)
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in found],
        }

    (patient,) = fhir.resources("Patient")
    prefetch = {
        "patient": patient,
        "conditions": searchset("Condition"),
        "medicationRequests": searchset("MedicationRequest"),
        "medicationStatements": searchset("MedicationStatement"),
        "medicationAdministrations": searchset("MedicationAdministration"),
        "allergies": searchset("AllergyIntolerance"),
        "weight": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        "height": {"resourceType": "Bundle", "type": "searchset", "entry": []},
    }
    return {
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "hook": "patient-view",
        "fhirServer": fhir_server,
        "context": {"userId": "Practitioner/example", "patientId": patient["id"]},
        "prefetch": prefetch,
    }
