"""The clinician's pages: assessment form and answer, patients and their course, the guideline."""

from __future__ import annotations

import datetime as dt
import re
import secrets
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
from myoguide.adapters.web.carry import carry_forward, changes_since
from myoguide.adapters.web.forms import (
    CONFIRM_FIELD,
    FIELD_LABELS,
    FormData,
    blank_form,
    collect_errors,
    form_from_state,
    state_from_form,
)
from myoguide.adapters.web.session import PENDING_KEY
from myoguide.adapters.web.site import (
    CsrfError,
    Form,
    LoginRequired,
    Site,
    SiteDep,
    WebDeps,
    csrf_failed,
    csrf_form,
    login_required,
    pages,
    signed_in,
    signed_in_user,
)
from myoguide.adapters.web.timeline import STYLE as TIMELINE_STYLE
from myoguide.adapters.web.timeline import timeline_svg
from myoguide.adapters.web.words import (
    REASON_CHOICES,
    course_rows,
    decision_words,
    plain_message,
    state_lines,
)
from myoguide.errors import InputError
from myoguide.service import Chart, Clock

DECISIONS = ("accepted", "chose_other", "declined")
SAVE_KEY = "save_key"
# The form's save key as made below; anything else posted is ignored, not stored.
_SAVE_KEY_FORM = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _new_save_key(form: FormData) -> FormData:
    """Give a freshly opened form its own save key: one save per intent."""
    form.values[SAVE_KEY] = secrets.token_urlsafe(18)
    return form


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
    # After the pages: GET /assess stays the first route whose path matches, so another method
    # is answered 405 allowing GET, as before.
    app.add_route("/assess", assess, methods=["POST"], include_in_schema=False)
    app.include_router(accounts)


@pages.get("/", response_class=HTMLResponse)
async def home(request: Request, site: SiteDep) -> Response:
    return site.page(request, "home.html", title="Home", nav="")


@pages.get("/guideline", response_class=HTMLResponse)
async def guideline(request: Request, site: SiteDep) -> Response:
    return site.page(
        request,
        "guideline.html",
        title="Guideline",
        nav="guideline",
        kb=site.kb,
        agent_labels=site.agent_labels,
    )


@pages.get("/assess", response_class=HTMLResponse)
async def assess_form(
    request: Request,
    site: SiteDep,
    patient: int | None = None,
    visit: int | None = None,
    start_from: Annotated[int | None, Query(alias="from")] = None,
    chart: str | None = None,
    full: bool = False,
    blank: bool = False,
) -> Response:
    kept = request.session.pop(PENDING_KEY, None)
    if isinstance(kept, str):
        restored = await _kept_form(request, site, kept)
        if restored is not None:
            return restored
    if chart is not None and patient is None:
        return await _chart_form(request, site, chart, full)
    if patient is not None and visit is not None:
        # A past visit is opened read-only; only "new visit from this one" starts a form.
        return RedirectResponse(f"/patients/{patient}/visits/{visit}", status_code=303)
    form = blank_form()
    row = None
    notes: list[str] = []
    if patient is not None:
        file = await run_in_threadpool(site.records.patient_file, patient)
        if file is None:
            return site.page(request, "home.html", 404, title="Not found", nav="")
        row = file.patient
        visits = list(file.course.visits)
        entry = None
        if start_from is not None:
            entry = file.visit(start_from)
            if entry is None:
                return site.page(request, "home.html", 404, title="Not found", nav="")
        elif visits and not blank:
            entry = visits[-1]  # a new visit starts from the latest one
        if entry is not None:
            form, notes = carry_forward(entry, visits, site.agent_labels, site.choices)
        form.values["visit_date"] = site.deps.clock.today().isoformat()
        _new_save_key(form)
    return _form_page(request, site, form, row, carry_notes=notes)


async def _kept_form(request: Request, site: Site, token: str) -> Response | None:
    """The visit form as it was typed before a forced sign-in, for the same user only."""
    values = site.pending.take(token, await signed_in_user(request, site))
    if values is None:
        return None
    patient = None
    if values.get("patient_id", "").isdigit():
        patient = await run_in_threadpool(site.records.patient, int(values["patient_id"]))
    _, form = state_from_form(values, site.course_agents)
    form.errors.clear()  # shown as typed; it is checked when it is sent again
    return _form_page(request, site, form, patient, restored=True)


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
    # The mapping's words, with any raw URL or field name put in a clinician's words.
    lines = [
        plain_message(m, FIELD_LABELS) + (f" (x{n})" if n > 1 else "") for m, n in counts.items()
    ]
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
    carry_notes: list[str] | None = None,
    focus: str | None = None,
    confirm: str | None = None,
    chart_warnings: list[str] | None = None,
    chart_expired: bool = False,
    restored: bool = False,
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
        carry_notes=carry_notes or [],
        focus=focus,
        confirm=confirm,
        from_chart=chart_warnings is not None,
        chart_warnings=chart_warnings or [],
        chart_expired=chart_expired,
        restored=restored,
        **site.choices,
    )


async def assess(request: Request) -> Response:
    """Answer the posted visit form, or show it again with what needs changing."""
    # A plain Starlette route (see mount_web, ADR 0042): the pages' sign-in gate and CSRF check,
    # in the order their dependencies ran, without FastAPI solving them on every submit. A
    # dependency added to the `pages` router must be called here too.
    site: Site = request.app.state.web
    await signed_in(request, site)
    data = await csrf_form(request)
    patient = None
    if data.get("patient_id", "").isdigit():
        patient = await run_in_threadpool(site.records.patient, int(data["patient_id"]))
    raw_state, form = state_from_form(data, site.course_agents)
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
    parsed = collect_errors(site.service.parse, raw_state, form, age_stand_in)
    visit_date = None
    try:
        visit_date = _visit_date(data.get("visit_date"), site.deps.clock)
    except InputError as exc:
        form.error("visit_date", exc.message)
    if form.errors or visit_date is None:
        return _form_page(request, site, form, patient, 422)
    # Validated once: the state the error check passed is the one answered.
    assessment = (
        site.service.assess_chart(Chart(parsed, ()))
        if parsed is not None
        else site.service.assess(raw_state)
    )
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
    extra: dict[str, Any] = {}
    if patient is not None:
        key = data.get(SAVE_KEY, "")
        logged = await run_in_threadpool(
            site.records.save,
            patient.id,
            state,
            result,
            to_jsonable(result),
            visit_date if action == "save" else None,
            key if _SAVE_KEY_FORM.match(key) else None,
        )
        answer_id = logged.answer_id
        if not logged.new_visit:
            # The same form saved again (a double press, or Back and resubmit): show the visit
            # and answer saved the first time, and say so.
            saved = await run_in_threadpool(site.records.answer, logged.answer_id)
            shown = stored_result(saved.result) if saved is not None else None
            if saved is not None and shown is not None:
                repeated_changed = dict(saved.input) != state
                state = dict(saved.input)
                result = shown
                form = form_from_state(state)
                form.values[SAVE_KEY] = key
                form.values["visit_date"] = visit_date.isoformat()
                extra = {"repeated": True, "repeated_changed": repeated_changed}
        file = await run_in_threadpool(site.records.patient_file, patient.id)
        if file is not None:
            since, changed = changes_since(
                file.course.visits, state, visit_date, site.agent_labels, logged.visit_id
            )
            extra |= {"since": since, "changed": changed}
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
        **extra,
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
    visits = list(file.course.visits)
    earlier = visits[: visits.index(entry)]  # in date order: the visits before this one
    since, changed = changes_since(earlier, visit.state, visit.visit_date, site.agent_labels)
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
        since=since,
        changed=changed,
        **context,
    )


@pages.post("/answers/{answer_id}/decision")
async def decision(request: Request, answer_id: int, site: SiteDep, data: Form) -> Response:
    answer = await run_in_threadpool(site.records.answer, answer_id)
    patient = await run_in_threadpool(site.records.patient, answer.patient_id) if answer else None
    if answer is None or patient is None:
        return site.page(
            request,
            "home.html",
            404,
            title="Not found",
            nav="",
            notice="That answer could not be found.",
        )
    typed = {k: (data.get(k) or "").strip() for k in ("decision", "chosen", "reason_code")}
    typed["reason"] = (data.get("reason") or "").strip()[:500]
    result = stored_result(answer.result)
    if result is None:
        return site.page(
            request,
            "home.html",
            422,
            title="Answer unreadable",
            nav="",
            notice="That answer can no longer be read, so no decision can be recorded on it.",
        )
    errors = _decision_errors(typed, result)
    if not errors:
        try:
            await run_in_threadpool(
                site.records.record_decision,
                answer_id,
                typed["decision"],
                None if typed["decision"] == "declined" else typed["chosen"] or None,
                typed["reason"] or None,
                # Who decided: the account, or a SMART launch's fhirUser.
                clinician=await signed_in_user(request, site),
                reason_code=typed["reason_code"] or None,
            )
        except ValueError as exc:
            # The store has the last word on what was offered; its message names the field.
            field, _, message = str(exc).partition(": ")
            errors["reason_code" if field == "reason_code" else "chosen"] = message or str(exc)
    if errors:
        return await _decision_again(request, site, answer, patient, result, typed, errors)
    return RedirectResponse(f"/patients/{patient.id}", status_code=303)


def _decision_errors(typed: dict[str, str], result: Any) -> dict[str, str]:
    """Return what is wrong with a posted decision, by field, in the clinician's words."""
    errors: dict[str, str] = {}
    offered = {r.id: r for r in result.recommendations}
    first = [r.id for r in result.recommendations if r.rank == 1]
    choice, chosen = typed["decision"], typed["chosen"]
    if choice not in DECISIONS:
        errors["decision"] = "choose what you decided"
    elif chosen and chosen not in offered:
        errors["chosen"] = "choose one of the options this answer offered"
    elif choice == "chose_other" and not chosen:
        errors["chosen"] = "choose the option you chose from the list"
    elif choice == "accepted" and not chosen and len(first) > 1:
        errors["chosen"] = "the first choices are tied: choose the one you accepted"
    elif choice == "accepted" and chosen and chosen not in first:
        errors["chosen"] = (
            "this is not a first choice: mark “Chose another option”, or choose a first choice"
        )
    if typed["reason_code"] and typed["reason_code"] not in dict(REASON_CHOICES):
        errors["reason_code"] = "choose a reason from the list"
    return errors


async def _decision_again(
    request: Request,
    site: Site,
    answer: Any,
    patient: Any,
    result: Any,
    typed: dict[str, str],
    errors: dict[str, str],
) -> Response:
    """The answer again with the decision form as it was typed, and what needs changing."""
    file = await run_in_threadpool(site.records.patient_file, patient.id)
    entry = file.visit(answer.visit_id) if file and answer.visit_id is not None else None
    when = entry.visit.visit_date.isoformat() if entry else ""
    form = form_from_state(answer.input)
    return site.page(
        request,
        "assess.html",
        422,
        title="Assessment",
        nav="assess",
        form=form,
        patient=patient,
        answer_id=answer.id,
        saved=entry is not None,
        entered=state_lines(answer.input),
        visit_date=when,
        focus=None,
        confirm=None,
        autofocus_answer=False,
        decision_form=typed,
        decision_errors=errors,
        **site.choices,
        **site.answer_context(result),
    )


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
