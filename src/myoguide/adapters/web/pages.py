"""The clinician's pages: assessment form and answer, patients and their course, the guideline."""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from myoguide.adapters.jsonio import dumps, to_jsonable
from myoguide.adapters.text import (
    ACTION_WORDS,
    COURSE_WORDS,
    STANCE_WORDS,
    alternatives,
    cited,
    dose_words,
    source_words,
)
from myoguide.adapters.web.answer import LEVEL_WORDS, level, sources, stored_result, summarize
from myoguide.adapters.web.forms import (
    CONFIRM_FIELD,
    CONFIRM_WARNINGS,
    DIAGNOSES,
    DOSE_UNITS,
    OUTCOMES,
    FormData,
    blank_form,
    collect_errors,
    field_label,
    form_from_state,
    state_from_form,
)
from myoguide.adapters.web.session import (
    SESSION_KEY,
    SignIn,
    begin,
    client_address,
    end,
    session_user,
    wait_words,
)
from myoguide.adapters.web.timeline import STYLE as TIMELINE_STYLE
from myoguide.adapters.web.timeline import VisitPoint, timeline_svg
from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import dec
from myoguide.domain.units import fmt
from myoguide.errors import InputError
from myoguide.service import ChartHandoffs, Clock, PatientRecords, Service, UserStore
from myoguide.service.ports import PatientCourse

MEASURE_WORDS = {"weight_kg": "Weight (kg)", "height_cm": "Height (cm)", "bsa_m2": "BSA (m2)"}
DECISIONS = ("accepted", "chose_other", "declined")


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
    )
    env.globals.update(
        dose_words=dose_words,
        action_words=ACTION_WORDS,
        source_words=source_words,
        alternatives=alternatives,
        stance_words=STANCE_WORDS,
        course_words=COURSE_WORDS,
        measure_words=MEASURE_WORDS,
        fmt=fmt,
        fact_words=fact_words,
        field_label=field_label,
        level=level,
        level_words=LEVEL_WORDS,
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
        self.sources = sources()
        self.choices: dict[str, Any] = {
            "diagnoses": [(d, d.replace("_", " ")) for d in DIAGNOSES] + [("other", "other")],
            "tristate": [("unknown", "unknown"), ("yes", "yes"), ("no", "no")],
            "severities": [(s, s) for s in ("mild", "moderate", "severe")],
            "agents": agents,
            # The script preselects the unit of the drug's dose period (from the knowledge).
            "agent_periods": {a.id: a.dose_period or "" for a in kb.agents},
            "units": [(u, u) for u in DOSE_UNITS],
            "outcomes": [(o, o.replace("_", " ")) for o in OUTCOMES],
            "confirm_field": CONFIRM_FIELD,
        }

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
        by_id = {c.id: c for c in self.kb.citations}
        return {
            "result": result,
            "summary": summarize(result),
            "references": [(n, self.kb.references[n - 1].citation) for n in refs],
            "citations": [(c, by_id[c].citation) for c in cites if c in by_id],
        }


class _CsrfError(Exception):
    pass


class _LoginRequired(Exception):
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


SiteDep = Annotated[Site, Depends(_site)]


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
        raise _LoginRequired(target, ended=ended)


async def csrf_form(request: Request) -> dict[str, str]:
    """Return the posted form's text fields once its CSRF token matches the session's."""
    form = await request.form()
    data = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    expected = request.session.get("csrf")
    given = data.get("csrf", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
        raise _CsrfError
    return data


Form = Annotated[dict[str, str], Depends(csrf_form)]

# Every page but sign-in and sign-out needs a signed-in user (when sign-in is required).
pages = APIRouter(include_in_schema=False, dependencies=[Depends(signed_in)])
accounts = APIRouter(include_in_schema=False)


async def _csrf_failed(request: Request, _: Exception) -> Response:
    return _site(request).page(
        request,
        "home.html",
        403,
        title="Form expired",
        nav="",
        notice="The form had expired or did not come from this site; try again.",
    )


async def _login_required(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, _LoginRequired)
    ended = "&ended=1" if exc.ended else ""
    return RedirectResponse(f"/login?next={quote(exc.path)}{ended}", status_code=303)


def mount_web(app: FastAPI, deps: WebDeps) -> None:
    """Add the pages, their static files, sessions, CSRF checks and (if asked) login."""
    static = resources.files("myoguide.adapters.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_middleware(
        SessionMiddleware,
        secret_key=deps.secret_key,
        same_site="strict",
        https_only=deps.secure_cookies,
        max_age=12 * 3600,
    )
    app.state.web = Site(deps)
    app.add_exception_handler(_CsrfError, _csrf_failed)
    app.add_exception_handler(_LoginRequired, _login_required)
    app.include_router(pages)
    app.include_router(accounts)


@pages.get("/", response_class=HTMLResponse)
async def home(request: Request, site: SiteDep) -> Response:
    return site.page(request, "home.html", title="Home", nav="")


@pages.get("/guideline", response_class=HTMLResponse)
async def guideline(request: Request, site: SiteDep) -> Response:
    return site.page(request, "guideline.html", title="Guideline", nav="guideline", kb=site.kb)


@pages.get("/assess", response_class=HTMLResponse)
async def assess_form(
    request: Request,
    site: SiteDep,
    patient: int | None = None,
    visit: int | None = None,
    start_from: Annotated[int | None, Query(alias="from")] = None,
    chart: str | None = None,
) -> Response:
    if chart is not None and patient is None:
        return await _chart_form(request, site, chart)
    if patient is not None and visit is not None:
        # A past visit is opened read-only; only "new visit from this one" starts a form.
        return RedirectResponse(f"/patients/{patient}/visits/{visit}", status_code=303)
    form = blank_form()
    row = None
    source = None
    if patient is not None:
        row = await run_in_threadpool(site.records.store.get_patient, patient)
        if row is None:
            return site.page(request, "home.html", 404, title="Not found", nav="")
        if start_from is not None:
            record = await run_in_threadpool(site.records.store.timeline, patient)
            source = next((e.visit for e in record.visits if e.visit.id == start_from), None)
            if source is None:
                return site.page(request, "home.html", 404, title="Not found", nav="")
            form = form_from_state(source.state)
        form.values["visit_date"] = site.deps.clock.today().isoformat()
    return _form_page(request, site, form, row, source_date=source.visit_date if source else None)


async def _chart_form(request: Request, site: Site, token: str) -> Response:
    """The form filled from a CDS card's hand-off, or blank saying the link has expired."""
    handoffs = site.deps.handoffs
    found = await run_in_threadpool(handoffs.take, token) if handoffs is not None else None
    if found is None:
        # 200, not 410: the page is a working blank form, and an EHR's embedded browser may
        # put its own error page in place of a 4xx.
        return _form_page(request, site, blank_form(), None, chart_expired=True)
    state, warnings = found
    counts: dict[str, int] = {}
    for _, message in warnings:
        counts[message] = counts.get(message, 0) + 1
    lines = [m + (f" (x{n})" if n > 1 else "") for m, n in counts.items()]
    return _form_page(request, site, form_from_state(state), None, chart_warnings=lines)


def _form_page(
    request: Request,
    site: Site,
    form: FormData,
    patient: Any,
    status: int = 200,
    *,
    source_date: dt.date | None = None,
    focus: str | None = None,
    confirm: str | None = None,
    chart_warnings: list[str] | None = None,
    chart_expired: bool = False,
) -> Response:
    return site.page(
        request,
        "assess.html",
        status,
        title="Assessment",
        nav="assess",
        form=form,
        patient=patient,
        result=None,
        source_date=source_date.isoformat() if source_date else None,
        focus=focus,
        confirm=confirm,
        from_chart=chart_warnings is not None,
        chart_warnings=chart_warnings or [],
        chart_expired=chart_expired,
        **site.choices,
    )


@pages.post("/assess", response_class=HTMLResponse)
async def assess(request: Request, site: SiteDep, data: Form) -> Response:
    patient = None
    if data.get("patient_id", "").isdigit():
        patient = await run_in_threadpool(site.records.store.get_patient, int(data["patient_id"]))
    raw_state, form = state_from_form(data)
    action = data.get("action", "show")
    if action in ("add_med", "add_history"):
        # The form without its script: one more row, and the focus in it.
        # The form keeps one empty row after the filled ones: focus it, or add one if none.
        if action == "add_med":
            row = next(r for r in range(form.med_count + 1) if r not in form.med_rows)
            form.med_count = max(form.med_count, row + 1)
            focus = f"current_medications[{row}].agent"
        else:
            row = next(r for r in range(form.history_count + 1) if r not in form.history_rows)
            form.history_count = max(form.history_count, row + 1)
            focus = f"treatment_history[{row}].agent"
        return _form_page(request, site, form, patient, focus=focus)
    age_stand_in = float(site.kb.input_limits.age_years.min)
    collect_errors(site.service.parse, raw_state, form, age_stand_in)
    visit_date = None
    try:
        visit_date = _visit_date(data.get("visit_date"), site.deps.clock)
    except InputError as exc:
        form.error("visit_date", exc.message)
    if form.errors or visit_date is None:
        return _form_page(request, site, form, patient, 422)
    assessment = site.service.assess(raw_state)
    result = assessment.result
    unusual = [w for w in result.warnings if w.code in CONFIRM_WARNINGS]
    if unusual and data.get(CONFIRM_FIELD) != "on":
        # No dose is shown from a body size the engine finds unusual until it is confirmed.
        form.error(
            "weight.value",
            " ".join(w.message for w in unusual)
            + " No dose is shown until you tick “The weight and height are right”.",
        )
        return _form_page(request, site, form, patient, 422, confirm=CONFIRM_FIELD)
    # Stored as validated: agents by name, units as given, absent fields explicit.
    state = msgspec.to_builtins(assessment.state)
    answer_id = None
    if patient is not None:
        answer_id = await run_in_threadpool(
            site.records.log_answer,
            patient.id,
            state,
            result,
            to_jsonable(result),
            visit_date if action == "save" else None,
        )
    return site.page(
        request,
        "assess.html",
        title="Assessment",
        nav="assess",
        form=form,
        patient=patient,
        answer_id=answer_id,
        saved=action == "save" and patient is not None,
        entered=state_lines(state),
        visit_date=visit_date.isoformat(),
        focus=None,
        confirm=CONFIRM_FIELD if unusual else None,
        **site.choices,
        **site.answer_context(result),
    )


@pages.get("/patients/{patient_id}/visits/{visit_id}", response_class=HTMLResponse)
async def visit_page(request: Request, patient_id: int, visit_id: int, site: SiteDep) -> Response:
    patient = await run_in_threadpool(site.records.store.get_patient, patient_id)
    if patient is None:
        return site.page(request, "home.html", 404, title="Not found", nav="")
    record = await run_in_threadpool(site.records.store.timeline, patient_id)
    entry = next((e for e in record.visits if e.visit.id == visit_id), None)
    if entry is None:
        return site.page(request, "home.html", 404, title="Not found", nav="")
    visit = entry.visit
    shown = entry.answers[-1] if entry.answers else None
    result = stored_result(shown.answer.result) if shown else None
    context = site.answer_context(result) if result else {"result": None}
    decisions = [_decision_words(d, shown.answer.result) for d in shown.decisions] if shown else []
    return site.page(
        request,
        "visit.html",
        title=f"{patient.label}, visit of {visit.visit_date.isoformat()}",
        nav="patients",
        patient=patient,
        visit=visit,
        visit_date=visit.visit_date.isoformat(),
        entered=state_lines(visit.state),
        decisions=decisions,
        chosen_words="; ".join(d for d in decisions if d),
        answered_under=result.knowledge_version if result else None,
        **context,
    )


@pages.post("/answers/{answer_id}/decision")
async def decision(request: Request, answer_id: int, site: SiteDep, data: Form) -> Response:
    choice = data.get("decision", "")
    if choice not in DECISIONS:
        return site.page(request, "home.html", 422, title="Invalid decision", nav="")
    try:
        await run_in_threadpool(
            site.records.record_decision,
            answer_id,
            choice,
            data.get("chosen") or None,
            (data.get("reason") or "").strip()[:500] or None,
        )
    except LookupError:
        return site.page(
            request,
            "home.html",
            404,
            title="Not found",
            nav="",
            notice="That answer could not be found.",
        )
    except ValueError as exc:
        # A chosen option the answer did not offer, named (ADR 0018).
        return site.page(
            request, "home.html", 422, title="Invalid decision", nav="", notice=str(exc)
        )
    patient_id = data.get("patient_id", "")
    target = f"/patients/{patient_id}" if patient_id.isdigit() else "/patients"
    return RedirectResponse(target, status_code=303)


@pages.get("/patients", response_class=HTMLResponse)
async def patients(request: Request, site: SiteDep) -> Response:
    rows = await run_in_threadpool(site.records.store.list_patients)
    return site.page(
        request,
        "patients.html",
        title="Patients",
        nav="patients",
        patients=rows,
        error=None,
        label_value="",
    )


@pages.post("/patients")
async def add_patient(request: Request, site: SiteDep, data: Form) -> Response:
    label = data.get("label", "").strip()
    try:
        row = await run_in_threadpool(site.records.store.add_patient, label)
    except ValueError as exc:
        rows = await run_in_threadpool(site.records.store.list_patients)
        return site.page(
            request,
            "patients.html",
            422,
            title="Patients",
            nav="patients",
            patients=rows,
            error=str(exc),
            label_value=label,
        )
    return RedirectResponse(f"/patients/{row.id}", status_code=303)


@pages.get("/patients/{patient_id}", response_class=HTMLResponse)
async def patient_page(request: Request, patient_id: int, site: SiteDep) -> Response:
    patient = await run_in_threadpool(site.records.store.get_patient, patient_id)
    if patient is None:
        return site.page(request, "home.html", 404, title="Not found", nav="")
    record = await run_in_threadpool(site.records.store.timeline, patient_id)
    points, rows = _course(record, site.agent_labels)
    return site.page(
        request,
        "patient.html",
        title=patient.label,
        nav="patients",
        patient=patient,
        record=record,
        rows=rows,
        timeline=timeline_svg(points, labels=site.agent_labels, embed_style=False),
    )


@pages.get("/timeline.css")
async def timeline_css() -> Response:
    # The chart's own rules, linked rather than embedded: a strict CSP refuses inline styles.
    return Response(TIMELINE_STYLE, media_type="text/css")


@pages.get("/patients/{patient_id}/export.json")
async def export(patient_id: int, site: SiteDep) -> Response:
    if await run_in_threadpool(site.records.store.get_patient, patient_id) is None:
        return Response(status_code=404)
    data = await run_in_threadpool(site.records.store.export_patient, patient_id)
    return Response(
        dumps(data, pretty=True),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="patient-{patient_id}.json"'},
    )


def _login_page(
    request: Request,
    site: Site,
    next: str,
    error: str | None = None,
    status: int = 200,
    ended: bool = False,
) -> Response:
    """The sign-in page, going on to a safe local `next` after sign-in."""
    return site.page(
        request,
        "login.html",
        status,
        title="Sign in",
        nav="",
        next=_safe_next(next),
        error=error,
        ended=ended,
    )


@accounts.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, site: SiteDep, next: str = "/", ended: str = "") -> Response:
    return _login_page(request, site, next, ended=ended == "1")


@accounts.post("/login")
async def login(request: Request, site: SiteDep, data: Form) -> Response:
    username, signin = data.get("username", ""), site.deps.signin
    address = client_address(request)
    if signin is not None:
        # Refused before the password is checked: a locked account cannot be probed.
        wait = await run_in_threadpool(signin.throttle.wait_seconds, username, address)
        if wait > 0:
            error = f"Too many failed sign-ins: try again in {wait_words(wait)}."
            return _login_page(request, site, data.get("next", "/"), error, 429)
    ok = await run_in_threadpool(site.deps.users.verify, username, data.get("password", ""))
    if signin is not None:
        record = signin.throttle.succeeded if ok else signin.throttle.failed
        await run_in_threadpool(record, *((username,) if ok else (username, address)))
    if not ok:
        error = "User name or password is not right."
        return _login_page(request, site, data.get("next", "/"), error, 401)
    if signin is not None:
        await begin(request, signin.sessions, username)
    else:
        request.session.clear()
        request.session["user"] = username
    return RedirectResponse(_safe_next(data.get("next", "/")), status_code=303)


@accounts.post("/logout")
async def logout(request: Request, site: SiteDep, data: Form) -> Response:
    # The form is read only for its CSRF check: signing out is a state change.
    del data
    if site.deps.signin is not None:
        await end(request, site.deps.signin.sessions)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


def _safe_next(target: str) -> str:
    # Only local paths: never redirect off-site after sign-in.
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _visit_date(text: str | None, clock: Clock) -> dt.date:
    if not text:
        return clock.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError("visit_date", f"'{text}' is not a date") from None


def _agents_taken(state: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    names = [
        labels.get(str(m.get("agent")), str(m.get("agent")))
        for m in state.get("current_medications") or []
        if m.get("agent") != "prednisone"
    ]
    return ", ".join(names) or "none"


def _course(
    record: PatientCourse, labels: Mapping[str, str]
) -> tuple[list[VisitPoint], list[dict[str, Any]]]:
    """Return the timeline points and table rows of a patient's record."""
    points: list[VisitPoint] = []
    rows: list[dict[str, Any]] = []
    for entry in record.visits:
        visit = entry.visit
        last = entry.answers[-1] if entry.answers else None
        answer = last.answer if last else None
        top = answer.top_recommendation if answer else None
        latest = last.decisions[-1] if last and last.decisions else None
        decision = latest.decision if latest else None
        label = _option_label(answer.result, top) if answer and top else None
        # The chart shows what was chosen: another option when the clinician chose one.
        chosen = label
        if latest is not None and answer is not None:
            if latest.decision == "chose_other" and latest.chosen_recommendation:
                chosen = _option_label(answer.result, latest.chosen_recommendation)
            elif latest.decision == "declined":
                chosen = "none of the options"
        points.append(VisitPoint(visit.visit_date, visit.state, chosen, decision))
        rows.append(
            {
                "visit_id": visit.id,
                "date": visit.visit_date.isoformat(),
                "prednisone": _prednisone(visit.state),
                "flare": visit.state.get("flare") is True,
                "agents": _agents_taken(visit.state, labels),
                "course": COURSE_WORDS.get(answer.course, answer.course) if answer else "—",
                "top": label,
                "chosen": chosen if latest is not None else None,
                "decision": _decision_words(latest, answer.result if answer else {}),
            }
        )
    return points, rows


def _decision_words(latest: Any, result: Mapping[str, Any]) -> str | None:
    if latest is None:
        return None
    words = {"accepted": "accepted", "chose_other": "chose", "declined": "declined all"}
    text = words.get(latest.decision, latest.decision)
    if latest.chosen_recommendation and latest.decision == "chose_other":
        text += " " + _option_label(result, latest.chosen_recommendation)
    if latest.reason:
        text += f" ({latest.reason})"
    return str(text)


def _option_label(result: Mapping[str, Any], rec_id: str) -> str:
    for rec in result.get("recommendations", []):
        if rec.get("id") == rec_id:
            names = [a.get("display", a.get("agent")) for a in rec.get("agents", [])]
            return ", ".join(n for n in names if n) or rec_id.replace("_", " ")
    return rec_id.replace("_", " ")


def _prednisone(state: Mapping[str, Any]) -> str:
    for med in state.get("current_medications") or []:
        if med.get("agent") == "prednisone":
            dose = med.get("dose")
            if isinstance(dose, Mapping) and isinstance(dose.get("value"), int | float):
                return f"{fmt(dec(dose['value']))} {dose.get('unit')}"
            return "dose not given"
    return "off"


def fact_words(value: object) -> str:
    """Return a trace fact as a person reads it: yes/no, plain numbers, comma-joined lists."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return fmt(dec(value))
    if isinstance(value, list):
        return ", ".join(fact_words(v) for v in value) or "none"
    return str(value)


def state_lines(state: Mapping[str, Any]) -> list[str]:
    """Return what was entered, in short lines, for the answer and its printed summary."""
    lines = []
    dx = str(state.get("diagnosis", "")).replace("_", " ")
    lines.append(f"{fact_words(state.get('age_years'))} years, {dx}")
    for key in ("weight", "height"):
        item = state.get(key)
        if isinstance(item, Mapping):
            lines.append(f"{key} {fact_words(item.get('value'))} {item.get('unit')}")
    lines.append(
        f"control ever reached: {fact_words(state.get('disease_control_achieved'))}; "
        f"flare now: {fact_words(state.get('flare'))}"
        + (f"; severity {state['severity']}" if state.get("severity") else "")
    )
    meds = [
        f"{m.get('agent', '').replace('_', ' ')}"
        + (
            f" {fact_words(m['dose'].get('value'))} {m['dose'].get('unit')}"
            if isinstance(m.get("dose"), Mapping)
            else ""
        )
        for m in state.get("current_medications") or []
    ]
    lines.append("current: " + (", ".join(meds) or "none"))
    history = [
        f"{h.get('agent', '').replace('_', ' ')} ({str(h.get('outcome', '')).replace('_', ' ')})"
        for h in state.get("treatment_history") or []
    ]
    lines.append("history: " + (", ".join(history) or "none"))
    ild = state.get("ild")
    if isinstance(ild, Mapping) and ild.get("present"):
        lines.append("ILD" + (", refractory" if ild.get("refractory") else ""))
    if state.get("skin_predominant"):
        lines.append("rash is the refractory problem")
    lines.append(
        f"alternative diagnoses excluded: {fact_words(state.get('alternative_diagnoses_excluded'))}"
    )
    return lines
