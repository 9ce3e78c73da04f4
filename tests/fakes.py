"""Fakes for the service's ports, shared by the tests: a clock moved by hand, an in-memory store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class FakeClock:
    """The Clock port at a fixed instant the test moves by setting `at`."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        """Return the instant set."""
        return self.at

    def today(self) -> dt.date:
        """Return the date of the instant set."""
        return self.at.date()


@dataclass(frozen=True)
class FakePatient:
    id: int
    label: str


@dataclass(frozen=True)
class FakeVisit:
    id: int
    visit_date: dt.date
    state: Mapping[str, Any]


@dataclass(frozen=True)
class FakeAnswer:
    id: int
    patient_id: int
    visit_id: int | None
    course: str
    top_recommendation: str | None
    result: Mapping[str, Any]
    knowledge_version: str
    shown_at: dt.datetime
    input: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeDecision:
    answer_id: int
    decision: str
    chosen_recommendation: str | None
    reason: str | None
    decided_at: dt.datetime
    clinician: str | None = None
    reason_code: str | None = None


@dataclass(frozen=True)
class FakeAnswerEntry:
    answer: FakeAnswer
    decisions: list[FakeDecision]


@dataclass(frozen=True)
class FakeVisitEntry:
    visit: FakeVisit
    answers: list[FakeAnswerEntry]


@dataclass(frozen=True)
class FakeCourse:
    visits: list[FakeVisitEntry]


@dataclass
class MemoryRecords:
    """The RecordStore port in memory: what was written, readable back in order."""

    patients: list[FakePatient] = field(default_factory=list)
    visits: dict[int, list[FakeVisit]] = field(default_factory=dict)
    answers: list[FakeAnswer] = field(default_factory=list)
    decisions: list[FakeDecision] = field(default_factory=list)
    links: dict[tuple[str, str], FakePatient] = field(default_factory=dict)
    saved: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)

    def add_patient(self, label: str) -> FakePatient:
        if any(p.label == label for p in self.patients):
            raise ValueError(f"label: '{label}' is already used by another patient")
        patient = FakePatient(len(self.patients) + 1, label)
        self.patients.append(patient)
        self.visits[patient.id] = []
        return patient

    def linked_patient(self, ehr_iss: str, ehr_link: str, label: str) -> FakePatient:
        key = (ehr_iss, ehr_link)
        found = self.links.get(key)
        if found is None:
            found = self.links[key] = self.add_patient(label)
        return found

    def list_patients(self) -> list[FakePatient]:
        return sorted(self.patients, key=lambda p: p.label)

    def get_patient(self, patient_id: int) -> FakePatient | None:
        return next((p for p in self.patients if p.id == patient_id), None)

    def add_visit(
        self, patient_id: int, visit_date: dt.date, state: Mapping[str, Any]
    ) -> FakeVisit:
        if self.get_patient(patient_id) is None:
            raise LookupError(f"patient {patient_id} not found")
        visit = FakeVisit(sum(map(len, self.visits.values())) + 1, visit_date, dict(state))
        self.visits[patient_id].append(visit)
        return visit

    def log_visit_answer(
        self,
        patient_id: int,
        visit_date: dt.date,
        state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: dt.datetime,
    ) -> tuple[int, int]:
        visit = self.add_visit(patient_id, visit_date, state)
        answer = self.log_answer(patient_id, visit.id, state, result, knowledge_version, shown_at)
        return visit.id, answer

    def save_visit_answer(
        self,
        patient_id: int,
        visit_date: dt.date,
        state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: dt.datetime,
        save_key: str | None,
    ) -> tuple[int, int, bool]:
        if save_key is not None and (patient_id, save_key) in self.saved:
            return (*self.saved[(patient_id, save_key)], False)
        ids = self.log_visit_answer(
            patient_id, visit_date, state, result, knowledge_version, shown_at
        )
        if save_key is not None:
            self.saved[(patient_id, save_key)] = ids
        return (*ids, True)

    def get_answer(self, answer_id: int) -> FakeAnswer | None:
        return next((a for a in self.answers if a.id == answer_id), None)

    def log_answer(
        self,
        patient_id: int,
        visit_id: int | None,
        input_state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: dt.datetime,
    ) -> int:
        if self.get_patient(patient_id) is None:
            raise LookupError(f"patient {patient_id} not found")
        recs = result.get("recommendations") or []
        answer = FakeAnswer(
            len(self.answers) + 1,
            patient_id,
            visit_id,
            str(result.get("course")),
            recs[0]["id"] if recs else None,
            result,
            knowledge_version,
            shown_at,
            dict(input_state),
        )
        self.answers.append(answer)
        return answer.id

    def record_decision(
        self,
        answer_id: int,
        decision: str,
        chosen_recommendation: str | None,
        reason: str | None,
        decided_at: dt.datetime,
        *,
        clinician: str | None = None,
        reason_code: str | None = None,
    ) -> int:
        if not any(a.id == answer_id for a in self.answers):
            raise LookupError(f"answer {answer_id} not found")
        self.decisions.append(
            FakeDecision(
                answer_id,
                decision,
                chosen_recommendation,
                reason,
                decided_at,
                clinician,
                reason_code,
            )
        )
        return len(self.decisions)

    def timeline(self, patient_id: int) -> FakeCourse:
        entries = []
        for visit in sorted(self.visits.get(patient_id, []), key=lambda v: v.visit_date):
            answers = [
                FakeAnswerEntry(a, [d for d in self.decisions if d.answer_id == a.id])
                for a in self.answers
                if a.visit_id == visit.id
            ]
            entries.append(FakeVisitEntry(visit, answers))
        return FakeCourse(entries)

    def export_patient(self, patient_id: int) -> dict[str, Any]:
        patient = self.get_patient(patient_id)
        assert patient is not None
        return {
            "label": patient.label,
            "visits": [e.visit.visit_date.isoformat() for e in self.timeline(patient_id).visits],
        }
