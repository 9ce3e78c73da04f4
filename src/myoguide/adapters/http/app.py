"""The HTTP door: the JSON API, CDS Hooks 2.0 services and OpenAPI docs, on one FastAPI app."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from myoguide.adapters.cdshooks.cards import DraftOrder, discovery, order_cards, patient_view_cards
from myoguide.adapters.cdshooks.security import (
    TokenError,
    TokenVerifier,
    bearer_token,
    operation_outcome,
)
from myoguide.adapters.fhir.mapping import bundle_to_state
from myoguide.adapters.jsonio import dumps, loads
from myoguide.adapters.schemas import decimals_as_numbers
from myoguide.bootstrap import Service
from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import AGENT_NAMES, PatientState, dec
from myoguide.domain.units import to_mg_per_day, to_mg_per_week
from myoguide.errors import InputError

log = logging.getLogger("myoguide.http")

# What the FHIR mapping needs, as CDS Hooks prefetch templates.
PREFETCH: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "weight": "Observation?patient={{context.patientId}}&code=http://loinc.org|29463-7"
    "&_sort=-date&_count=1",
    "height": "Observation?patient={{context.patientId}}&code=http://loinc.org|8302-2"
    "&_sort=-date&_count=1",
}
SERVICES = {
    "myoguide-patient-view": "patient-view",
    "myoguide-order-select": "order-select",
    "myoguide-order-sign": "order-sign",
}
JSON = "application/json"
PROBLEM = "application/problem+json"


class FhirClient(Protocol):
    """A port for reading from the EHR's FHIR server when prefetch is absent."""

    def read(self, base_url: str, query: str, access_token: str | None) -> Mapping[str, Any]:
        """Return the JSON resource or Bundle at `base_url/query`; raise LookupError if none."""
        ...


class FeedbackSink(Protocol):
    """A port for storing CDS Hooks feedback durably."""

    def record_feedback(
        self,
        service_id: str,
        body: object,
        knowledge_version: str,
        summaries: Mapping[str, str] | None = None,
    ) -> int:
        """Validate and store a feedback body; return the number of items stored."""
        ...


@dataclass
class HttpSettings:
    """Settings the composition root passes to the app."""

    max_body_bytes: int = 1_000_000
    insecure_dev: bool = False
    public_base_url: str | None = None  # what `aud` must equal, when behind a proxy


@dataclass
class AppDeps:
    """Everything the HTTP app needs, built in one place (bootstrap)."""

    service: Service
    verifier: TokenVerifier | None
    fhir: FhirClient
    feedback: FeedbackSink | None
    today: Callable[[], dt.date]
    settings: HttpSettings = field(default_factory=HttpSettings)


class BodyLimit:
    """ASGI middleware answering 413 when a request body exceeds the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_json(
                send, 413, _problem(413, "Payload too large", f"limit is {self.max_bytes} bytes")
            )
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _send_json(
                send, 413, _problem(413, "Payload too large", f"limit is {self.max_bytes} bytes")
            )


class _TooLarge(Exception):
    pass


async def _send_json(send: Send, status: int, body: Mapping[str, Any]) -> None:
    data = dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}


def _json(body: object, status: int = 200, media: str = JSON) -> Response:
    return Response(dumps(body), status_code=status, media_type=media)


def create_app(deps: AppDeps) -> FastAPI:
    """Build the FastAPI app around the service and its ports."""
    app = FastAPI(
        title="myoguide",
        version=deps.service.knowledge.knowledge_version,
        description="Decision support for recurrent and resistant DM/PM in adults. "
        "It supports, and does not replace, clinical judgment.",
    )
    app.add_middleware(BodyLimit, max_bytes=deps.settings.max_body_bytes)
    service = deps.service
    kb = service.knowledge
    rx = _rx_index(service)  # built once: the knowledge does not change while serving
    # Card uuid -> "topic: summary" of cards shown lately, so feedback can be reported by card.
    issued: OrderedDict[str, str] = OrderedDict()

    def remember(cards: list[dict[str, Any]]) -> None:
        for card in cards:
            topic = card["source"].get("topic", {}).get("code", "")
            issued[card["uuid"]] = f"{topic}: {card['summary']}" if topic else card["summary"]
        while len(issued) > 50_000:
            issued.popitem(last=False)

    async def read_json(request: Request) -> object:
        raw = await request.body()
        try:
            return loads(raw)
        except ValueError as exc:
            raise InputError("(body)", f"not valid JSON: {exc}") from None

    @app.exception_handler(InputError)
    async def input_error(_: Request, exc: InputError) -> Response:
        return _json(_problem(422, "Unusable input", exc.message, field=exc.field), 422, PROBLEM)

    @app.post(
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
                    "content": {
                        JSON: {"schema": {"$ref": "#/components/schemas/RecommendationSet"}}
                    },
                },
                "422": {"description": "Unusable input; `field` names it"},
            },
        },
    )
    async def recommendations(request: Request) -> Response:
        result = service.recommend(await read_json(request))
        return _json(result)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return _json({"status": "ok", "knowledge_version": kb.knowledge_version})

    @app.get("/cds-services", summary="CDS Hooks discovery")
    async def cds_discovery() -> Response:
        return _json(discovery(PREFETCH))

    async def authorise(request: Request) -> Response | None:
        verifier = deps.verifier
        if verifier is None:
            return None
        base = deps.settings.public_base_url
        audience = (base.rstrip("/") + request.url.path) if base else str(request.url).split("?")[0]
        token = bearer_token(request.headers.get("authorization"))
        try:
            # Verification may fetch a JWKS over the network: keep it off the event loop.
            await run_in_threadpool(verifier.verify, token, audience=audience)
        except TokenError as exc:
            log.info("refused CDS call: %s", exc.reason)
            status = 503 if exc.reason == "jwks_unavailable" else 401
            return _json(operation_outcome(exc), status, "application/fhir+json")
        return None

    async def cds_body(service_id: str, request: Request) -> Response | object:
        """Return the parsed body of an authorised call to a known service, or the refusal."""
        if service_id not in SERVICES:
            return _json(
                _problem(404, "Unknown service", f"no CDS service '{service_id}'"), 404, PROBLEM
            )
        refused = await authorise(request)
        if refused is not None:
            return refused
        try:
            data: object = loads(await request.body())
        except ValueError:
            return _json(_problem(400, "Bad request", "body is not valid JSON"), 400, PROBLEM)
        return data

    @app.post("/cds-services/{service_id}", summary="Call a CDS Hooks service")
    async def cds_call(service_id: str, request: Request) -> Response:
        body = await cds_body(service_id, request)
        if isinstance(body, Response):
            return body
        hook = SERVICES[service_id]
        problem = _check_hook_request(body, hook)
        if problem or not isinstance(body, dict):
            return _json(_problem(400, "Bad request", problem or "bad body"), 400, PROBLEM)
        try:
            bundle = _gather(body, deps.fhir)
        except _Missing as exc:
            return _json(_problem(412, "Precondition failed", str(exc)), 412, PROBLEM)
        mapped = bundle_to_state(bundle, evaluation_date=deps.today(), rxnorm_to_agent=rx)
        extra = [(w.code, w.message) for w in mapped.warnings]
        try:
            state = service.parse(mapped.state)
        except InputError as exc:
            return _json({"cards": [_unusable_card(body, exc, kb.disclaimer)]})
        context = body["context"]
        if hook == "patient-view":
            result = service.engine.recommend(state)
            cards = patient_view_cards(
                result,
                kb,
                state,
                hook_instance=body["hookInstance"],
                patient_id=context.get("patientId"),
                extra_warnings=extra,
            )
        else:
            drafts = _draft_orders(context, hook, rx)
            cards = order_cards(
                drafts, state, kb, hook_instance=body["hookInstance"], disclaimer=kb.disclaimer
            )
        remember(cards)
        return _json({"cards": cards})

    @app.post("/cds-services/{service_id}/feedback", summary="Feedback on cards")
    async def cds_feedback(service_id: str, request: Request) -> Response:
        body = await cds_body(service_id, request)
        if isinstance(body, Response):
            return body
        if deps.feedback is None:
            return _json(_problem(503, "Feedback store not configured", "no store"), 503, PROBLEM)
        try:
            n = await run_in_threadpool(
                deps.feedback.record_feedback, service_id, body, kb.knowledge_version, issued
            )
        except ValueError as exc:
            return _json(_problem(400, "Bad request", str(exc)), 400, PROBLEM)
        return _json({"stored": n})

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
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    _self_check(deps)
    return app


def _self_check(deps: AppDeps) -> None:
    """Answer one synthetic patient through mapping, engine and cards before serving.

    It fails closed (raises) if the knowledge cannot answer, and it loads every lazy import
    and cache up front so the first real request is not the slow one.
    """
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "self", "birthDate": "1960-01-01"}},
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "c",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "396230008"}]},
                }
            },
        ],
    }
    mapped = bundle_to_state(
        bundle, evaluation_date=deps.today(), rxnorm_to_agent=_rx_index(deps.service)
    )
    state = deps.service.parse(
        {
            **mapped.state,
            "disease_control_achieved": False,
            "flare": False,
            "weight": {"value": 70, "unit": "kg"},
            "height": {"value": 170, "unit": "cm"},
            "treatment_history": [
                {"agent": "prednisone", "outcome": "inadequate_response"},
                {"agent": "methotrexate", "outcome": "inadequate_response"},
            ],
        }
    )
    result = deps.service.engine.recommend(state)
    if not result.recommendations:
        raise RuntimeError("self-check: the knowledge gave no recommendation for resistant DM")
    cards = patient_view_cards(
        result, deps.service.knowledge, state, hook_instance="self-check", patient_id="self-check"
    )
    dumps({"cards": cards})
    order_cards(
        [],
        state,
        deps.service.knowledge,
        hook_instance="self-check",
        disclaimer=deps.service.knowledge.disclaimer,
    )


def _rx_index(service: Service) -> dict[str, str]:
    return {a.rxnorm: a.id for a in service.knowledge.agents if a.rxnorm}


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


class _Missing(Exception):
    pass


def _gather(body: dict[str, Any], fhir: FhirClient) -> dict[str, Any]:
    """Collect prefetched (or fetched) resources into one Bundle for the mapping."""
    prefetch = body.get("prefetch") or {}
    server = body.get("fhirServer")
    auth = body.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, dict) else None
    patient_id = body["context"]["patientId"]
    entries: list[dict[str, Any]] = []
    for key, template in PREFETCH.items():
        if key in prefetch:
            value = prefetch[key]
        elif isinstance(server, str) and server:
            query = template.replace("{{context.patientId}}", patient_id)
            try:
                value = fhir.read(server, query, token if isinstance(token, str) else None)
            except LookupError as exc:
                raise _Missing(
                    f"prefetch '{key}' absent and the FHIR server did not answer: {exc}"
                ) from None
        else:
            raise _Missing(f"prefetch '{key}' is absent and no fhirServer was given to ask")
        if value is None:
            continue  # the client found nothing for this key
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            entries.extend(e for e in value.get("entry") or [] if isinstance(e, dict))
        elif isinstance(value, dict):
            entries.append({"resource": value})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _draft_orders(context: dict[str, Any], hook: str, rx: Mapping[str, str]) -> list[DraftOrder]:
    """Reduce the draft MedicationRequests of an order hook to agents and doses."""
    drafts = context.get("draftOrders")
    entries = drafts.get("entry") if isinstance(drafts, dict) else None
    selections = context.get("selections") if hook == "order-select" else None
    selected = set(selections) if isinstance(selections, list) else None
    out: list[DraftOrder] = []
    for entry in entries or []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or res.get("resourceType") != "MedicationRequest":
            continue
        ref = f"MedicationRequest/{res.get('id', '?')}"
        if selected is not None and ref not in selected:
            continue
        # One definition of FHIR medication mapping: read the order as if it were active.
        probe = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": {**res, "status": "active"}}],
        }
        mapped = bundle_to_state(probe, evaluation_date=dt.date(2000, 1, 1), rxnorm_to_agent=rx)
        for med in mapped.state.get("current_medications") or []:
            agent = med.get("agent")
            if agent not in AGENT_NAMES:
                continue
            dose = med.get("dose")
            per_day = per_week = None
            if isinstance(dose, dict):
                value, unit = dec(float(dose["value"])), str(dose["unit"])
                per_day, per_week = to_mg_per_day(value, unit), to_mg_per_week(value, unit)
            out.append(DraftOrder(ref, agent, per_day, per_week))
    return out


def _unusable_card(body: dict[str, Any], exc: InputError, disclaimer: str) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"myoguide:{body['hookInstance']}:unusable")),
        "summary": "myoguide: the record lacks what is needed for a recommendation",
        "detail": f"The chart data could not be used ({exc.field}: {exc.message}). "
        f"No recommendation is made.\n\n_{disclaimer}_",
        "indicator": "warning",
        "source": {"label": "myoguide"},
    }


__all__ = ["PREFETCH", "AppDeps", "FeedbackSink", "FhirClient", "HttpSettings", "create_app"]
