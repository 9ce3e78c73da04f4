"""The issued-card registry in the database: the CardRegistry port, shared by every worker."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta

from sqlalchemy import Engine, delete, select

from myoguide.adapters.store.db import make_sessions, write_session
from myoguide.adapters.store.tables import IssuedCardModel
from myoguide.service.ports import Clock

# Feedback comes within minutes or days; older rows only grow the table.
KEEP_FOR = timedelta(days=90)
MAX_LOOKUP = 500


class StoreCardRegistry:
    """Issued cards (uuid -> "topic: summary") kept in the store, pruned past KEEP_FOR."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._sessions = make_sessions(engine)
        self._clock = clock

    def remember(self, service_id: str, cards: Mapping[str, str]) -> None:
        """Record issued cards in one transaction, dropping those older than KEEP_FOR."""
        if not cards:
            return
        now = self._clock.now()
        rows = [
            IssuedCardModel(uuid=u, service_id=service_id[:200], summary=s, issued_at=now)
            for u, s in cards.items()
        ]
        with write_session(self._sessions) as session:
            session.add_all(rows)
            session.execute(
                delete(IssuedCardModel).where(IssuedCardModel.issued_at < now - KEEP_FOR)
            )

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
