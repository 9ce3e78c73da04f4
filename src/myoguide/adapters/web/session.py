"""Server-side sessions and the sign-in throttle, as the pages use them.

The signed cookie holds only a random session secret; the store says whose it is. Signing out
(or a password change) deletes the store's row, so a copied cookie stops working at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from myoguide.adapters.web.ports import SessionStore, SigninThrottle

SESSION_KEY = "sid"


@dataclass(frozen=True)
class SignIn:
    """The stores sign-in uses: sessions and the throttle."""

    sessions: SessionStore
    throttle: SigninThrottle


def _token(request: Request) -> str | None:
    if "session" not in request.scope:
        return None
    token = request.session.get(SESSION_KEY)
    return token if isinstance(token, str) else None


async def session_user(request: Request, sessions: SessionStore) -> str | None:
    """Return the user of the request's live session, or None."""
    token = _token(request)
    if token is None:
        return None
    return await run_in_threadpool(sessions.user_of, token)


async def begin(request: Request, sessions: SessionStore, username: str) -> None:
    """Start a new session for a user who just signed in (a fresh secret: no fixation)."""
    token = await run_in_threadpool(sessions.start, username)
    request.session.clear()
    request.session[SESSION_KEY] = token
    request.session["user"] = username


async def end(request: Request, sessions: SessionStore) -> None:
    """End the request's session in the store and clear the cookie."""
    token = _token(request)
    if token is not None:
        await run_in_threadpool(sessions.end, token)
    request.session.clear()


def client_address(request: Request) -> str:
    """Return the peer address the throttle counts (the proxy's, behind one)."""
    return request.client.host if request.client else "unknown"


def wait_words(seconds: int) -> str:
    """Return a wait as a person reads it."""
    if seconds >= 90:
        return f"{(seconds + 59) // 60} minutes"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
