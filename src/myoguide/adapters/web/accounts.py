"""Sign-in and sign-out pages, throttled and with server-side sessions when the store has them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from myoguide.adapters.web.session import PENDING_KEY, begin, client_address, end, wait_words
from myoguide.adapters.web.site import Form, Site, SiteDep

# Open without sign-in: they are how one signs in.
accounts = APIRouter(include_in_schema=False)


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
    # A form kept through this sign-in (its entries stay server-side; the page checks the user).
    pending = request.session.get(PENDING_KEY)
    if signin is not None:
        await begin(request, signin.sessions, username)
    else:
        request.session.clear()
        request.session["user"] = username
    if isinstance(pending, str):
        request.session[PENDING_KEY] = pending
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
