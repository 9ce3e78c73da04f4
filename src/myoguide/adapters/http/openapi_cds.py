"""The CDS Hooks routes in the OpenAPI document: bodies, the bearer JWT, and the refusals.

The routes read their bodies themselves (after the token, ADR 0018), so FastAPI cannot infer
these; they are written here from CDS Hooks 2.0 and what the routes answer.
"""

from __future__ import annotations

from typing import Any

SCHEME = "cdsHooksJwt"

_OBJ: dict[str, Any] = {"type": "object"}

_HOOK_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["hook", "hookInstance", "context"],
    "properties": {
        "hook": {"type": "string", "enum": ["patient-view", "order-select", "order-sign"]},
        "hookInstance": {"type": "string"},
        "fhirServer": {"type": "string", "format": "uri"},
        "fhirAuthorization": {
            "type": "object",
            "properties": {
                "access_token": {"type": "string"},
                "token_type": {"type": "string"},
                "expires_in": {"type": "integer"},
                "scope": {"type": "string"},
                "subject": {"type": "string"},
            },
        },
        "context": {
            "type": "object",
            "required": ["patientId"],
            "properties": {
                "userId": {"type": "string"},
                "patientId": {"type": "string"},
                "draftOrders": _OBJ,
                "selections": {"type": "array", "items": {"type": "string"}},
            },
        },
        "prefetch": {"type": "object", "additionalProperties": _OBJ},
    },
}

_CARDS: dict[str, Any] = {
    "type": "object",
    "required": ["cards"],
    "properties": {"cards": {"type": "array", "items": _OBJ}, "systemActions": {"type": "array"}},
}

_FEEDBACK: dict[str, Any] = {
    "type": "object",
    "required": ["feedback"],
    "properties": {
        "feedback": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["card", "outcome", "outcomeTimestamp"],
                "properties": {
                    "card": {"type": "string"},
                    "outcome": {"type": "string", "enum": ["accepted", "overridden"]},
                    "outcomeTimestamp": {"type": "string", "format": "date-time"},
                    "acceptedSuggestions": {"type": "array", "items": _OBJ},
                    "overrideReason": _OBJ,
                },
            },
        }
    },
}

_PROBLEM = {"application/problem+json": {"schema": _OBJ}}
_ERRORS: dict[str, dict[str, Any]] = {
    "400": {
        "description": "The body is not a valid hook request (the field named)",
        "content": _PROBLEM,
    },
    "401": {
        "description": "The bearer JWT is missing or refused (reason in an OperationOutcome)",
        "content": {"application/fhir+json": {"schema": _OBJ}},
    },
    "404": {"description": "No such CDS service", "content": _PROBLEM},
    "413": {"description": "The body is larger than the server accepts", "content": _PROBLEM},
    "415": {"description": "The body is not application/json", "content": _PROBLEM},
    "503": {
        "description": "The client's JWK Set or the record cannot be reached just now",
        "content": {"application/fhir+json": {"schema": _OBJ}},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def document_cds(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the CDS Hooks routes' bodies, security scheme and error answers to an OpenAPI doc."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "CDS Hooks 2.0 client token: iss from the trust file, aud = public URL + "
        "path, exp within 5 minutes of iat, a jti used once, signed RS/ES/PS 256-512.",
    }
    paths = schema.get("paths", {})
    discovery = paths.get("/cds-services", {}).get("get")
    if discovery is not None:
        discovery["responses"]["200"].update(
            _json({"type": "object", "properties": {"services": {"type": "array", "items": _OBJ}}})
        )
    for path, body, answer in (
        ("/cds-services/{service_id}", _HOOK_REQUEST, _CARDS),
        ("/cds-services/{service_id}/feedback", _FEEDBACK, _OBJ),
    ):
        operation = paths.get(path, {}).get("post")
        if operation is None:
            continue
        operation["security"] = [{SCHEME: []}]
        operation["requestBody"] = {"required": True, **_json(body)}
        responses = operation["responses"]
        responses.pop("422", None)  # FastAPI's own; these routes never answer it
        responses["200"] = {"description": "CDS Hooks answer", **_json(answer)}
        responses.update(_ERRORS)
        if path == "/cds-services/{service_id}":
            responses["412"] = {
                "description": "Prefetch absent and the FHIR server could not be read",
                "content": _PROBLEM,
            }
    return schema
