"""The JSON API over a real server on loopback: same answers as the engine, 422 naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from casecheck import SHARED_EXAMPLES, VIGNETTES, check, load_cases
from myoguide.adapters.jsonio import to_jsonable
from myoguide.bootstrap import default_service

CASES = [pytest.param(c, id=n) for n, c in load_cases(SHARED_EXAMPLES) + load_cases(VIGNETTES)]


@pytest.mark.parametrize("case", CASES)
def test_http_door(case: dict[str, Any], server: Any) -> None:
    body = case["raw_input"].encode() if "raw_input" in case else case["input"]
    res = server.post("/api/recommendations", body, token=None)
    expect = case["expect"]
    if expect["exit"] == 2:
        assert res.status_code == 422, res.text
        problem = res.json()
        assert res.headers["content-type"].startswith("application/problem+json")
        field = problem["field"]
        assert expect["stderr_contains"] in field or expect["stderr_contains"] == "(input)"
        return
    assert res.status_code == 200, res.text
    data = res.json()
    assert check(data, expect) == []
    assert data == to_jsonable(default_service().recommend(case["input"]))


def test_openapi_documents_the_contract(server: Any) -> None:
    spec = server.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "PatientState" in schemas
    assert "RecommendationSet" in schemas
    assert "/api/recommendations" in spec["paths"]
    assert server.get("/docs").status_code == 200


def test_bad_json_is_422(server: Any) -> None:
    res = server.post("/api/recommendations", b"{nope", token=None)
    assert res.status_code == 422
    assert res.json()["field"] == "(body)"


def test_oversized_body_is_413(server: Any) -> None:
    big = json.dumps({"age_years": 50, "diagnosis": "x" * 300_000}).encode()
    res = server.post("/api/recommendations", big, token=None)
    assert res.status_code == 413
