"""The CDS Hooks feedback use cases: record feedback, report on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from myoguide.service.ports import Clock, FeedbackReporter, FeedbackSink


@dataclass(frozen=True)
class Feedback:
    """Stores feedback on cards, stamped with the knowledge version and the time received."""

    sink: FeedbackSink
    knowledge_version: str
    clock: Clock

    def record(
        self, service_id: str, body: object, summaries: Mapping[str, str] | None = None
    ) -> int:
        """Validate and store a feedback body (ValueError names the field); return the count."""
        return self.sink.record_feedback(
            service_id, body, self.knowledge_version, self.clock.now(), summaries
        )


def report_feedback(reporter: FeedbackReporter) -> str:
    """Return acceptance and override rates by card and reason, as text."""
    return reporter.report_text()
