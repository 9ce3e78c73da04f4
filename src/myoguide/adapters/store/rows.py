"""The record store's rows: patients, visits, answers and decisions, read and exported."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from myoguide.adapters.store.tables import AnswerModel, DecisionModel, PatientModel, VisitModel


class RecordNotFound(LookupError):
    """A patient, visit or answer id that the store does not hold."""


@dataclass(frozen=True)
class PatientRow:
    """A patient: a pseudonymous label and when it was created."""

    id: int
    label: str
    created_at: datetime
    ehr_iss: str | None = None  # the EHR a SMART launch linked it to, if any


@dataclass(frozen=True)
class PatientSummary:
    """One line of the patient list: visit count, last visit date and last answer's course."""

    id: int
    label: str
    visit_count: int
    last_visit_date: date | None
    last_course: str | None


@dataclass(frozen=True)
class VisitRow:
    """A visit: its date and the patient state recorded that day."""

    id: int
    patient_id: int
    visit_date: date
    state: Mapping[str, Any] = field(hash=False, repr=False)
    created_at: datetime


@dataclass(frozen=True)
class AnswerRow:
    """An answer shown to a clinician, with the state it was computed from."""

    id: int
    patient_id: int
    visit_id: int | None
    shown_at: datetime
    knowledge_version: str
    course: str
    scenario: str | None
    top_recommendation: str | None
    input: Mapping[str, Any] = field(hash=False, repr=False)
    result: Mapping[str, Any] = field(hash=False, repr=False)


@dataclass(frozen=True)
class DecisionRow:
    """What the clinician did with an answer, and why."""

    id: int
    answer_id: int
    decided_at: datetime
    decision: str
    chosen_recommendation: str | None
    reason: str | None
    clinician: str | None = None  # username or fhirUser; None if nobody was signed in
    reason_code: str | None = None


@dataclass(frozen=True)
class AnswerRecord:
    """An answer with its decisions, oldest first."""

    answer: AnswerRow
    decisions: tuple[DecisionRow, ...]


@dataclass(frozen=True)
class VisitRecord:
    """A visit with the answers shown for it, oldest first."""

    visit: VisitRow
    answers: tuple[AnswerRecord, ...]


@dataclass(frozen=True)
class PatientRecord:
    """A patient's timeline: visits by date then id, and answers logged without a visit."""

    patient: PatientRow
    visits: tuple[VisitRecord, ...]
    unattached_answers: tuple[AnswerRecord, ...]

    @property
    def answers(self) -> tuple[AnswerRecord, ...]:
        """Return every answer of the patient, ordered by when it was shown, then id."""
        every = [a for v in self.visits for a in v.answers] + list(self.unattached_answers)
        return tuple(sorted(every, key=lambda a: (a.answer.shown_at, a.answer.id)))


def read_patient(row: PatientModel) -> PatientRow:
    """Return a patient row read from its table row."""
    return PatientRow(id=row.id, label=row.label, created_at=row.created_at, ehr_iss=row.ehr_iss)


def read_visit(row: VisitModel) -> VisitRow:
    """Return a visit row read from its table row."""
    return VisitRow(
        id=row.id,
        patient_id=row.patient_id,
        visit_date=row.visit_date,
        state=row.state,
        created_at=row.created_at,
    )


def read_answer(row: AnswerModel) -> AnswerRow:
    """Return an answer row read from its table row."""
    return AnswerRow(
        id=row.id,
        patient_id=row.patient_id,
        visit_id=row.visit_id,
        shown_at=row.shown_at,
        knowledge_version=row.knowledge_version,
        course=row.course,
        scenario=row.scenario,
        top_recommendation=row.top_recommendation,
        input=row.input,
        result=row.result,
    )


def read_decision(row: DecisionModel) -> DecisionRow:
    """Return a decision row read from its table row."""
    return DecisionRow(
        id=row.id,
        answer_id=row.answer_id,
        decided_at=row.decided_at,
        decision=row.decision,
        chosen_recommendation=row.chosen_recommendation,
        reason=row.reason,
        clinician=row.clinician,
        reason_code=row.reason_code,
    )


def patient_json(row: PatientRow) -> dict[str, Any]:
    """Return a patient as JSON-ready data."""
    return {
        "id": row.id,
        "label": row.label,
        "created_at": row.created_at.isoformat(),
        "ehr_iss": row.ehr_iss,
    }


def visit_json(row: VisitRow) -> dict[str, Any]:
    """Return a visit as JSON-ready data."""
    return {
        "id": row.id,
        "patient_id": row.patient_id,
        "visit_date": row.visit_date.isoformat(),
        "created_at": row.created_at.isoformat(),
        "state": dict(row.state),
    }


def answer_json(row: AnswerRow) -> dict[str, Any]:
    """Return an answer as JSON-ready data."""
    return {
        "id": row.id,
        "patient_id": row.patient_id,
        "visit_id": row.visit_id,
        "shown_at": row.shown_at.isoformat(),
        "knowledge_version": row.knowledge_version,
        "course": row.course,
        "scenario": row.scenario,
        "top_recommendation": row.top_recommendation,
        "input": dict(row.input),
        "result": dict(row.result),
    }


def decision_json(row: DecisionRow) -> dict[str, Any]:
    """Return a decision as JSON-ready data."""
    return {
        "id": row.id,
        "answer_id": row.answer_id,
        "decided_at": row.decided_at.isoformat(),
        "decision": row.decision,
        "chosen_recommendation": row.chosen_recommendation,
        "reason": row.reason,
        "clinician": row.clinician,
        "reason_code": row.reason_code,
    }
