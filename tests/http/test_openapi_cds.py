"""Issue 22: the OpenAPI document describes the CDS Hooks routes, their token and refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from helpers import hook_request

from myoguide.bootstrap import ServeConfig, build_http_app


def _conforms(value: Any, schema: dict[str, Any], where: str = "body") -> None:
    """Check a value against the small JSON Schema subset the document uses."""
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), where
        for name in schema.get("required", []):
            assert name in value, f"{where}.{name} is required"
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _conforms(value[name], sub, f"{where}.{name}")
    elif kind == "array":
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            _conforms(item, schema.get("items", {}), f"{where}[{i}]")
    elif kind == "string":
        assert isinstance(value, str), where
        assert value in schema.get("enum", [value]), where


def test_the_cds_routes_are_documented(tmp_path: Path) -> None:
    with TestClient(build_http_app(ServeConfig((), False, None, tmp_path))) as client:
        spec = client.get("/openapi.json").json()
        call = spec["paths"]["/cds-services/{service_id}"]["post"]
        scheme = spec["components"]["securitySchemes"]["cdsHooksJwt"]
        assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == (
            "http",
            "bearer",
            "JWT",
        )
        assert call["security"] == [{"cdsHooksJwt": []}]
        assert {"200", "400", "401", "404", "412", "413", "415", "503"} <= set(call["responses"])
        assert "422" not in call["responses"]
        feedback = spec["paths"]["/cds-services/{service_id}/feedback"]["post"]
        assert feedback["security"] == [{"cdsHooksJwt": []}]
        # What a client sends conforms to the documented body, and what comes back to the answer.
        body = hook_request("patient-view", "p1", {})
        _conforms(body, call["requestBody"]["content"]["application/json"]["schema"])
        discovery = client.get("/cds-services").json()
        _conforms(
            discovery,
            spec["paths"]["/cds-services"]["get"]["responses"]["200"]["content"][
                "application/json"
            ]["schema"],
        )
        # Every $ref in the document resolves.
        refs: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                refs.extend(v for k, v in node.items() if k == "$ref")
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(spec)
        names = set(spec["components"]["schemas"])
        assert all(r.removeprefix("#/components/schemas/") in names for r in refs)
