"""Issue 22: JSON log lines carry the request id the response echoes (X-Request-ID)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
from servers import start_server, stop_server

PV = "/cds-services/myoguide-patient-view"


def test_json_lines_carry_the_echoed_request_id(tmp_path: Path) -> None:
    saved = dict(os.environ)
    os.environ["MYOGUIDE_LOG_FORMAT"] = "json"
    try:
        srv = start_server(tmp_path)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        # A refused call logs its reason at INFO, inside the request.
        res = srv.post(PV, {}, token="not-a-token", headers={"X-Request-ID": "proxy-42.a"})
        assert res.status_code == 401
        assert res.headers["x-request-id"] == "proxy-42.a"
        # An id unfit for a log line is replaced by a fresh one.
        odd = httpx.get(srv.base + "/livez", headers={"X-Request-ID": "a b\tc"}, timeout=10)
        assert odd.headers["x-request-id"] != "a b\tc"
        assert len(odd.headers["x-request-id"]) == 32
    finally:
        out = stop_server(srv)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines, out
    assert all({"time", "level", "logger", "request_id", "message"} <= set(x) for x in lines)
    refused = [x for x in lines if "refused CDS call" in x["message"]]
    assert refused, out
    assert refused[0]["request_id"] == "proxy-42.a"
