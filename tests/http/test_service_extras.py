"""Feedback stored durably and reported; prefetch fetched from the EHR's FHIR server; insecure mode;
schemathesis over the OpenAPI with no server error."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import httpx
import pytest
from helpers import hook_request, load_bundle, prefetch_from
from servers import free_port, start_server, stop_server

from clirun import run_cli

PV = "/cds-services/myoguide-patient-view"


def test_feedback_is_stored_and_reported(server: Any) -> None:
    patient_id, prefetch = prefetch_from(load_bundle("resistant-dm")["bundle"])
    cards = server.post(PV, hook_request("patient-view", patient_id, prefetch)).json()["cards"]
    rtx = next(
        c for c in cards if c["source"].get("topic", {}).get("code") == "resistant_rituximab"
    )
    # A second call: its summary card is the other card the feedback speaks of.
    again = server.post(PV, hook_request("patient-view", patient_id, prefetch)).json()["cards"]
    ivig = again[0]
    body = {
        "feedback": [
            {
                "card": rtx["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": rtx["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
            },
            {
                "card": ivig["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": ivig["overrideReasons"][2], "userComment": "cost"},
                "outcomeTimestamp": "2026-11-21T10:01:00Z",
            },
        ]
    }
    path = PV + "/feedback"
    res = server.post(path, body, token=server.token(path))
    assert res.status_code == 200, res.text
    assert res.json() == {"stored": 2}
    bad = server.post(
        path, {"feedback": [{"card": "x", "outcome": "maybe"}]}, token=server.token(path)
    )
    assert bad.status_code == 400
    assert "feedback[0]" in bad.json()["detail"]
    report = run_cli("feedback", "report", "--data-dir", str(server.data_dir))
    assert report.code == 0, report.stderr
    assert "resistant_rituximab" in report.stdout
    assert "Patient preference" in report.stdout or "patient-preference" in report.stdout


def test_feedback_needs_a_token(server: Any) -> None:
    res = server.post(PV + "/feedback", {"feedback": []}, token=None)
    assert res.status_code == 401


class _Fhir(BaseHTTPRequestHandler):
    resources: ClassVar[dict[str, Any]] = {}
    tokens: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        _Fhir.tokens.append(self.headers.get("Authorization"))
        key = urlparse(self.path).path.rstrip("/").split("/", 2)[-1]
        resource_type = key.split("?")[0].split("/")[0]
        body = _Fhir.resources.get(resource_type)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/fhir+json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {}).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fhir_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Fhir)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/fhir"
    httpd.shutdown()


@pytest.fixture
def fhir_trusted_server(tmp_path: Path, fhir_server: str) -> Iterator[Any]:
    # The FHIR server is on loopback over http: its trust entry must allow both.
    srv = start_server(
        tmp_path, fhir_servers=[{"url": fhir_server, "allow_http": True, "allow_private": True}]
    )
    yield srv
    stop_server(srv)


def test_absent_prefetch_is_fetched_with_the_bearer_token(
    fhir_trusted_server: Any, fhir_server: str
) -> None:
    server = fhir_trusted_server
    patient_id, prefetch = prefetch_from(load_bundle("resistant-dm")["bundle"])
    _Fhir.resources = {
        "Patient": prefetch["patient"],
        "Condition": prefetch["conditions"],
        "MedicationRequest": prefetch["medicationRequests"],
        "MedicationStatement": prefetch["medicationStatements"],
        "MedicationAdministration": prefetch["medicationAdministrations"],
        "AllergyIntolerance": prefetch["allergies"],
        "Observation": {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": prefetch["weight"]["entry"] + prefetch["height"]["entry"],
        },
    }
    _Fhir.tokens = []
    body = hook_request("patient-view", patient_id, None)
    body["fhirServer"] = fhir_server
    body["fhirAuthorization"] = {
        "access_token": "ehr-token-123",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "myoguide",
    }
    res = server.post(PV, body)
    assert res.status_code == 200, res.text
    topics = [c["source"].get("topic", {}).get("code") for c in res.json()["cards"]]
    assert "resistant_rituximab" in topics
    assert _Fhir.tokens
    assert set(_Fhir.tokens) == {"Bearer ehr-token-123"}


def test_unreachable_fhir_server_is_412(server: Any) -> None:
    body = hook_request("patient-view", "p1", None)
    body["fhirServer"] = "http://127.0.0.1:9/fhir"
    assert server.post(PV, body).status_code == 412


def test_insecure_dev_mode_says_so_loudly(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--insecure-dev")
    try:
        body = hook_request("patient-view", *prefetch_from(load_bundle("child")["bundle"]))
        res = httpx.post(srv.base + PV, json=body, timeout=30)
        assert res.status_code == 200
    finally:
        srv.process.terminate()
        out, _ = srv.process.communicate(timeout=10)
    assert "INSECURE DEVELOPMENT MODE" in out


def test_without_trusted_clients_every_cds_call_is_refused(tmp_path: Path) -> None:
    port = free_port()
    exe = str(Path(sys.executable).with_name("myoguide"))
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = hook_request("patient-view", *prefetch_from(load_bundle("child")["bundle"]))
        assert httpx.post(base + PV, json=body, timeout=30).status_code == 401
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "every CDS Hooks call will be refused" in out


def test_non_loopback_without_accounts_refuses_to_start(tmp_path: Path) -> None:
    res = run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path))
    assert res.code == 2
    assert "--host" in res.stderr
    assert "myoguide user add" in res.stderr


def test_schemathesis_finds_no_server_error(server: Any) -> None:
    exe = str(Path(sys.executable).with_name("schemathesis"))
    proc = subprocess.run(
        [
            exe,
            "run",
            server.base + "/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "60",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
