"""The CDS Hooks router: discovery, the hook table's services and feedback, behind JWT checks.

Cards are built here, at the door, from what the CdsHooks use case answered: the card shape is
CDS Hooks presentation (adapters/cdshooks/cards.py), not a use case. Which services exist, and
which hook each answers, is the service's hook table (service/cds.py HOOKS).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from myoguide.adapters.cdshooks.cards import (
    discovery,
    gets_cards,
    order_cards,
    patient_view_cards,
    unusable_cards,
    unusable_words,
)
from myoguide.adapters.cdshooks.security import (
    TokenError,
    TokenVerifier,
    VerifiedClient,
    WouldFetch,
    bearer_token,
    operation_outcome,
)
from myoguide.adapters.fhir.gather import FhirGatherer
from myoguide.adapters.gcpause import gc_paused
from myoguide.adapters.http.common import PROBLEM, json_response, problem
from myoguide.adapters.http.fhir_client import HttpxFhirClient
from myoguide.adapters.http.headers import duplicate_key_of
from myoguide.adapters.jsonio import dumps, loads
from myoguide.service import (
    HOOK_BY_ID,
    HOOKS,
    CardRegistry,
    CdsHooks,
    ChartHandoffs,
    Feedback,
    HookAnswer,
    PrefetchMissing,
)

log = logging.getLogger("myoguide.http")


class MemoryCardRegistry:
    """Issued cards in this process only (the latest 50,000): for apps built without a store."""

    def __init__(self) -> None:
        self.issued: OrderedDict[str, str] = OrderedDict()
        # Calls remember and feedback looks up from worker threads.
        self.lock = threading.Lock()

    def remember(self, service_id: str, cards: Mapping[str, str]) -> None:
        """Note the cards shown."""
        with self.lock:
            self.issued.update(cards)
            while len(self.issued) > 50_000:
                self.issued.popitem(last=False)

    def summaries(self, uuids: Sequence[str]) -> Mapping[str, str]:
        """Return the summaries known for these uuids."""
        with self.lock:
            return {u: self.issued[u] for u in uuids if u in self.issued}


class WriteBehindRegistry:
    """Batches issued cards into the store every FLUSH_SECONDS, off the request's path.

    One durable commit per response (an fsync on SQLite) capped patient-view at ~50/s; feedback
    comes seconds after a card at the earliest, so a quarter-second delay costs nothing. Cards
    of the last interval are lost if the process dies, and feedback then reads "unknown card".
    """

    FLUSH_SECONDS = 0.25

    def __init__(self, store: CardRegistry) -> None:
        self.store = store
        self.pending: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()
        # Held while a batch is written, so a lookup after `flush` sees what an earlier flush
        # (in the background thread) took from the queue but had not yet committed.
        self.writing = threading.Lock()
        self.wake = threading.Event()
        threading.Thread(target=self._run, name="card-registry", daemon=True).start()

    def remember(self, service_id: str, cards: Mapping[str, str]) -> None:
        """Queue cards for the next flush."""
        with self.lock:
            self.pending.setdefault(service_id, {}).update(cards)

    def summaries(self, uuids: Sequence[str]) -> Mapping[str, str]:
        """Flush what is queued, then look the uuids up in the store."""
        self.flush()
        return self.store.summaries(uuids)

    def flush(self) -> None:
        """Write every queued card to the store."""
        with self.writing:
            with self.lock:
                batch, self.pending = self.pending, {}
            for service_id, cards in batch.items():
                try:
                    self.store.remember(service_id, cards)
                except Exception:
                    log.exception("could not record %d issued cards", len(cards))

    def _run(self) -> None:
        while True:
            self.wake.wait(self.FLUSH_SECONDS)
            self.flush()


class CdsDoor:
    """What the CDS routes need, and where the cards issued are kept (for feedback by card)."""

    def __init__(
        self,
        cds: CdsHooks,
        verifier: TokenVerifier | None,
        feedback: Feedback | None,
        public_base_url: str | None,
        registry: CardRegistry | None = None,
        handoffs: ChartHandoffs | None = None,
    ) -> None:
        self.cds = cds
        self.verifier = verifier
        self.feedback = feedback
        self.public_base_url = public_base_url
        self.registry: CardRegistry = (
            WriteBehindRegistry(registry) if registry is not None else MemoryCardRegistry()
        )
        # None: the summary card links to the blank form (no store to hand the chart over).
        self.handoffs = handoffs

    def flush(self) -> None:
        """Write the issued cards still queued (at shutdown, so a restart loses none)."""
        if isinstance(self.registry, WriteBehindRegistry):
            self.registry.flush()

    def base_url(self, request: Request) -> str:
        """Return the base URL the pages are served at, for the cards' links."""
        return self.public_base_url or str(request.base_url)

    def remember(self, service_id: str, cards: list[dict[str, Any]]) -> None:
        """Record the cards shown under their uuids, as "topic: summary"."""
        issued = {}
        for card in cards:
            topic = card["source"].get("topic", {}).get("code", "")
            issued[card["uuid"]] = f"{topic}: {card['summary']}" if topic else card["summary"]
        self.registry.remember(service_id, issued)

    def cards(
        self, answer: HookAnswer, base_url: str, patient_id: str | None
    ) -> list[dict[str, Any]]:
        """Build the cards for what the use case answered (none for a patient without DM/PM)."""
        kb = self.cds.service.knowledge
        if not answer.myositis:
            return []
        if answer.unusable is not None:
            exc = answer.unusable
            return unusable_cards(
                unusable_words(exc),
                answer.data_warnings,
                version=kb.knowledge_version,
                disclaimer=kb.disclaimer,
                base_url=base_url,
            )
        assert answer.state is not None
        if answer.result is not None:
            return patient_view_cards(
                answer.result,
                kb,
                patient_id=patient_id,
                base_url=base_url,
                data_warnings=answer.data_warnings,
                chart_token=self.hand_off(answer),
                drafts=answer.drafts,
                state=answer.state,
            )
        return order_cards(answer.findings, kb, disclaimer=kb.disclaimer, base_url=base_url)

    def hand_off(self, answer: HookAnswer) -> str | None:
        """Keep the validated state a shown answer came from; return its link's token."""
        if self.handoffs is None or answer.state is None or answer.result is None:
            return None
        if not gets_cards(answer.result, self.cds.service.knowledge):
            return None
        # The contract's state form, as a visit stores it, so the page fills the form from it.
        state = msgspec.to_builtins(answer.state)
        try:
            return self.handoffs.put(state, answer.data_warnings)
        except ValueError:
            # Not storable (e.g. a NUL character): the card keeps the blank form's link.
            log.info("chart hand-off refused: state not storable")
            return None

    def self_check(self) -> None:
        """Answer a synthetic patient and build its cards before serving; raise on failure."""
        answer = self.cds.self_check()
        assert answer.result is not None
        kb = self.cds.service.knowledge
        base = self.public_base_url or "http://self-check"
        cards = patient_view_cards(
            answer.result, kb, patient_id="self-check", base_url=base, drafts=answer.drafts
        )
        dumps({"cards": cards})
        order_cards(answer.findings, kb, disclaimer=kb.disclaimer, base_url=base)


async def _door(request: Request) -> CdsDoor:
    # async: FastAPI runs a plain-def dependency in the thread pool, a hop per call for nothing.
    door: CdsDoor = request.app.state.cds
    return door


Door = Annotated[CdsDoor, Depends(_door)]


# What a call's token left to do once its signature and claims hold: record its jti.
Pending = tuple[VerifiedClient, float] | None


def _refused(exc: TokenError) -> Response:
    log.info("refused CDS call: %s", exc.reason)
    status = 503 if exc.reason == "jwks_unavailable" else 401
    return json_response(operation_outcome(exc), status, "application/fhir+json")


async def _authenticated(door: CdsDoor, request: Request) -> Pending | Response:
    """Check a call's token (all but its jti), or return the refusal; None when not verifying."""
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
        try:
            # Signature and claims are CPU work of microseconds: on the loop, with keys at hand.
            return verifier.authenticate(token, audience=audience, may_fetch=False)
        except WouldFetch:
            # A JWK Set to fetch waits on the network: off the loop (rare: cached 5 minutes).
            return await run_in_threadpool(verifier.authenticate, token, audience=audience)
    except TokenError as exc:
        return _refused(exc)


async def _authorised_body(
    service_id: str, door: CdsDoor, request: Request
) -> Response | tuple[bytes, Pending]:
    """Return the raw body and the token's pending jti of a call to a known service, or refusal."""
    if service_id not in HOOK_BY_ID:
        return json_response(
            problem(404, "Unknown service", f"no CDS service '{service_id}'"), 404, PROBLEM
        )
    pending = await _authenticated(door, request)
    if isinstance(pending, Response):
        return pending
    # Read only now, once the token's signature holds: an unauthenticated body costs nothing
    # (ADR 0018).
    return await request.body(), pending


def _spent_and_parsed(door: CdsDoor, raw: bytes, pending: Pending) -> Response | object:
    """Record the token's jti, then parse the body; return the body or the refusal.

    Runs in the call's one worker-thread hop (the jti is a store write): a replayed token is
    refused before its body is looked at, as before.
    """
    if pending is not None and door.verifier is not None:
        try:
            door.verifier.spend(*pending)
        except TokenError as exc:
            return _refused(exc)
    try:
        data: object = loads(raw)
    except ValueError:
        return json_response(problem(400, "Bad request", "body is not valid JSON"), 400, PROBLEM)
    key = duplicate_key_of(raw, data)
    if key is not None:
        detail = f"key '{key}' appears twice in one object"
        return json_response(problem(400, "Bad request", detail, key=key), 400, PROBLEM)
    return data


router = APIRouter()


@router.get("/cds-services", summary="CDS Hooks discovery")
async def cds_discovery(door: Door) -> Response:
    # The templates the use case gathers with: what is asked for is what is read.
    return json_response(discovery(HOOKS, door.cds.templates))


def _answer_call(
    door: CdsDoor, service_id: str, raw: bytes, pending: Pending, base_url: str
) -> Response:
    """Answer one authorised CDS call in a worker thread, without cyclic collection."""
    # The parsed chart has no reference cycles: collecting over it is wasted work (ADR 0026).
    # It is freed when `_answer` returns, before collection resumes, so none scans it.
    with gc_paused():
        return _answer(door, service_id, raw, pending, base_url)


def _answer(
    door: CdsDoor, service_id: str, raw: bytes, pending: Pending, base_url: str
) -> Response:
    """Spend the token, parse, answer and build the cards of one call (in a worker thread).

    Everything that may wait (the jti's store write, FHIR reads, the chart hand-off's store
    write) is in this one hop off the event loop (issue 24).
    """
    body = _spent_and_parsed(door, raw, pending)
    if isinstance(body, Response):
        return body
    bad = _check_hook_request(body, HOOK_BY_ID[service_id].hook)
    if bad or not isinstance(body, dict):
        return json_response(problem(400, "Bad request", bad or "bad body"), 400, PROBLEM)
    use_case = door.cds
    gatherer = use_case.gatherer
    if isinstance(gatherer, FhirGatherer) and isinstance(gatherer.fhir, HttpxFhirClient):
        # Outbound reads only to this caller's servers, for this patient, on one time budget.
        issuer = pending[0].issuer if pending is not None else None
        bound = gatherer.fhir.bound(issuer, body["context"]["patientId"])
        use_case = replace(use_case, gatherer=replace(gatherer, fhir=bound))
    try:
        answer = use_case.answer(body, service_id)
    except PrefetchMissing as exc:
        return json_response(problem(412, "Precondition failed", str(exc)), 412, PROBLEM)
    cards = door.cards(answer, base_url, body["context"]["patientId"])
    if cards:
        door.remember(service_id, cards)
    return json_response({"cards": cards})


@router.post("/cds-services/{service_id}", summary="Call a CDS Hooks service")
async def cds_call(service_id: str, request: Request, door: Door) -> Response:
    authorised = await _authorised_body(service_id, door, request)
    if isinstance(authorised, Response):
        return authorised
    raw, pending = authorised
    # One hop: a slow FHIR server or store must not hold the event loop.
    return await run_in_threadpool(
        _answer_call, door, service_id, raw, pending, door.base_url(request)
    )


def _record_feedback(door: CdsDoor, service_id: str, raw: bytes, pending: Pending) -> Response:
    """Spend the token, parse and store a feedback body (in a worker thread)."""
    body = _spent_and_parsed(door, raw, pending)
    if isinstance(body, Response):
        return body
    if door.feedback is None:
        return json_response(
            problem(503, "Feedback store not configured", "no store"), 503, PROBLEM
        )
    try:
        summaries = door.registry.summaries(_feedback_cards(body))
        n = door.feedback.record(service_id, body, summaries)
    except ValueError as exc:
        return json_response(problem(400, "Bad request", str(exc)), 400, PROBLEM)
    return json_response({"stored": n})


@router.post("/cds-services/{service_id}/feedback", summary="Feedback on cards")
async def cds_feedback(service_id: str, request: Request, door: Door) -> Response:
    authorised = await _authorised_body(service_id, door, request)
    if isinstance(authorised, Response):
        return authorised
    return await run_in_threadpool(_record_feedback, door, service_id, *authorised)


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


def _feedback_cards(body: object) -> list[str]:
    """Return the card uuids a feedback body names (the body is validated when stored)."""
    items = body.get("feedback") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return []
    return [i["card"] for i in items if isinstance(i, dict) and isinstance(i.get("card"), str)]
