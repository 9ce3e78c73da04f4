"""Every request gets an id: the caller's X-Request-ID if it is sane, else a new one.

The id is echoed on the response and set for the request's log lines (logsafe.REQUEST_ID), so
a hospital's IT team can follow one call from the proxy's log into this service's.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from myoguide.adapters.logsafe import REQUEST_ID

HEADER = "X-Request-ID"
# A proxy's id is taken only if short and plain: it reaches the logs verbatim.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestId:
    """ASGI middleware giving each HTTP request an id, echoed and logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SANE.fullmatch(given) else uuid.uuid4().hex

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, with_id)
        finally:
            REQUEST_ID.reset(token)
