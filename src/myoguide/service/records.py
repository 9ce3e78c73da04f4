"""The patient-record use cases: patients and their course read; answers and decisions written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from myoguide.domain.result import RecommendationSet
from myoguide.service.ports import (
    Answer,
    Clock,
    Patient,
    PatientCourse,
    RecordStore,
    VisitEntry,
)


@dataclass(frozen=True)
class Logged:
    """An answer logged for a patient: its id, the visit saved with it, and if that was new."""

    answer_id: int
    visit_id: int | None = None
    # False when the form's save key had already saved this visit: nothing new was written.
    new_visit: bool = True


@dataclass(frozen=True)
class PatientFile:
    """A patient with the whole record: visits, answers and decisions, in order."""

    patient: Patient
    course: PatientCourse

    def visit(self, visit_id: int) -> VisitEntry | None:
        """Return the visit with this id and the answers shown at it, or None."""
        return next((e for e in self.course.visits if e.visit.id == visit_id), None)


@dataclass(frozen=True)
class PatientRecords:
    """A patient's record read and written, writes stamped with the injected clock."""

    store: RecordStore
    clock: Clock

    # ---- reads --------------------------------------------------------------------------------

    def patients(self) -> Sequence[Patient]:
        """Return every patient (the store orders them by label)."""
        return self.store.list_patients()

    def patient(self, patient_id: int) -> Patient | None:
        """Return the patient with this id, or None."""
        return self.store.get_patient(patient_id)

    def patient_file(self, patient_id: int) -> PatientFile | None:
        """Return the patient and the whole record, or None if there is no such patient."""
        patient = self.store.get_patient(patient_id)
        if patient is None:
            return None
        return PatientFile(patient, self.store.timeline(patient_id))

    def answer(self, answer_id: int) -> Answer | None:
        """Return a logged answer, or None."""
        return self.store.get_answer(answer_id)

    def export(self, patient_id: int) -> dict[str, Any] | None:
        """Return the patient's record as JSON-ready data, or None if there is no such patient."""
        if self.store.get_patient(patient_id) is None:
            return None
        return self.store.export_patient(patient_id)

    # ---- writes -------------------------------------------------------------------------------

    def add_patient(self, label: str) -> Patient:
        """Create a patient under a unique pseudonymous label (ValueError names `label`)."""
        return self.store.add_patient(label)

    def ehr_patient(self, ehr_iss: str, ehr_link: str) -> Patient:
        """Return the local patient of an EHR's patient (by keyed hash), made on first launch."""
        # A pseudonymous label from the keyed hash: never a name, never the EHR's own id.
        # A longer prefix only if a patient added by hand already bears the shorter label.
        for size in (12, 20, 32):
            try:
                return self.store.linked_patient(
                    ehr_iss, ehr_link, f"EHR patient {ehr_link[:size]}"
                )
            except ValueError as exc:
                if not str(exc).startswith("label:"):
                    raise
        return self.store.linked_patient(ehr_iss, ehr_link, f"EHR patient {ehr_link}")

    def log_answer(
        self,
        patient_id: int,
        state: Mapping[str, Any],
        result: RecommendationSet,
        result_json: Mapping[str, Any],
        visit_date: dt.date | None,
    ) -> int:
        """Log an answer shown for a patient, first saving the visit if a date is given."""
        return self.save(patient_id, state, result, result_json, visit_date).answer_id

    def save(
        self,
        patient_id: int,
        state: Mapping[str, Any],
        result: RecommendationSet,
        result_json: Mapping[str, Any],
        visit_date: dt.date | None,
        save_key: str | None = None,
    ) -> Logged:
        """Log an answer for a patient, saving the visit once per save key if a date is given.

        A repeated submit of the same form returns the visit and answer saved the first time.
        """
        if visit_date is not None:
            # One transaction: a crash can never leave a visit without the answer shown at it.
            visit_id, answer_id, new = self.store.save_visit_answer(
                patient_id,
                visit_date,
                state,
                result_json,
                result.knowledge_version,
                self.clock.now(),
                save_key,
            )
            return Logged(answer_id, visit_id, new)
        # Every answer shown for a patient is logged, saved visit or not.
        return Logged(
            self.store.log_answer(
                patient_id, None, state, result_json, result.knowledge_version, self.clock.now()
            )
        )

    def record_decision(
        self,
        answer_id: int,
        decision: str,
        chosen: str | None,
        reason: str | None,
        *,
        clinician: str | None = None,
        reason_code: str | None = None,
    ) -> None:
        """Record what the clinician (username or fhirUser) decided (LookupError if unknown).

        ValueError names the field when the choice was not offered or the code is unknown.
        """
        self.store.record_decision(
            answer_id,
            decision,
            chosen,
            reason,
            self.clock.now(),
            clinician=clinician,
            reason_code=reason_code,
        )
