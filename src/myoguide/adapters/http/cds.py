"""The CDS Hooks router: discovery, the three services and feedback, behind JWT checks.

Cards are built here, at the door, from what the CdsHooks use case answered: the card shape is
CDS Hooks presentation (adapters/cdshooks/cards.py), not a use case.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from myoguide.adapters.cdshooks.cards import (
    DraftOrder,
    discovery,
    order_cards,
    patient_view_cards,
)
from myoguide.adapters.cdshooks.security import (
    TokenError,
    TokenVerifier,
    VerifiedClient,
    bearer_token,
    operation_outcome,
)
from myoguide.adapters.http.common import PROBLEM, json_response, problem
from myoguide.adapters.http.fhir_client import HttpxFhirClient
from myoguide.adapters.jsonio import dumps, loads
from myoguide.errors import InputError
from myoguide.service import PREFETCH, CdsHooks, Feedback, HookAnswer, PrefetchMissing

log = logging.getLogger("myoguide.http")

SERVICES = {
    "myoguide-patient-view": "patient-view",
    "myoguide-order-select": "order-select",
    "myoguide-order-sign": "order-sign",
}


class CdsDoor:
    """What the CDS routes need, and the cards issued lately (for feedback by card)."""

    def __init__(
        self,
        cds: CdsHooks,
        verifier: TokenVerifier | None,
        feedback: Feedback | None,
        public_base_url: str | None,
    ) -> None:
        self.cds = cds
        self.verifier = verifier
        self.feedback = feedback
        self.public_base_url = public_base_url
        # Card uuid -> "topic: summary" of cards shown lately, so feedback can be reported by card.
        self.issued: OrderedDict[str, str] = OrderedDict()

    def remember(self, cards: list[dict[str, Any]]) -> None:
        """Note the summaries of cards shown, keeping the latest 50,000."""
        for card in cards:
            topic = card["source"].get("topic", {}).get("code", "")
            self.issued[card["uuid"]] = f"{topic}: {card['summary']}" if topic else card["summary"]
        while len(self.issued) > 50_000:
            self.issued.popitem(last=False)

    def cards(self, body: dict[str, Any], answer: HookAnswer) -> list[dict[str, Any]]:
        """Build the cards for what the use case answered."""
        kb = self.cds.service.knowledge
        if answer.unusable is not None:
            return [_unusable_card(body, answer.unusable, kb.disclaimer)]
        assert answer.state is not None
        if answer.result is not None:
            return patient_view_cards(
                answer.result,
                kb,
                answer.state,
                hook_instance=body["hookInstance"],
                patient_id=body["context"].get("patientId"),
                extra_warnings=list(answer.data_warnings),
            )
        drafts = [
            DraftOrder(o.reference, o.agent, o.mg_per_day, o.mg_per_week) for o in answer.orders
        ]
        return order_cards(
            drafts, answer.state, kb, hook_instance=body["hookInstance"], disclaimer=kb.disclaimer
        )

    def self_check(self) -> None:
        """Answer a synthetic patient and build its cards before serving; raise on failure."""
        assessment = self.cds.self_check()
        kb = self.cds.service.knowledge
        cards = patient_view_cards(
            assessment.result,
            kb,
            assessment.state,
            hook_instance="self-check",
            patient_id="self-check",
        )
        dumps({"cards": cards})
        order_cards([], assessment.state, kb, hook_instance="self-check", disclaimer=kb.disclaimer)


def _door(request: Request) -> CdsDoor:
    door: CdsDoor = request.app.state.cds
    return door


Door = Annotated[CdsDoor, Depends(_door)]


async def _verified(door: CdsDoor, request: Request) -> VerifiedClient | Response | None:
    """Return who sent a call whose token verifies (None: not verifying), or the refusal."""
    verifier = door.verifier
    if verifier is None:
        return None
    token = bearer_token(request.headers.get("authorization"))
    try:
        if door.public_base_url is None:
            # The audience is configuration, never the request's Host header (a token minted
            # for another host would pass): without it nothing verifies.
            raise TokenError("wrong_audience", "this server has no public URL configured")
        audience = door.public_base_url.rstrip("/") + request.url.path
        # Verification may fetch a JWKS and writes the jti to the store: off the event loop.
        return await run_in_threadpool(verifier.verify, token, audience=audience)
    except TokenError as exc:
        log.info("refused CDS call: %s", exc.reason)
        status = 503 if exc.reason == "jwks_unavailable" else 401
        return json_response(operation_outcome(exc), status, "application/fhir+json")


async def _authorised_body(
    service_id: str, door: CdsDoor, request: Request
) -> Response | tuple[object, VerifiedClient | None]:
    """Return the parsed body and caller of an authorised call to a known service, or refusal."""
    if service_id not in SERVICES:
        return json_response(
            problem(404, "Unknown service", f"no CDS service '{service_id}'"), 404, PROBLEM
        )
    client = await _verified(door, request)
    if isinstance(client, Response):
        return client
    try:
        data: object = loads(await request.body())
    except ValueError:
        return json_response(problem(400, "Bad request", "body is not valid JSON"), 400, PROBLEM)
    return data, client


router = APIRouter()


@router.get("/cds-services", summary="CDS Hooks discovery")
async def cds_discovery() -> Response:
    return json_response(discovery(PREFETCH))


@router.post("/cds-services/{service_id}", summary="Call a CDS Hooks service")
async def cds_call(service_id: str, request: Request, door: Door) -> Response:
    authorised = await _authorised_body(service_id, door, request)
    if isinstance(authorised, Response):
        return authorised
    body, client = authorised
    hook = SERVICES[service_id]
    bad = _check_hook_request(body, hook)
    if bad or not isinstance(body, dict):
        return json_response(problem(400, "Bad request", bad or "bad body"), 400, PROBLEM)
    use_case = door.cds
    if isinstance(use_case.fhir, HttpxFhirClient):
        # Outbound reads only to this caller's servers, for this patient, on one time budget.
        bound = use_case.fhir.bound(client.issuer if client else None, body["context"]["patientId"])
        use_case = replace(use_case, fhir=bound)
    try:
        # In a worker thread: a slow FHIR server must not hold the event loop.
        answer = await run_in_threadpool(use_case.answer, body, hook)
    except PrefetchMissing as exc:
        return json_response(problem(412, "Precondition failed", str(exc)), 412, PROBLEM)
    cards = door.cards(body, answer)
    if answer.unusable is None:
        door.remember(cards)
    return json_response({"cards": cards})


@router.post("/cds-services/{service_id}/feedback", summary="Feedback on cards")
async def cds_feedback(service_id: str, request: Request, door: Door) -> Response:
    authorised = await _authorised_body(service_id, door, request)
    if isinstance(authorised, Response):
        return authorised
    body = authorised[0]
    if door.feedback is None:
        return json_response(
            problem(503, "Feedback store not configured", "no store"), 503, PROBLEM
        )
    try:
        n = await run_in_threadpool(door.feedback.record, service_id, body, door.issued)
    except ValueError as exc:
        return json_response(problem(400, "Bad request", str(exc)), 400, PROBLEM)
    return json_response({"stored": n})


def _check_hook_request(body: object, hook: str) -> str | None:
    """Return what is wrong with a CDS Hooks request body, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for key in ("hook", "hookInstance"):
        if not isinstance(body.get(key), str):
            return f"'{key}' must be a string"
    if body["hook"] != hook:
        return f"'hook' is '{body['hook']}', this service answers '{hook}'"
    if not isinstance(body.get("context"), dict):
        return "'context' must be an object"
    if not isinstance(body["context"].get("patientId"), str):
        return "'context.patientId' must be a string"
    if "prefetch" in body and not isinstance(body["prefetch"], dict):
        return "'prefetch' must be an object"
    return None


def _unusable_card(body: dict[str, Any], exc: InputError, disclaimer: str) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"myoguide:{body['hookInstance']}:unusable")),
        "summary": "myoguide: the record lacks what is needed for a recommendation",
        "detail": f"The chart data could not be used ({exc.field}: {exc.message}). "
        f"No recommendation is made.\n\n_{disclaimer}_",
        "indicator": "warning",
        "source": {"label": "myoguide"},
    }
