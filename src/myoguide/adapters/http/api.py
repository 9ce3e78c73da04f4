"""The JSON API router: one patient state in, its RecommendationSet out; and health."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from myoguide.adapters.http.common import JSON, json_response
from myoguide.adapters.jsonio import loads
from myoguide.errors import InputError
from myoguide.service import Service


@dataclass(frozen=True)
class ApiDoor:
    """What the API routes need: the assessment service."""

    service: Service


def _door(request: Request) -> ApiDoor:
    door: ApiDoor = request.app.state.api
    return door


Door = Annotated[ApiDoor, Depends(_door)]
router = APIRouter()


async def _read_json(request: Request) -> object:
    raw = await request.body()
    try:
        return loads(raw)
    except ValueError as exc:
        raise InputError("(body)", f"not valid JSON: {exc}") from None


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
            "422": {"description": "Unusable input; `field` names it"},
        },
    },
)
async def recommendations(request: Request, door: Door) -> Response:
    # No docstring: FastAPI would publish it as the operation's description.
    return json_response(door.service.recommend(await _read_json(request)))


@router.get("/healthz", include_in_schema=False)
async def healthz(door: Door) -> Response:
    """Say the service is up, with its knowledge version."""
    return json_response(
        {"status": "ok", "knowledge_version": door.service.knowledge.knowledge_version}
    )
