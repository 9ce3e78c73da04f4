"""The issued-card registry in the database: the CardRegistry port, shared by every worker."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select

from myoguide.adapters.store.db import make_sessions, write_connection
from myoguide.adapters.store.tables import IssuedCardModel
from myoguide.service.ports import Clock

# Feedback comes within minutes or days; older rows only grow the table.
KEEP_FOR = timedelta(days=90)
MAX_LOOKUP = 500


class StoreCardRegistry:
    """Issued cards (uuid -> "topic: summary") kept in the store, pruned past KEEP_FOR."""

    # Rows past KEEP_FOR are deleted at most this often: the write-behind flush comes four
    # times a second, and a purge on each was a second statement for nothing.
    PURGE_SECONDS = 30.0

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._sessions = make_sessions(engine)
        self._clock = clock
        self._purged: datetime | None = None

    def remember(self, service_id: str, cards: Mapping[str, str]) -> None:
        """Record issued cards in one transaction, dropping those older than KEEP_FOR when due."""
        if not cards:
            return
        now = self._clock.now()
        purge = self._purged is None or (now - self._purged).total_seconds() >= self.PURGE_SECONDS
        rows = [
            {"uuid": u, "service_id": service_id[:200], "summary": s, "issued_at": now}
            for u, s in cards.items()
        ]
        # One Core executemany: ORM objects cost about 50 us a card, in a batch of dozens
        # written while requests wait on the same writer lock and the GIL.
        with write_connection(self._engine) as conn:
            conn.execute(insert(IssuedCardModel), rows)
            if purge:
                conn.execute(
                    delete(IssuedCardModel).where(IssuedCardModel.issued_at < now - KEEP_FOR)
                )
        if purge:
            self._purged = now

    def summaries(self, uuids: Sequence[str]) -> Mapping[str, str]:
        """Return the summary of each known uuid (at most MAX_LOOKUP are looked up)."""
        wanted = []
        for u in uuids[:MAX_LOOKUP]:
            try:
                wanted.append(str(uuid.UUID(u)))
            except ValueError:
                continue
        if not wanted:
            return {}
        query = select(IssuedCardModel.uuid, IssuedCardModel.summary).where(
            IssuedCardModel.uuid.in_(wanted)
        )
        with self._sessions() as session:
            return dict(session.execute(query).tuples().all())
