"""The JSON API router: one patient state in, its RecommendationSet out; and health."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from myoguide.adapters.cdshooks.security import TokenError, TokenVerifier, bearer_token
from myoguide.adapters.http.bounds import bounded_warnings
from myoguide.adapters.http.common import JSON, PROBLEM, json_response, problem
from myoguide.adapters.http.headers import duplicate_key
from myoguide.adapters.jsonio import loads
from myoguide.errors import InputError
from myoguide.service import Service

# How /healthz waits for a fresh store probe before answering with the last one it knows.
_PROBE_WAIT_SECONDS = 0.02
_PROBE_EVERY_SECONDS = 2.0

Authenticator = Callable[[Request], Awaitable[bool]]


class StoreHealth:
    """The store's writability for /healthz: probed in a worker thread, never awaited long."""

    def __init__(self, probe: Callable[[], bool] | None) -> None:
        self._probe = probe
        self._last: bool | None = None
        self._at = -_PROBE_EVERY_SECONDS
        self._task: asyncio.Task[None] | None = None

    async def writable(self) -> bool | None:
        """Return whether the store can write (None: no store, or not known yet)."""
        if self._probe is None:
            return None
        if self._task is None and time.monotonic() - self._at >= _PROBE_EVERY_SECONDS:
            self._task = asyncio.ensure_future(self._refresh(self._probe))
        if self._task is not None:
            # A store stuck on a lock must not make /healthz slow: the last answer is used.
            await asyncio.wait({self._task}, timeout=_PROBE_WAIT_SECONDS)
        return self._last

    async def _refresh(self, probe: Callable[[], bool]) -> None:
        try:
            self._last = await run_in_threadpool(probe)
        finally:
            self._at = time.monotonic()
            self._task = None


@dataclass
class ApiDoor:
    """What the API routes need: the assessment service, sign-in check and store health."""

    service: Service
    authenticate: Authenticator | None = None
    health: StoreHealth = field(default_factory=lambda: StoreHealth(None))


def token_authenticator(verifier: TokenVerifier, public_base_url: str) -> Authenticator:
    """Accept a request carrying a trusted client's JWT for this endpoint's public URL."""

    async def check(request: Request) -> bool:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return False
        audience = public_base_url.rstrip("/") + request.url.path
        try:
            await run_in_threadpool(verifier.verify, token, audience=audience)
        except TokenError:
            return False
        return True

    return check


def _door(request: Request) -> ApiDoor:
    door: ApiDoor = request.app.state.api
    return door


Door = Annotated[ApiDoor, Depends(_door)]
router = APIRouter()


async def _read_json(request: Request) -> object | Response:
    """Return the parsed body, or the 400 naming a repeated key (read after sign-in is checked)."""
    raw = await request.body()
    key = duplicate_key(raw)
    if key is not None:
        detail = f"key '{key}' appears twice in one object"
        return json_response(problem(400, "Bad request", detail, key=key), 400, PROBLEM)
    try:
        parsed: object = loads(raw)
    except ValueError as exc:
        raise InputError("(body)", f"not valid JSON: {exc}") from None
    return parsed


@router.post(
    "/api/recommendations",
    summary="Answer one patient state",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/PatientState"}}},
        },
        "responses": {
            "200": {
                "description": "The RecommendationSet",
                "content": {JSON: {"schema": {"$ref": "#/components/schemas/RecommendationSet"}}},
            },
            "401": {"description": "Off loopback: sign in, or send a trusted client's token"},
            "415": {"description": "The body is not application/json"},
            "422": {"description": "Unusable input; `field` names it"},
        },
    },
)
async def recommendations(request: Request, door: Door) -> Response:
    # No docstring: FastAPI would publish it as the operation's description.
    if door.authenticate is not None and not await door.authenticate(request):
        return json_response(
            problem(401, "Sign-in required", "sign in, or send a trusted client's bearer token"),
            401,
            PROBLEM,
        )
    body = await _read_json(request)
    if isinstance(body, Response):
        return body
    result = door.service.recommend(body)
    return json_response(bounded_warnings(result))


@router.get("/healthz", include_in_schema=False)
async def healthz(door: Door) -> Response:
    """Say the service is up, with its knowledge version and whether the store can write."""
    writable = await door.health.writable()
    store = {None: "unknown", True: "writable", False: "not writable"}[writable]
    status = "degraded" if writable is False else "ok"
    return json_response(
        {
            "status": status,
            "store": store,
            "knowledge_version": door.service.knowledge.knowledge_version,
        },
        503 if writable is False else 200,
    )
