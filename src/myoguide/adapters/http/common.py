"""Response helpers shared by the HTTP routers: JSON bodies and RFC 9457 problems."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from myoguide.adapters.jsonio import dumps

JSON = "application/json"
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """Return a problem-details body."""
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}


def json_response(body: object, status: int = 200, media: str = JSON) -> Response:
    """Return a JSON response encoded by the project's encoder."""
    return Response(dumps(body), status_code=status, media_type=media)
