"""The clinician's pages: assessment form and answer, patients and their course, the guideline."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from typing import Annotated, Any

import msgspec
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from myoguide.adapters.jsonio import dumps, to_jsonable
from myoguide.adapters.web import chart_questions
from myoguide.adapters.web.accounts import accounts
from myoguide.adapters.web.answer import stored_result
from myoguide.adapters.web.forms import (
    CONFIRM_FIELD,
    FormData,
    blank_form,
    collect_errors,
    form_from_state,
    state_from_form,
)
from myoguide.adapters.web.site import (
    CsrfError,
    Form,
    LoginRequired,
    Site,
    SiteDep,
    WebDeps,
    csrf_failed,
    login_required,
    pages,
    signed_in_user,
)
from myoguide.adapters.web.timeline import STYLE as TIMELINE_STYLE
from myoguide.adapters.web.timeline import timeline_svg
from myoguide.adapters.web.words import course_rows, decision_words, state_lines
from myoguide.errors import InputError
from myoguide.service import Clock

DECISIONS = ("accepted", "chose_other", "declined")

__all__ = ["WebDeps", "mount_web"]


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
    app.add_exception_handler(CsrfError, csrf_failed)
    app.add_exception_handler(LoginRequired, login_required)
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
    full: bool = False,
) -> Response:
    if chart is not None and patient is None:
        return await _chart_form(request, site, chart, full)
    if patient is not None and visit is not None:
        # A past visit is opened read-only; only "new visit from this one" starts a form.
        return RedirectResponse(f"/patients/{patient}/visits/{visit}", status_code=303)
    form = blank_form()
    row = None
    source = None
    if patient is not None:
        if start_from is None:
            row = await run_in_threadpool(site.records.patient, patient)
        else:
            file = await run_in_threadpool(site.records.patient_file, patient)
            entry = file.visit(start_from) if file is not None else None
            if file is None or entry is None:
                return site.page(request, "home.html", 404, title="Not found", nav="")
            row, source = file.patient, entry.visit
            form = form_from_state(source.state)
        if row is None:
            return site.page(request, "home.html", 404, title="Not found", nav="")
        form.values["visit_date"] = site.deps.clock.today().isoformat()
    return _form_page(request, site, form, row, source_date=source.visit_date if source else None)


async def _chart_form(request: Request, site: Site, token: str, full: bool = False) -> Response:
    """The form filled from a CDS card's hand-off, or blank saying the link has expired."""
    handoffs = site.deps.handoffs
    found = await run_in_threadpool(handoffs.take, token) if handoffs is not None else None
    if found is None:
        # 200, not 410: the page is a working blank form, and an EHR's embedded browser may
        # put its own error page in place of a 4xx.
        return _form_page(request, site, blank_form(), None, chart_expired=True)
    state, warnings = found
    # A launch's hand-off names the local record its visit and decision are saved on.
    local = chart_questions.local_patient(warnings)
    patient = await run_in_threadpool(site.records.patient, local) if local else None
    if not full and chart_questions.from_launch(warnings):
        return chart_questions.page(
            request, site, token, state, warnings, state_lines(state), patient
        )
    counts: dict[str, int] = {}
    for _, message in chart_questions.plain(warnings):
        counts[message] = counts.get(message, 0) + 1
    lines = [m + (f" (x{n})" if n > 1 else "") for m, n in counts.items()]
    form = form_from_state(state)
    if patient is not None:
        form.values["visit_date"] = site.deps.clock.today().isoformat()
    return _form_page(request, site, form, patient, chart_warnings=lines)


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
        patient = await run_in_threadpool(site.records.patient, int(data["patient_id"]))
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
    unusual = [w for w in result.warnings if w.code in site.kb.warnings_in_scope("entry")]
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
    file = await run_in_threadpool(site.records.patient_file, patient_id)
    entry = file.visit(visit_id) if file is not None else None
    if file is None or entry is None:
        return site.page(request, "home.html", 404, title="Not found", nav="")
    patient = file.patient
    visit = entry.visit
    shown = entry.answers[-1] if entry.answers else None
    result = stored_result(shown.answer.result) if shown else None
    context = site.answer_context(result) if result else {"result": None}
    decisions = [decision_words(d, shown.answer.result) for d in shown.decisions] if shown else []
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
            # Who decided: the account, or a SMART launch's fhirUser.
            await signed_in_user(request, site),
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
    rows = await run_in_threadpool(site.records.patients)
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
        row = await run_in_threadpool(site.records.add_patient, label)
    except ValueError as exc:
        rows = await run_in_threadpool(site.records.patients)
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
    file = await run_in_threadpool(site.records.patient_file, patient_id)
    if file is None:
        return site.page(request, "home.html", 404, title="Not found", nav="")
    patient, record = file.patient, file.course
    points, rows = course_rows(record, site.agent_labels)
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
    data = await run_in_threadpool(site.records.export, patient_id)
    if data is None:
        return Response(status_code=404)
    return Response(
        dumps(data, pretty=True),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="patient-{patient_id}.json"'},
    )


def _visit_date(text: str | None, clock: Clock) -> dt.date:
    if not text:
        return clock.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError("visit_date", f"'{text}' is not a date") from None
