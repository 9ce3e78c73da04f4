"""The pages' shared parts: their dependencies, templates, CSRF check and sign-in gate."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from myoguide.adapters.text import (
    COURSE_WORDS,
    STANCE_WORDS,
    alternatives,
    cited,
    source_words,
)
from myoguide.adapters.web import controls, pieces
from myoguide.adapters.web.answer import LEVEL_WORDS, fold, sources, summarize
from myoguide.adapters.web.forms import (
    CONFIRM_FIELD,
    COURSE_UNITS,
    DIAGNOSES,
    DOSE_UNITS,
    FIELD_LABELS,
    OUTCOMES,
    field_label,
)
from myoguide.adapters.web.ports import UserStore
from myoguide.adapters.web.session import (
    PENDING_KEY,
    SESSION_KEY,
    PendingForms,
    SignIn,
    session_user,
)
from myoguide.adapters.web.trace import trace_rows
from myoguide.adapters.web.words import (
    DECISION_LABELS,
    REASON_CHOICES,
    fact_words,
    headline,
    linked,
    plain_message,
    rec_heading,
)
from myoguide.adapters.words import unit_words
from myoguide.domain.result import RecommendationSet
from myoguide.domain.units import fmt
from myoguide.service import ChartHandoffs, Clock, PatientRecords, Service

_OUTCOME_WORDS = {"intolerance": "not tolerated"}
MEASURE_WORDS = {"weight_kg": "Weight (kg)", "height_cm": "Height (cm)", "bsa_m2": "BSA (m2)"}


@dataclass
class WebDeps:
    """What the pages need: the use cases, the user store, the clock and the settings."""

    service: Service
    records: PatientRecords
    users: UserStore
    secret_key: str
    require_login: bool
    clock: Clock
    signin: SignIn | None = None  # server-side sessions and throttle; None: cookie only
    secure_cookies: bool = False  # served over https (--public-url https://...)
    handoffs: ChartHandoffs | None = None  # states a CDS card's link hands over; None: none


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("myoguide.adapters.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        # The templates ship inside the package: no file is looked at again per request.
        auto_reload=False,
        # A plain dict: the few templates stay loaded, and each include is one lookup (no LRU).
        cache_size=-1,
    )
    env.globals.update(
        source_words=source_words,
        alternatives=alternatives,
        stance_words=STANCE_WORDS,
        course_words=COURSE_WORDS,
        measure_words=MEASURE_WORDS,
        fmt=fmt,
        fact_words=fact_words,
        field_label=field_label,
        level_words=LEVEL_WORDS,
        reason_choices=REASON_CHOICES,
        headline=lambda result: headline(result.course, (w.code for w in result.warnings)),
        rec_heading=rec_heading,
        # Warnings may name a field or an outcome as the engine writes it (ADR 0015's words).
        plain=lambda message: plain_message(message, FIELD_LABELS),
        linked=linked,
        decision_labels=DECISION_LABELS,
        controls=controls.Controls,
        check_list=pieces.check_list,
        dose_line=pieces.dose_line,
        agent_line=pieces.agent_line,
        source_line=pieces.source_line,
        agents_line=pieces.agents_line,
        checks_print=pieces.checks_print,
        trace_body=pieces.trace_body,
    )
    return env


class Site:
    """The pages' shared parts, built once: dependencies, templates and form choices."""

    def __init__(self, deps: WebDeps) -> None:
        self.deps = deps
        self.service = deps.service
        self.records = deps.records
        self.kb = kb = deps.service.knowledge
        self.env = _env()
        agents = [(a.id, a.display) for a in kb.agents]
        self.agent_labels = dict(agents)
        self.course_agents = frozenset(a.id for a in kb.agents if a.given_as_course)
        self.pending = PendingForms()
        self.sources = sources()
        self.citations = {c.id: c for c in kb.citations}
        self.choices: dict[str, Any] = {
            "diagnoses": [(d, d.replace("_", " ")) for d in DIAGNOSES] + [("other", "other")],
            "tristate": [("unknown", "unknown"), ("yes", "yes"), ("no", "no")],
            "severities": [(s, s) for s in ("mild", "moderate", "severe")],
            "agents": agents,
            # The script preselects the unit of the drug's dose period (from the knowledge).
            "agent_periods": {a.id: a.dose_period or "" for a in kb.agents},
            "units": [(u, u) for u in DOSE_UNITS],
            "course_units": [(u, unit_words(u)) for u in COURSE_UNITS],
            "course_agents": sorted(self.course_agents),
            # Worded so that one typed letter chooses each ("i", "n", "r", "u").
            "outcomes": [(o, _OUTCOME_WORDS.get(o, o.replace("_", " "))) for o in OUTCOMES],
            "confirm_field": CONFIRM_FIELD,
        }
        # The form's data attributes depend only on the knowledge: written once, not per page.
        attr = self.env.from_string("{{ v|tojson|forceescape }}")
        periods = attr.render(v=self.choices["agent_periods"])
        course = attr.render(v=self.choices["course_agents"])
        self.choices |= {"periods_attr": Markup(periods), "course_agents_attr": Markup(course)}

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """Render a template with the layout's common values."""
        html = self.env.get_template(name).render(
            csrf=_csrf_token(request),
            user=request.session.get("user"),
            version=self.kb.knowledge_version,
            source_title=self.kb.title,
            review_date=self.sources.topic_last_updated,
            review_through=self.sources.literature_current_through,
            ref_links=self.sources.links,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def answer_context(self, result: RecommendationSet) -> dict[str, Any]:
        """Return the answer and the references and citations it rests on, for the template."""
        refs, cites = cited(result)
        by_id = self.citations
        return {
            "result": result,
            "summary": summarize(result, self.kb),
            "folded": fold(result),
            "trace": trace_rows(result, self.kb),
            "references": [(n, self.kb.references[n - 1].citation) for n in refs],
            "citations": [(c, by_id[c].citation) for c in cites if c in by_id],
        }


class CsrfError(Exception):
    pass


class LoginRequired(Exception):
    def __init__(self, path: str, *, ended: bool = False) -> None:
        super().__init__(path)
        self.path = path
        self.ended = ended  # the cookie named a session the store has ended (idle, 12 h)


def _csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def _site(request: Request) -> Site:
    site: Site = request.app.state.web
    return site


async def _site_dep(request: Request) -> Site:
    # Async on purpose: FastAPI runs a plain function dependency on the thread pool, a hop
    # off the event loop and back on every page for an attribute read.
    return _site(request)


SiteDep = Annotated[Site, Depends(_site_dep)]


async def signed_in(request: Request, site: SiteDep) -> None:
    """Let the request through if sign-in is not required or the user is signed in."""
    if not site.deps.require_login:
        return
    signin = site.deps.signin
    user = (
        await session_user(request, signin.sessions)
        if signin is not None
        else request.session.get("user")
    )
    if not user:
        target = request.url.path
        if request.method == "GET" and request.url.query:
            # Kept through sign-in: a CDS card's link (/assess?chart=...) must still open it.
            target += "?" + request.url.query
        # Said once: the ended session's secret leaves the cookie with this redirect.
        ended = signin is not None and isinstance(request.session.pop(SESSION_KEY, None), str)
        # The visit form sent after the session ended: what was typed comes back after sign-in.
        kept = ended and request.method == "POST" and request.url.path in KEPT_FORMS
        if kept and await _keep_form(request, site):
            target = "/assess"
        raise LoginRequired(target, ended=ended)


# Forms whose typed entries are kept through a forced sign-in.
KEPT_FORMS = frozenset({"/assess"})


async def _keep_form(request: Request, site: Site) -> bool:
    """Keep a posted form for its user's next sign-in; False if it is not theirs to keep.

    Read only for a cookie this site signed for a session it ended, and with its CSRF token
    matching: an anonymous caller's body is never parsed here.
    """
    user = request.session.get("user")
    expected = request.session.get("csrf")
    if not isinstance(user, str) or not isinstance(expected, str):
        return False
    form = await request.form()
    data = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    if not hmac.compare_digest(expected, data.get("csrf", "")):
        return False
    data.pop("csrf", None)
    request.session[PENDING_KEY] = site.pending.put(user, data)
    return True


async def signed_in_user(request: Request, site: Site) -> str | None:
    """Return who is signed in (a live server-side session's user), or None."""
    signin = site.deps.signin
    if signin is not None:
        return await session_user(request, signin.sessions)
    user = request.session.get("user")
    return user if isinstance(user, str) else None


async def csrf_form(request: Request) -> dict[str, str]:
    """Return the posted form's text fields once its CSRF token matches the session's."""
    form = await request.form()
    data = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    expected = request.session.get("csrf")
    given = data.get("csrf", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
        raise CsrfError
    return data


Form = Annotated[dict[str, str], Depends(csrf_form)]

# Every page but sign-in and sign-out needs a signed-in user (when sign-in is required).
pages = APIRouter(include_in_schema=False, dependencies=[Depends(signed_in)])


async def csrf_failed(request: Request, _: Exception) -> Response:
    return _site(request).page(
        request,
        "home.html",
        403,
        title="Form expired",
        nav="",
        notice="The form had expired or did not come from this site; try again.",
    )


async def login_required(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    ended = "&ended=1" if exc.ended else ""
    return RedirectResponse(f"/login?next={quote(exc.path)}{ended}", status_code=303)
