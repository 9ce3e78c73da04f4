"""Marks CDS calls from an EHR registered for SMART launch, so their cards link by `smart`.

An ASGI middleware (the CDS door is not changed): it reads a CDS call's body once, notes whether
its `fhirServer` is a registered `iss`, and hands the same bytes on. Bodies without a declared
length, or larger than the app's body limit, are passed on unread (their cards keep the
absolute link; the body limit inside answers them as before).
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from myoguide.adapters.cdshooks.smart_link import FROM_SMART_EHR
from myoguide.adapters.smart.config import SmartEhrs


class SmartCards:
    """ASGI middleware setting FROM_SMART_EHR for CDS calls from a registered SMART EHR."""

    def __init__(self, app: ASGIApp, ehrs: SmartEhrs, max_bytes: int) -> None:
        self.app = app
        self.ehrs = ehrs
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not path.startswith("/cds-services/")
            or path.endswith("/feedback")
            or not declared.isdigit()
            or int(declared) > self.max_bytes
        ):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body.extend(message.get("body", b""))
            more = bool(message.get("more_body", False))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        reset = FROM_SMART_EHR.set(self._from_smart_ehr(bytes(body)))
        try:
            await self.app(scope, replay, send)
        finally:
            FROM_SMART_EHR.reset(reset)

    def _from_smart_ehr(self, body: bytes) -> bool:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        server = doc.get("fhirServer") if isinstance(doc, dict) else None
        return isinstance(server, str) and self.ehrs.get(server) is not None
