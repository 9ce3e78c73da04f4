"""Adapts the feedback store to the service's FeedbackSink and FeedbackReporter ports."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from myoguide.adapters.store.db import make_engine, upgrade
from myoguide.adapters.store.feedback import FeedbackStore, parse_feedback, render_report


class StoreFeedbackSink:
    """Parses CDS Hooks feedback bodies and stores them, stamped with the time received."""

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store

    @classmethod
    def open(cls, url: str) -> StoreFeedbackSink:
        """Migrate the database at `url` to the current schema and open the store on it."""
        upgrade(url)
        return cls(FeedbackStore(make_engine(url)))

    def record_feedback(
        self,
        service_id: str,
        body: object,
        knowledge_version: str,
        received_at: datetime,
        summaries: Mapping[str, str] | None = None,
    ) -> int:
        """Validate a feedback body (ValueError names the field) and store it durably."""
        items = parse_feedback(body)
        return self.store.record(
            service_id, items, knowledge_version, received_at, summaries=summaries
        )

    def report_text(self) -> str:
        """Return acceptance and override rates by card and reason, as text."""
        return render_report(self.store.report())
