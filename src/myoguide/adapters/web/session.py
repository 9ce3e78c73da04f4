"""Server-side sessions and the sign-in throttle, as the pages use them.

The signed cookie holds only a random session secret; the store says whose it is. Signing out
(or a password change) deletes the store's row, so a copied cookie stops working at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from myoguide.adapters.web.ports import SessionStore, SigninThrottle

SESSION_KEY = "sid"
# The cookie's pointer to a form kept through a forced sign-in (the form itself stays here).
PENDING_KEY = "pending"


class PendingForms:
    """Forms posted after their session ended, kept server-side for their user's next sign-in.

    Each is taken once, by a random token the cookie carries (never the URL), and only by the user
    whose session posted it; it lapses after `ttl` seconds. In memory: a restart forgets them.
    """

    def __init__(self, ttl: float = 30 * 60, limit: int = 1000) -> None:
        self.ttl, self.limit = ttl, limit
        self._forms: OrderedDict[str, tuple[str, dict[str, str], float]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, user: str, values: Mapping[str, str]) -> str:
        """Keep a user's typed form and return the one-time token that finds it."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._forms[token] = (user, dict(values), time.monotonic() + self.ttl)
            while len(self._forms) > self.limit:
                self._forms.popitem(last=False)  # the oldest goes first
        return token

    def take(self, token: str, user: str | None) -> dict[str, str] | None:
        """Return and forget the form under a token, if it is live and was this user's."""
        with self._lock:
            found = self._forms.pop(token, None)
        if found is None or user is None:
            return None
        owner, values, until = found
        if owner != user or time.monotonic() > until:
            return None
        return values


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
