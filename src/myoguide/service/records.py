"""The patient-record use cases: save a visit with its answer, record a decision."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from myoguide.domain.result import RecommendationSet
from myoguide.service.ports import Clock, RecordStore


@dataclass(frozen=True)
class PatientRecords:
    """Writes to a patient's record, stamped with the injected clock."""

    store: RecordStore
    clock: Clock

    def log_answer(
        self,
        patient_id: int,
        state: Mapping[str, Any],
        result: RecommendationSet,
        result_json: Mapping[str, Any],
        visit_date: dt.date | None,
    ) -> int:
        """Log an answer shown for a patient, first saving the visit if a date is given."""
        if visit_date is not None:
            # One transaction: a crash can never leave a visit without the answer shown at it.
            return self.store.log_visit_answer(
                patient_id,
                visit_date,
                state,
                result_json,
                result.knowledge_version,
                self.clock.now(),
            )[1]
        # Every answer shown for a patient is logged, saved visit or not.
        return self.store.log_answer(
            patient_id, None, state, result_json, result.knowledge_version, self.clock.now()
        )

    def record_decision(
        self, answer_id: int, decision: str, chosen: str | None, reason: str | None
    ) -> None:
        """Record what the clinician decided about an answer (LookupError if it is unknown)."""
        self.store.record_decision(answer_id, decision, chosen, reason, self.clock.now())
