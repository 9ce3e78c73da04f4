"""Chart hand-offs (the ChartHandoffs port): a card's state, an hour, under a hashed token."""

# The link a CDS card carries holds an opaque token only, never patient data (ADR 0014).

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, insert

from myoguide.adapters.clock import SYSTEM_CLOCK
from myoguide.adapters.store.db import make_sessions, write_connection
from myoguide.adapters.store.tables import ChartHandoffModel
from myoguide.adapters.store.validation import json_object
from myoguide.service.ports import Clock

log = logging.getLogger("myoguide.store")

LIFETIME = timedelta(minutes=60)
# Longer than any token this module makes: a longer one is not looked up at all.
MAX_TOKEN = 200


def new_token() -> str:
    """Return a fresh link token (256 random bits)."""
    return secrets.token_urlsafe(32)


def _digest(token: str) -> str:
    """Return the stored form of a token: a leaked table holds no usable link."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Handoff:
    """One hand-off whose token is already given out, checked as plain JSON, to be written."""

    token: str
    state: dict[str, Any]
    warnings: list[dict[str, str]]


def handoff(token: str, state: Mapping[str, Any], warnings: Sequence[tuple[str, str]]) -> Handoff:
    """Return a hand-off with a private plain-JSON copy of its data (ValueError if not JSON)."""
    plain = json_object(
        {"state": state, "warnings": [{"code": c, "message": m} for c, m in warnings]}, "handoff"
    )
    return Handoff(token, plain["state"], plain["warnings"])


class StoreChartHandoffs:
    """Hand-offs in the database, shared by every worker; expired rows purged as new ones come."""

    # Expired rows are deleted at most this often: the purge is a second statement.
    PURGE_SECONDS = 30.0

    def __init__(
        self, engine: Engine, *, clock: Clock = SYSTEM_CLOCK, lifetime: timedelta = LIFETIME
    ):
        self._engine = engine
        self._sessions = make_sessions(engine)
        self._clock = clock
        self._lifetime = lifetime
        self._purged: datetime | None = None

    def put(self, state: Mapping[str, Any], warnings: Sequence[tuple[str, str]]) -> str:
        """Keep a state and its data warnings now (one commit); return the token."""
        token = new_token()
        self.write([handoff(token, state, warnings)])
        return token

    def write(self, items: Sequence[Handoff]) -> None:
        """Store hand-offs in one transaction, stamped now; purge expired rows when due."""
        if not items:
            return
        now = self._clock.now()
        purge = self._purged is None or (now - self._purged).total_seconds() >= self.PURGE_SECONDS
        # One Core executemany for the whole batch (the write-behind hands over many at once);
        # through the ORM's bulk path it cost about twice as much CPU, on every CDS call.
        with write_connection(self._engine) as conn:
            if purge:
                conn.execute(delete(ChartHandoffModel).where(ChartHandoffModel.expires_at <= now))
            conn.execute(
                insert(ChartHandoffModel),
                [
                    {
                        "token_hash": _digest(h.token),
                        "state": h.state,
                        "warnings": h.warnings,
                        "created_at": now,
                        "expires_at": now + self._lifetime,
                    }
                    for h in items
                ],
            )
        if purge:
            self._purged = now

    def take(self, token: str) -> tuple[dict[str, Any], list[tuple[str, str]]] | None:
        """Return the state and warnings of a live token, or None; the row stays until expiry."""
        if not token or len(token) > MAX_TOKEN:
            return None
        with self._sessions() as session:
            row = session.get(ChartHandoffModel, _digest(token))
        if row is None or row.expires_at <= self._clock.now():
            return None
        return dict(row.state), [(w["code"], w["message"]) for w in row.warnings]


class WriteBehindHandoffs:
    """Hand-offs queued and written every FLUSH_SECONDS in a background thread."""

    # patient-view must not wait for a durable commit (an fsync on SQLite) per call. The token
    # is made at once; `take` writes the queue first, so this process finds its own hand-offs.
    # Another worker finds them after the next flush; those of the last interval are lost if
    # the process dies, and their link then reads "expired".

    FLUSH_SECONDS = 0.25

    def __init__(self, store: StoreChartHandoffs) -> None:
        self.store = store
        self.pending: list[Handoff] = []
        self.lock = threading.Lock()
        # Held while a batch is written, so `take` after `flush` sees what an earlier flush took.
        self.writing = threading.Lock()
        threading.Thread(target=self._run, name="chart-handoffs", daemon=True).start()

    def put(self, state: Mapping[str, Any], warnings: Sequence[tuple[str, str]]) -> str:
        """Queue a state and its warnings for the next flush; return the token at once."""
        item = handoff(new_token(), state, warnings)
        with self.lock:
            self.pending.append(item)
        return item.token

    def take(self, token: str) -> tuple[dict[str, Any], list[tuple[str, str]]] | None:
        """Write what is queued, then look the token up in the store."""
        self.flush()
        return self.store.take(token)

    def flush(self) -> None:
        """Write every queued hand-off to the store."""
        with self.writing:
            with self.lock:
                batch, self.pending = self.pending, []
            try:
                self.store.write(batch)
            except Exception:
                log.exception("could not record %d chart hand-offs", len(batch))

    def _run(self) -> None:
        while True:
            time.sleep(self.FLUSH_SECONDS)
            self.flush()
