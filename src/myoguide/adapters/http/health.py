"""Liveness and readiness apart, for an orchestrator or a load balancer (ADR 0018).

`/livez` says only that the process answers; restarting on its failure is right. `/readyz` says
whether this process should get traffic: the store writable, the knowledge loaded, and the
database at the migrations this release ships. `/healthz` (api.py) stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from myoguide.adapters.http.api import ApiDoor
from myoguide.adapters.http.common import json_response

router = APIRouter()


@router.get("/livez", include_in_schema=False)
async def livez() -> Response:
    """Say the process is up and its event loop answers."""
    return json_response({"status": "ok"})


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    """Say whether the store writes, the knowledge is loaded and the migrations are current."""
    door: ApiDoor = request.app.state.api
    current: Callable[[], bool] | None = getattr(request.app.state, "migrations_current", None)
    writable = await door.health.writable()
    checks = {
        "store": {None: "unknown", True: "writable", False: "not writable"}[writable],
        "knowledge": door.service.knowledge.knowledge_version,
        "migrations": "unknown",
    }
    ready = writable is not False
    if current is not None:
        try:
            at_head = await run_in_threadpool(current)
        except Exception:
            at_head = False
        checks["migrations"] = "current" if at_head else "not current"
        ready = ready and at_head
    return json_response(
        {"status": "ready" if ready else "not ready", **checks}, 200 if ready else 503
    )
