"""The HTTP door: the JSON API, CDS Hooks 2.0 services and OpenAPI docs, on one FastAPI app."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from myoguide.adapters.cdshooks.security import TokenVerifier
from myoguide.adapters.http import api, cds, health
from myoguide.adapters.http.common import PROBLEM, json_response, problem
from myoguide.adapters.http.headers import JsonGate, SecurityHeaders, send_json
from myoguide.adapters.http.openapi_cds import document_cds
from myoguide.adapters.http.request_id import RequestId
from myoguide.adapters.schemas import decimals_as_numbers
from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState
from myoguide.errors import InputError, StoreUnavailable
from myoguide.service import (
    CardRegistry,
    CdsHooks,
    ChartHandoffs,
    Feedback,
    FeedbackSink,
    FhirClient,
    Service,
)


@dataclass
class HttpSettings:
    """Settings the composition root passes to the app."""

    max_body_bytes: int = 1_000_000
    # CDS Hooks calls carry whole charts as prefetch: a real chart's is megabytes.
    cds_max_body_bytes: int = 16 * 1024 * 1024
    insecure_dev: bool = False
    public_base_url: str | None = None  # what `aud` must equal, when behind a proxy


@dataclass
class AppDeps:
    """Everything the HTTP app needs, built in one place (bootstrap)."""

    service: Service
    cds: CdsHooks
    verifier: TokenVerifier | None
    feedback: Feedback | None
    settings: HttpSettings = field(default_factory=HttpSettings)
    # Off loopback: how an API request proves it is signed in or a trusted client (None: open).
    authenticate: api.Authenticator | None = None
    # Writes one row and says whether the store can write (for /healthz); None: no store.
    store_probe: Callable[[], bool] | None = None
    registry: CardRegistry | None = None  # None: issued cards kept in this process only
    handoffs: ChartHandoffs | None = None  # None: the summary card links to the blank form
    # Whether the database is at the packaged migrations' head (for /readyz); None: unknown.
    migrations_current: Callable[[], bool] | None = None


class BodyLimit:
    """ASGI middleware answering 413 when a request body exceeds its route's limit.

    The body is counted as it arrives, so no more than the limit is ever held; routes under a
    prefix of `by_prefix` get that prefix's limit instead of `max_bytes`.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, by_prefix: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.by_prefix = dict(by_prefix or {})

    def limit_for(self, path: str) -> int:
        """Return the body limit of a request path."""
        for prefix, limit in self.by_prefix.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_json(send, 413, _too_large(limit))
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await send_json(send, 413, _too_large(limit))


def _too_large(limit: int) -> dict[str, Any]:
    """Return the 413 problem body, naming the limit."""
    return problem(
        413,
        "Payload too large",
        f"the request body is larger than this server accepts here (limit {limit:,} bytes)",
        limit=limit,
    )


class _TooLarge(Exception):
    pass


async def _input_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, InputError)
    return json_response(problem(422, "Unusable input", exc.message, field=exc.field), 422, PROBLEM)


async def _store_unavailable(_: Request, __: Exception) -> Response:
    # Plain words, no detail: the cause stays out of the page and the log.
    return PlainTextResponse(
        "The record cannot be saved just now: the database refused the write. Nothing was "
        "saved. Reading records still works; try again later or tell the administrator.",
        status_code=503,
    )


def _docs_page(schema: Mapping[str, Any]) -> str:
    """Return a first-party page listing the operations, with no script at all."""
    rows = []
    for path, operations in sorted(schema.get("paths", {}).items()):
        for method, op in operations.items():
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td>"
                f"<td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(str(op.get('summary', '')))}</td></tr>"
            )
    title = html.escape(str(schema.get("info", {}).get("title", "API")))
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} API</title>'
        f'<link rel="stylesheet" href="/static/style.css"></head><body><main>'
        f"<h1>{title} API</h1><p>The OpenAPI 3 document: "
        f'<a href="/openapi.json">/openapi.json</a> (load it into any OpenAPI tool).</p>'
        f"<table><thead><tr><th>Method</th><th>Path</th><th>What it does</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></main></body></html>"
    )


def create_app(deps: AppDeps) -> FastAPI:
    """Build the FastAPI app around the use cases and their ports."""
    app = FastAPI(
        title="myoguide",
        version=deps.service.knowledge.knowledge_version,
        description="Decision support for recurrent and resistant DM/PM in adults. "
        "It supports, and does not replace, clinical judgment.",
        # FastAPI's pages load scripts from a public CDN; /docs below is first-party.
        docs_url=None,
        redoc_url=None,
    )
    # Added innermost first: headers wrap everything, the body limit wraps the JSON gate.
    app.add_middleware(JsonGate)
    app.add_middleware(
        BodyLimit,
        max_bytes=deps.settings.max_body_bytes,
        by_prefix={"/cds-services/": deps.settings.cds_max_body_bytes},
    )
    public = deps.settings.public_base_url or ""
    app.add_middleware(SecurityHeaders, hsts=public.startswith("https://"))
    # Outermost: every response, refusals by the middlewares above included, carries the id.
    app.add_middleware(RequestId)
    app.state.api = api.ApiDoor(deps.service, deps.authenticate, api.StoreHealth(deps.store_probe))
    app.state.cds = cds.CdsDoor(
        deps.cds,
        deps.verifier,
        deps.feedback,
        deps.settings.public_base_url,
        deps.registry,
        deps.handoffs,
    )
    app.router.on_shutdown.append(app.state.cds.flush)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.include_router(api.router)
    app.include_router(cds.router)
    app.state.migrations_current = deps.migrations_current
    app.include_router(health.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        _, components = msgspec.json.schema_components(
            [PatientState, RecommendationSet], ref_template="#/components/schemas/{name}"
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(
            decimals_as_numbers(components)
        )
        app.openapi_schema = document_cds(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(app.openapi()))

    app.state.cds.self_check()
    return app


__all__ = [
    "AppDeps",
    "BodyLimit",
    "FeedbackSink",
    "FhirClient",
    "HttpSettings",
    "create_app",
]
