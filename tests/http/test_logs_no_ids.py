"""Issue 22: a CDS call whose data is fetched leaves no patient id in the server's log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import pytest
from helpers import hook_request, load_bundle, prefetch_from
from servers import start_server, stop_server

PV = "/cds-services/myoguide-patient-view"
# An id no other part of the suite uses, so finding it anywhere means this call leaked it.
PATIENT_ID = "pid-logcheck-7f3a91"


class _Fhir(BaseHTTPRequestHandler):
    resources: ClassVar[dict[str, Any]] = {}
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Fhir.paths.append(self.path)
        kind = urlparse(self.path).path.rstrip("/").split("/")[2]
        empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
        body = _Fhir.resources.get(kind, empty)
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.end_headers()
        self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fhir_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Fhir)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/fhir"
    httpd.shutdown()


def test_fetched_urls_are_not_logged(tmp_path: Path, fhir_url: str) -> None:
    _, prefetch = prefetch_from(load_bundle("resistant-dm")["bundle"])
    patient = dict(prefetch["patient"], id=PATIENT_ID)
    _Fhir.resources = {
        "Patient": patient,
        "Condition": prefetch["conditions"],
        "MedicationRequest": prefetch["medicationRequests"],
    }
    _Fhir.paths = []
    srv = start_server(
        tmp_path, fhir_servers=[{"url": fhir_url, "allow_http": True, "allow_private": True}]
    )
    try:
        body = hook_request("patient-view", PATIENT_ID, None)
        body["fhirServer"] = fhir_url
        body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer"}
        res = srv.post(PV, body)
        assert res.status_code == 200, res.text
    finally:
        out = stop_server(srv)
    # The fetches happened, and each carried the id...
    assert len(_Fhir.paths) >= 5
    assert all(PATIENT_ID in p for p in _Fhir.paths)
    # ...and the log (all levels the service runs at, every library) never shows it.
    assert out.strip(), "the server logged nothing at all"
    assert PATIENT_ID not in out, [line for line in out.splitlines() if PATIENT_ID in line]
