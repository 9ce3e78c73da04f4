"""Launches in flight between the redirect out and the redirect back.

Each is kept in a signed cookie of the browser that began it (so the `state` is bound to that
browser, and any worker process can finish it) and is used once: its state is marked in the
replay cache, which the composition root backs with the store shared by every worker. The
cookie holds the PKCE verifier and the nonce, never a token.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from itsdangerous import BadData, URLSafeTimedSerializer

from myoguide.service.ports import ReplayCache

PENDING_SECONDS: Final = 600  # a launch not finished in 10 minutes starts again
_KEEP: Final = 4  # launches in flight per browser (tabs); the oldest is dropped
_REPLAY_ISSUER: Final = "smart-launch-state"


@dataclass(frozen=True)
class Pending:
    """One launch in flight: which EHR, its state, PKCE verifier, nonce and endpoints."""

    iss: str  # as registered in the trust file
    state: str
    verifier: str
    nonce: str
    endpoints: Mapping[str, str]
    ehr_launch: bool
    started: float


class PendingLaunches:
    """Writes launches into the browser's cookie and takes each back once."""

    def __init__(
        self, secret_key: str, replay: ReplayCache, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._codec = URLSafeTimedSerializer(secret_key, salt="myoguide.smart.launch")
        self._replay = replay
        self._clock = clock

    def add(self, cookie: str | None, pending: Pending) -> str:
        """Return the new cookie value: this launch and the browser's other live ones."""
        kept = [p for p in self._load(cookie) if p.state != pending.state][-(_KEEP - 1) :]
        return self._codec.dumps([asdict(p) for p in [*kept, pending]])

    def take(self, cookie: str | None, state: str) -> Pending | None:
        """Return the launch of `state` from this browser's cookie, once; None otherwise."""
        found = [p for p in self._load(cookie) if hmac.compare_digest(p.state, state)]
        if not found:
            return None  # unknown, expired, or begun by another browser
        pending = found[0]
        digest = hashlib.sha256(state.encode()).hexdigest()
        until = pending.started + PENDING_SECONDS + 60
        if self._replay.seen(_REPLAY_ISSUER, digest, until):
            return None  # used already
        return pending

    def _load(self, cookie: str | None) -> list[Pending]:
        """Return the live launches a cookie holds (none if it is absent, forged or old)."""
        if not cookie or len(cookie) > 8000:
            return []
        try:
            items: Any = self._codec.loads(cookie, max_age=PENDING_SECONDS)
        except BadData:
            return []
        now = self._clock()
        out = []
        for item in items if isinstance(items, list) else []:
            try:
                pending = Pending(**item)
            except TypeError:
                continue
            if now - pending.started < PENDING_SECONDS:
                out.append(pending)
        return out
