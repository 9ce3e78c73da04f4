"""SMART App Launch 2.0 routes: EHR and standalone launch, the redirect back, the chart in.

The OAuth 2.0 client is Authlib's (authorization code with PKCE S256, client_secret_basic for a
confidential client); the id_token is verified with joserfc. Every outbound call goes through
the FHIR client's guarded transport, governed by the EHR's trust entry. The access token lives
only in this request: no cookie, URL, page, store row or log line holds it.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

import httpx
import msgspec
import orjson
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from myoguide.adapters.fhir.gather import FhirGatherer
from myoguide.adapters.http.fhir_client import HttpxFhirClient, guarded_transport
from myoguide.adapters.smart.cards import SmartCards
from myoguide.adapters.smart.config import (
    EXTRA_KEYS,
    RESOURCE_KEYS,
    SmartEhr,
    SmartEhrs,
    same_url,
    scopes,
)
from myoguide.adapters.smart.evidence import evidence, resources_of
from myoguide.adapters.smart.idtoken import IdTokenError, verify_id_token
from myoguide.adapters.smart.pending import PENDING_SECONDS, Pending, PendingLaunches
from myoguide.adapters.web.ports import SessionStore
from myoguide.adapters.web.session import begin
from myoguide.service import CdsHooks, ChartHandoffs, HookAnswer, PrefetchMissing
from myoguide.service.ports import FhirClient

log = logging.getLogger("myoguide.smart")

COOKIE: Final = "myoguide_smart"
_CODE: Final = re.compile(r"[a-z_]{1,64}")  # an OAuth error code, shown; anything else is not
_MAX_DOC_BYTES: Final = 256_000
_TIMEOUT_SECONDS: Final = 10.0


class Refused(Exception):
    """A launch step refused; the page says `message` with `status`, nothing else is shown."""

    def __init__(self, status: int, heading: str, message: str, advice: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.heading = heading
        self.message = message
        self.advice = advice or "Open the app from the EHR again, or tell the administrator."


@dataclass
class SmartDeps:
    """What the SMART routes need, built by the composition root."""

    ehrs: SmartEhrs
    cds: CdsHooks  # the same reader (and validation) as a CDS call's prefetch
    fhir: HttpxFhirClient  # servers keyed by each EHR's iss
    handoffs: ChartHandoffs
    sessions: SessionStore
    public_base_url: str  # the redirect URL is built from it, never from the Host header
    secure_cookies: bool
    pending: PendingLaunches


def _deps(request: Request) -> SmartDeps:
    deps: SmartDeps = request.app.state.smart
    return deps


Deps = Annotated[SmartDeps, Depends(_deps)]
router = APIRouter(include_in_schema=False)


def _allowed_url(url: object, ehr: SmartEhr) -> str:
    """Return an endpoint URL named by the EHR's configuration if its trust entry allows it."""
    if not isinstance(url, str) or not url or len(url) > 2000:
        raise ValueError("missing")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
        raise ValueError("not a URL")
    if parts.scheme == "http" and not ehr.allow_http:
        raise ValueError("http not allowed")
    return url


async def _get_json(url: str, ehr: SmartEhr) -> dict[str, Any]:
    """GET a small JSON document from the EHR through the guarded transport (ValueError if not)."""
    body = bytearray()
    try:
        async with (
            httpx.AsyncClient(
                transport=guarded_transport(ehr.allow_private),
                follow_redirects=False,
                trust_env=False,
                timeout=_TIMEOUT_SECONDS,
            ) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > _MAX_DOC_BYTES:
                    raise ValueError("too large")
    except httpx.HTTPError as exc:
        raise ValueError(type(exc).__name__) from None
    doc = orjson.loads(body)
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    return doc


async def _discover(ehr: SmartEhr) -> dict[str, str]:
    """Read `<iss>/.well-known/smart-configuration`: the endpoints this launch uses."""
    try:
        doc = await _get_json(same_url(ehr.iss) + "/.well-known/smart-configuration", ehr)
        endpoints = {
            name: _allowed_url(doc.get(name), ehr)
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
        }
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("no issuer")
        methods = doc.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise ValueError("no S256")
    except ValueError as exc:
        log.info("SMART configuration of a registered EHR not usable: %s", exc)
        raise Refused(
            502,
            "The EHR could not be reached",
            "The EHR's SMART configuration could not be read or is not usable "
            "(it must name its authorization, token and key endpoints, its issuer and PKCE S256).",
        ) from None
    return {**endpoints, "issuer": issuer}


def _refused_page(request: Request, exc: Refused) -> Response:
    site = request.app.state.web
    response: Response = site.page(
        request,
        "smart.html",
        exc.status,
        title=exc.heading,
        nav="",
        heading=exc.heading,
        message=exc.message,
        advice=exc.advice,
    )
    return response


def _callback_url(deps: SmartDeps, request: Request) -> str:
    del request  # the Host header never shapes the redirect URL
    return deps.public_base_url.rstrip("/") + "/smart/callback"


def _oauth_client(ehr: SmartEhr, redirect_uri: str) -> AsyncOAuth2Client:
    """Authlib's client for this EHR: public (`none`) or confidential (client_secret_basic)."""
    return AsyncOAuth2Client(
        client_id=ehr.client_id,
        client_secret=ehr.client_secret,
        token_endpoint_auth_method="client_secret_basic" if ehr.client_secret else "none",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        transport=guarded_transport(ehr.allow_private),
        follow_redirects=False,
        trust_env=False,
        timeout=_TIMEOUT_SECONDS,
    )


@router.get("/smart/launch", response_class=HTMLResponse)
async def smart_launch(
    request: Request,
    deps: Deps,
    iss: Annotated[str | None, Query(max_length=2000)] = None,
    launch: Annotated[str | None, Query(max_length=4000)] = None,
) -> Response:
    """Start an EHR launch (with `launch`) or a standalone launch (without)."""
    ehr = deps.ehrs.get(iss)
    try:
        if ehr is None:
            raise Refused(
                400,
                "This EHR is not registered",
                "The app was launched by an EHR that is not registered with this myoguide "
                "(its FHIR address is not in the trust file's 'smart' list).",
                "Ask the administrator to register the EHR (see docs/smart.md).",
            )
        endpoints = await _discover(ehr)
    except Refused as exc:
        return _refused_page(request, exc)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = generate_token(64)
    extra = {"launch": launch} if launch else {}
    async with _oauth_client(ehr, _callback_url(deps, request)) as client:
        url, _ = client.create_authorization_url(
            endpoints["authorization_endpoint"],
            state=state,
            code_verifier=verifier,
            scope=scopes(ehr_launch=bool(launch)),
            aud=iss,  # as the EHR spelled it (registered iss matched without a trailing /)
            nonce=nonce,
            **extra,
        )
    pending = Pending(ehr.iss, state, verifier, nonce, endpoints, bool(launch), time.time())
    cookie = deps.pending.add(request.cookies.get(COOKIE), pending)
    response = RedirectResponse(url, status_code=302)
    # Lax: the browser sends it on the authorization server's top-level redirect back.
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=PENDING_SECONDS,
        path="/smart/",
        httponly=True,
        samesite="lax",
        secure=deps.secure_cookies,
    )
    return response


@router.get("/smart/callback", response_class=HTMLResponse)
async def smart_callback(
    request: Request,
    deps: Deps,
    code: Annotated[str | None, Query(max_length=4000)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Take the EHR's answer: exchange the code, verify who signed in, read the chart."""
    try:
        pending = deps.pending.take(request.cookies.get(COOKIE), state) if state else None
        ehr = deps.ehrs.get(pending.iss) if pending is not None else None
        if pending is None or ehr is None:
            raise Refused(
                400,
                "This launch is not known",
                "The answer from the EHR does not belong to a launch this browser started, "
                "or it was already used or has expired (launches last 10 minutes).",
            )
        if error is not None or not code:
            raise Refused(
                400,
                "The EHR did not sign you in",
                "The EHR's authorization server did not grant access"
                + (f" (it answered '{error}')." if error and _CODE.fullmatch(error) else "."),
            )
        target = await _complete(request, deps, ehr, pending, code)
    except Refused as exc:
        return _refused_page(request, exc)
    return RedirectResponse(target, status_code=303)


async def _complete(
    request: Request, deps: SmartDeps, ehr: SmartEhr, pending: Pending, code: str
) -> str:
    """Exchange the code, verify the id_token, read the chart and hand it over; the URL next."""
    async with _oauth_client(ehr, _callback_url(deps, request)) as client:
        try:
            token: Mapping[str, Any] = await client.fetch_token(
                pending.endpoints["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=pending.verifier,
            )
        except (OAuthError, httpx.HTTPError, ValueError) as exc:
            log.info("SMART token request refused: %s", type(exc).__name__)
            raise Refused(
                400,
                "The EHR did not sign you in",
                "The EHR's authorization server refused to exchange the code "
                "(it may have been used already or have expired).",
            ) from None
    access_token = token.get("access_token")
    token_type = token.get("token_type")
    if (
        not isinstance(access_token, str)
        or not access_token
        or not isinstance(token_type, str)
        or token_type.lower() != "bearer"
    ):
        raise Refused(
            400, "The EHR did not sign you in", "The EHR's answer held no bearer access token."
        )
    try:
        jwks = await _get_json(pending.endpoints["jwks_uri"], ehr)
    except ValueError:
        raise Refused(
            502, "The EHR could not be reached", "The EHR's signing keys could not be read."
        ) from None
    try:
        user = verify_id_token(
            token.get("id_token"),
            jwks,
            issuer=pending.endpoints["issuer"],
            client_id=ehr.client_id,
            nonce=pending.nonce,
        )
    except IdTokenError as exc:
        raise Refused(400, "Who is signed in could not be verified", str(exc) + ".") from None
    patient = token.get("patient")
    if not isinstance(patient, str) or not patient:
        raise Refused(
            400,
            "The patient context is missing",
            "The EHR did not say which patient the app was opened for (no 'patient' in its "
            "answer), so no chart was read.",
            "Open the app again from the patient's chart in the EHR.",
        )
    if not user.startswith(("https://", "http://")):
        # A relative fhirUser (e.g. Practitioner/123) is named with its EHR's FHIR base.
        user = same_url(ehr.iss) + "/" + user.lstrip("/")
    app_context = token.get("appContext")
    chosen = None
    # A CDS card's link: the EHR hands back the hand-off the card was made from.
    if (
        isinstance(app_context, str)
        and 0 < len(app_context) <= 200
        and await run_in_threadpool(deps.handoffs.take, app_context) is not None
    ):
        chosen = app_context
    if chosen is None:
        granted = token.get("scope")
        chosen = await run_in_threadpool(
            _read_chart,
            deps,
            ehr,
            patient,
            access_token,
            granted if isinstance(granted, str) else None,
        )
    await begin(request, deps.sessions, user)
    return f"/assess?chart={chosen}"


def _reads(permissions: str) -> bool:
    """Tell whether a scope's permissions allow reading: v2 letters with r, or v1 read or *."""
    v2 = permissions.split("?", 1)[0]
    return permissions in ("read", "*") or ("r" in v2 and set(v2) <= set("cruds"))


def _missing_scopes(granted: str | None) -> list[str]:
    """Return the resource types the granted scopes do not let the app read."""
    if granted is None:
        return []  # no scope in the answer: as asked (RFC 6749, 5.1)
    words = set(granted.split())
    missing = []
    for resource in RESOURCE_KEYS:
        readable = any(
            w.startswith((f"patient/{resource}.", "patient/*.", f"user/{resource}.", "user/*."))
            and _reads(w.split(".", 1)[1])
            for w in words
        )
        if not readable:
            missing.append(resource)
    return missing


class _Recording:
    """A FhirClient that keeps what it read, for the evidence beside each question."""

    def __init__(self, inner: FhirClient) -> None:
        self._inner = inner
        self.answers: list[Mapping[str, Any]] = []

    def read(self, base_url: str, query: str, access_token: str | None) -> Mapping[str, Any]:
        """Read through the guarded client and keep the answer."""
        answer = self._inner.read(base_url, query, access_token)
        self.answers.append(answer)
        return answer


def _read_chart(
    deps: SmartDeps, ehr: SmartEhr, patient: str, access_token: str, granted: str | None
) -> str:
    """Read the chart as a CDS call's prefetch is read, and keep it as a hand-off."""
    missing = _missing_scopes(granted)
    prefetch: dict[str, Any] = {}
    notes: list[tuple[str, str]] = []
    for resource in missing:
        # Marked as not read (never as empty): medication data then stays "not read".
        for key in EXTRA_KEYS.get(resource, (RESOURCE_KEYS[resource],)):
            prefetch[key] = {"resourceType": "OperationOutcome", "issue": []}
        notes.append(
            (
                "scope_not_granted",
                f"the EHR granted no access to {resource} (asked: patient/{resource}.rs)",
            )
        )
    body = {
        "context": {"patientId": patient},
        "fhirServer": same_url(ehr.iss),
        "fhirAuthorization": {"access_token": access_token},
        "prefetch": prefetch,
    }
    fhir = _Recording(deps.fhir.bound(same_url(ehr.iss), patient))
    service = deps.cds.service
    bound = replace(deps.cds, gatherer=FhirGatherer(fhir, deps.cds.templates))
    try:
        answer: HookAnswer = bound.answer(body, "myoguide-patient-view")
    except PrefetchMissing:
        raise Refused(
            502,
            "The chart could not be read",
            "The EHR's FHIR server did not give the patient's record (it refused the request, "
            "failed or took too long), so nothing was answered.",
        ) from None
    if answer.state is None:
        reason = (
            f"{answer.unusable.field}: {answer.unusable.message}"
            if answer.unusable is not None
            else "the chart names no dermatomyositis or polymyositis"
        )
        raise Refused(
            422,
            "The chart cannot be answered",
            f"The patient's chart was read, but it cannot be answered: {reason}.",
            "Check the chart in the EHR, or enter the facts by hand.",
        )
    state = msgspec.to_builtins(answer.state)
    today = service.today()

    def map_one(res: Mapping[str, Any]) -> Mapping[str, Any]:
        one = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": res}]}
        return service.map_record(one, today).state

    found = evidence(resources_of(fhir.answers), map_one)
    warnings = [*notes, *answer.data_warnings, *found]
    try:
        token = deps.handoffs.put(state, warnings)
    except ValueError:
        raise Refused(
            422, "The chart cannot be answered", "The chart's data could not be kept for the page."
        ) from None
    return token


def mount_smart(app: FastAPI, deps: SmartDeps, max_body_bytes: int = 1_000_000) -> None:
    """Add the SMART launch routes (after the pages: they render with the pages' layout), and
    the marking of CDS calls from registered EHRs, whose cards then link by `smart`."""
    app.state.smart = deps
    app.include_router(router)
    app.add_middleware(SmartCards, ehrs=deps.ehrs, max_bytes=max_body_bytes)


__all__ = ["SmartDeps", "mount_smart", "router"]
