"""Security state shared by every server process: used token ids, sessions, sign-in throttle."""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from myoguide.adapters.clock import SYSTEM_CLOCK
from myoguide.adapters.store.db import (
    driver_sql,
    make_sessions,
    note_write,
    write_cursor,
    write_session,
)
from myoguide.adapters.store.tables import (
    MAX_CLINICIAN,
    SigninThrottleModel,
    StoreHealthModel,
    TokenJtiModel,
    WebSessionModel,
)
from myoguide.errors import StoreUnavailable
from myoguide.service.ports import Clock

MAX_JTI = 500


@dataclass
class _Claim:
    """One token id waiting to be recorded, and what the write that took it found."""

    issuer: str
    jti: str
    expires_at: float
    done: bool = False
    seen: bool = True  # refused unless a committed write says otherwise
    failed: bool = False


class StoreReplayCache:
    """The ReplayCache port in the database, so every worker and a restart see the same ids.

    Calls of one process that arrive together share one transaction (group commit): a call
    queues its id and the first to take the writer's lock records every id queued, commits once
    (one fsync on SQLite) and tells each call what its id's row said. No call returns before
    the transaction holding its id has committed, so a replay is refused exactly as with one
    commit per call, across processes and restarts; concurrent calls no longer queue on
    SQLite's busy timeout (which sleeps) or on one fsync each.
    """

    # Expired ids are purged at most this often (per process), not on every call: the purge is a
    # second statement in a transaction every CDS request waits for.
    PURGE_SECONDS = 30.0

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._purged = -math.inf
        # One statement, built once, records the id or takes over a row whose token has expired;
        # a live row changes nothing, so no row returned means the id was seen (by any process).
        insert = (pg_insert if engine.dialect.name == "postgresql" else sqlite_insert)(
            TokenJtiModel
        )
        stmt = insert.values(
            issuer=bindparam("issuer"), jti=bindparam("jti"), expires_at=bindparam("expires_at")
        )
        record = stmt.on_conflict_do_update(
            index_elements=["issuer", "jti"],
            set_={"expires_at": stmt.excluded.expires_at},
            where=TokenJtiModel.expires_at <= bindparam("now"),
        ).returning(TokenJtiModel.jti)
        # Compiled once for the driver: every CDS call writes here (ADR 0044).
        self._record = driver_sql(record, engine)
        self._purge = driver_sql(
            delete(TokenJtiModel).where(TokenJtiModel.expires_at <= bindparam("now")), engine
        )
        self._live = driver_sql(
            select(TokenJtiModel.expires_at).where(
                TokenJtiModel.issuer == bindparam("issuer"), TokenJtiModel.jti == bindparam("jti")
            ),
            engine,
        )
        self._queue: list[_Claim] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()

    def seen(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Return True if (issuer, jti) was already recorded, else record it until expires_at."""
        if len(issuer) > MAX_JTI or len(jti) > MAX_JTI:
            # Not storable, so not provably fresh: treated as a replay (the token is refused).
            return True
        claim = _Claim(issuer, jti, expires_at)
        with self._queue_lock:
            self._queue.append(claim)
        with self._writer:
            if not claim.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                # In one order in every process: two batches never lock rows crosswise.
                batch.sort(key=lambda c: (c.issuer, c.jti))
                try:
                    self._write(batch)
                except BaseException:
                    # Nothing committed: every call of the batch is refused (this one re-raises).
                    for other in batch:
                        other.failed = other.done = True
                    raise
        if claim.failed:
            raise StoreUnavailable("the record cannot be written just now")
        return claim.seen

    def _write(self, batch: list[_Claim]) -> None:
        """Record a batch of ids in one transaction; mark each claim done once it committed."""
        now = float(self._clock())
        found: list[bool] = []
        with write_cursor(self._engine) as cursor:
            if now - self._purged >= self.PURGE_SECONDS:
                cursor.execute(self._purge.sql, self._purge.params({"now": now}))
                self._purged = now
            for claim in batch:
                key = {"issuer": claim.issuer, "jti": claim.jti}
                if claim.expires_at <= now:
                    # Never recorded (it could not be replayed later anyway); known only if live.
                    cursor.execute(self._live.sql, self._live.params(key))
                    rows = cursor.fetchall()
                    found.append(bool(rows) and rows[0][0] > now)
                else:
                    params = {**key, "expires_at": float(claim.expires_at), "now": now}
                    cursor.execute(self._record.sql, self._record.params(params))
                    # No row back: a live row of that id kept it (seen).
                    found.append(not cursor.fetchall())
        # Committed: only now may a call learn its id was not seen before.
        for claim, was_seen in zip(batch, found, strict=True):
            claim.seen, claim.done = was_seen, True


def _digest(token: str) -> str:
    """Return the stored form of a session secret: a leaked table holds no usable cookie."""
    return hashlib.sha256(token.encode()).hexdigest()


# A live session's idle deadline is pushed forward at most this often (one write a minute).
_TOUCH_EVERY = timedelta(seconds=60)


class SessionStore:
    """Server-side sessions: the cookie holds a random secret; the store says whose it is.

    A session ends `idle` after its last use (shared ward PCs) and `lifetime` after sign-in,
    whichever comes first. `expires_at` holds the nearer of the two.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock = SYSTEM_CLOCK,
        lifetime: timedelta = timedelta(hours=12),
        idle: timedelta = timedelta(minutes=15),
    ) -> None:
        self._sessions = make_sessions(engine)
        self._clock = clock
        self._lifetime = lifetime
        self._idle = min(idle, lifetime)
        self._touch_every = min(_TOUCH_EVERY, self._idle / 10)

    def start(self, username: str) -> str:
        """Open a session for a signed-in user and return its secret (for the cookie)."""
        token = secrets.token_urlsafe(32)
        now = self._clock.now()
        with write_session(self._sessions) as session:
            # Expired sessions are dropped as new ones start, so the table stays small.
            session.execute(delete(WebSessionModel).where(WebSessionModel.expires_at <= now))
            session.add(
                WebSessionModel(
                    id=_digest(token),
                    username=username[:MAX_CLINICIAN],
                    created_at=now,
                    expires_at=now + self._idle,
                )
            )
        return token

    def user_of(self, token: str) -> str | None:
        """Return the user of a live session, or None if it ended, expired or never was."""
        if not token or len(token) > 200:
            return None
        with self._sessions() as session:
            row = session.get(WebSessionModel, _digest(token))
        now = self._clock.now()
        if row is None or row.expires_at <= now:
            return None
        later = min(row.created_at + self._lifetime, now + self._idle)
        if later - row.expires_at >= self._touch_every:
            # Used again: the idle deadline moves, never past the absolute one.
            with write_session(self._sessions) as session:
                session.execute(
                    update(WebSessionModel)
                    .where(WebSessionModel.id == row.id)
                    .values(expires_at=later)
                )
        return row.username

    def end(self, token: str) -> None:
        """End one session (sign-out)."""
        with write_session(self._sessions) as session:
            session.execute(delete(WebSessionModel).where(WebSessionModel.id == _digest(token)))


@dataclass(frozen=True)
class ThrottlePolicy:
    """How failures slow and lock sign-in for one kind of key (an account or an address)."""

    free_failures: int
    lock_after: int
    lock_seconds: float = 15 * 60
    max_delay_seconds: float = 60
    forget_after_seconds: float = 24 * 3600

    def blocked_for(self, failures: int) -> float:
        """Return how long sign-in stays refused after this many failures in a row."""
        if failures >= self.lock_after:
            return self.lock_seconds
        if failures <= self.free_failures:
            return 0.0
        # Doubling delays: 1, 2, 4, ... seconds, capped.
        return float(min(2 ** (failures - self.free_failures - 1), self.max_delay_seconds))


ACCOUNT_POLICY = ThrottlePolicy(free_failures=3, lock_after=10)
# An address may be a ward's shared proxy: it gets more room before it is locked.
ADDRESS_POLICY = ThrottlePolicy(free_failures=10, lock_after=30)


class SigninThrottle:
    """Growing delays and a temporary lock per account and per address, kept in the store."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock = SYSTEM_CLOCK,
        account: ThrottlePolicy = ACCOUNT_POLICY,
        address: ThrottlePolicy = ADDRESS_POLICY,
    ) -> None:
        self._sessions = make_sessions(engine)
        self._clock = clock
        self._policies = {"user": account, "addr": address}

    @staticmethod
    def _keys(username: str, address: str) -> list[str]:
        return [f"user:{username.strip()[:200]}", f"addr:{address[:90]}"]

    def wait_seconds(self, username: str, address: str) -> int:
        """Return how many seconds sign-in stays refused for this account or address (0: go)."""
        now = self._clock.now()
        with self._sessions() as session:
            rows = session.scalars(
                select(SigninThrottleModel).where(
                    SigninThrottleModel.key.in_(self._keys(username, address))
                )
            ).all()
        wait = max([(r.blocked_until - now).total_seconds() for r in rows] + [0.0])
        return math.ceil(wait)

    def failed(self, username: str, address: str) -> None:
        """Count a failed sign-in against the account and the address."""
        now = self._clock.now()
        with write_session(self._sessions) as session:
            for key in self._keys(username, address):
                policy = self._policies[key.split(":", 1)[0]]
                row = session.get(SigninThrottleModel, key)
                if row is None:
                    row = SigninThrottleModel(
                        key=key, failures=0, last_failure_at=now, blocked_until=now
                    )
                    session.add(row)
                elif (now - row.last_failure_at).total_seconds() > policy.forget_after_seconds:
                    row.failures = 0
                row.failures += 1
                row.last_failure_at = now
                row.blocked_until = now + timedelta(seconds=policy.blocked_for(row.failures))

    def succeeded(self, username: str) -> None:
        """Forget the account's failures (the address's decay with time)."""
        with write_session(self._sessions) as session:
            session.execute(
                delete(SigninThrottleModel).where(
                    SigninThrottleModel.key == self._keys(username, "")[0]
                )
            )


class StoreProbe:
    """Tells whether the store can write now, by writing one row."""

    def __init__(self, engine: Engine, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._engine = engine
        self._sessions = make_sessions(engine)
        self._clock = clock

    def writable(self) -> bool:
        """Write the probe row; False if that fails or the last real write failed."""
        try:
            with write_session(self._sessions, probe=True) as session:
                session.merge(StoreHealthModel(id=1, checked_at=self._clock.now()))
        except StoreUnavailable:
            return False
        # A one-row write can fit in space SQLite already holds while a real save does not.
        return note_write(self._engine) is not False
