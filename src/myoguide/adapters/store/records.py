"""Durable record of patients' courses (visits, answers shown, decisions) and user accounts."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from myoguide.adapters.store.checks import has_nul
from myoguide.adapters.store.db import make_sessions, write_session
from myoguide.adapters.store.tables import (
    COURSES,
    DECISIONS,
    MAX_LABEL,
    MAX_RECOMMENDATION_ID,
    MAX_SCENARIO,
    MAX_USERNAME,
    AnswerModel,
    DecisionModel,
    PatientModel,
    UserModel,
    VisitModel,
)

MAX_KNOWLEDGE_VERSION = 64
MAX_ID = 2**63 - 1
MIN_PASSWORD = 12
EXPORT_FORMAT = "myoguide-patient-record/1"

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class RecordNotFound(LookupError):
    """A patient, visit or answer id that the store does not hold."""


@dataclass(frozen=True)
class PatientRow:
    """A patient: a pseudonymous label and when it was created."""

    id: int
    label: str
    created_at: datetime


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


# ---- validation ----------------------------------------------------------------------------


def _text(value: object, where: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be a string")
    text = value.strip()
    if not text:
        raise ValueError(f"{where}: must not be empty")
    if len(text) > max_len:
        raise ValueError(f"{where}: must be at most {max_len} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{where}: must not contain control characters")
    return text


def _optional_text(value: object, where: str, max_len: int) -> str | None:
    return None if value is None else _text(value, where, max_len)


def _json_object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where}: must be a JSON object")
    try:
        # A private copy that is certainly plain JSON; PostgreSQL refuses NaN and Infinity.
        plain: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: is not plain JSON ({exc})") from None
    if has_nul(plain):
        # PostgreSQL text and JSONB cannot hold U+0000.
        raise ValueError(f"{where}: must not contain NUL (U+0000) characters")
    return plain


def _instant(value: object, where: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{where}: must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{where}: must be timezone-aware")
    return value.astimezone(UTC)


def _day(value: object, where: str) -> date:
    # datetime is a subclass of date; a visit is a calendar day, not an instant.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise ValueError(f"{where}: must be a date")
    return value


def _id(value: object, where: str, kind: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: must be an integer")
    if not 1 <= value <= MAX_ID:
        # PostgreSQL would refuse an out-of-range id with an error instead of finding nothing.
        raise RecordNotFound(f"{kind} {value} not found")
    return value


def _top_recommendation(result: Mapping[str, Any]) -> str | None:
    recommendations = result.get("recommendations")
    if recommendations is None:
        return None
    if not isinstance(recommendations, list):
        raise ValueError("result.recommendations: must be an array")
    if not recommendations:
        return None
    first = recommendations[0]
    if not isinstance(first, Mapping):
        raise ValueError("result.recommendations[0]: must be a JSON object")
    return _text(first.get("id"), "result.recommendations[0].id", MAX_RECOMMENDATION_ID)


# ---- conversions ---------------------------------------------------------------------------


def _patient(row: PatientModel) -> PatientRow:
    return PatientRow(id=row.id, label=row.label, created_at=row.created_at)


def _visit(row: VisitModel) -> VisitRow:
    return VisitRow(
        id=row.id,
        patient_id=row.patient_id,
        visit_date=row.visit_date,
        state=row.state,
        created_at=row.created_at,
    )


def _answer(row: AnswerModel) -> AnswerRow:
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


def _decision(row: DecisionModel) -> DecisionRow:
    return DecisionRow(
        id=row.id,
        answer_id=row.answer_id,
        decided_at=row.decided_at,
        decision=row.decision,
        chosen_recommendation=row.chosen_recommendation,
        reason=row.reason,
    )


def _patient_json(row: PatientRow) -> dict[str, Any]:
    return {"id": row.id, "label": row.label, "created_at": row.created_at.isoformat()}


def _visit_json(row: VisitRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "patient_id": row.patient_id,
        "visit_date": row.visit_date.isoformat(),
        "created_at": row.created_at.isoformat(),
        "state": dict(row.state),
    }


def _answer_json(row: AnswerRow) -> dict[str, Any]:
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


def _decision_json(row: DecisionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "answer_id": row.answer_id,
        "decided_at": row.decided_at.isoformat(),
        "decision": row.decision,
        "chosen_recommendation": row.chosen_recommendation,
        "reason": row.reason,
    }


# ---- the stores ----------------------------------------------------------------------------


class RecordStore:
    """Durable store of patients, their visits, the answers shown and the decisions taken."""

    def __init__(self, engine: Engine, *, clock: Clock = _now) -> None:
        self._sessions = make_sessions(engine)
        self._clock = clock

    def add_patient(self, label: str) -> PatientRow:
        """Create a patient under a unique pseudonymous label (ValueError names `label`)."""
        text = _text(label, "label", MAX_LABEL)
        row = PatientModel(label=text, created_at=_instant(self._clock(), "created_at"))
        taken = ValueError(f"label: '{text}' is already used by another patient")
        try:
            with write_session(self._sessions) as session:
                if session.scalar(select(PatientModel.id).where(PatientModel.label == text)):
                    raise taken
                session.add(row)
                session.flush()
        except IntegrityError:
            # Another writer took the label between the check and the insert.
            raise taken from None
        return _patient(row)

    def list_patients(self) -> list[PatientSummary]:
        """Return every patient with visit count, last visit date and last course, by label."""
        p, v, a = PatientModel, VisitModel, AnswerModel
        visit_count = (
            select(func.count()).select_from(v).where(v.patient_id == p.id).scalar_subquery()
        )
        last_visit = select(func.max(v.visit_date)).where(v.patient_id == p.id).scalar_subquery()
        last_course = (
            select(a.course)
            .where(a.patient_id == p.id)
            .order_by(a.shown_at.desc(), a.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        query = select(p.id, p.label, visit_count, last_visit, last_course)
        with self._sessions() as session:
            rows = session.execute(query).all()
        summaries = [
            PatientSummary(
                id=pid, label=label, visit_count=n, last_visit_date=day, last_course=course
            )
            for pid, label, n, day, course in rows
        ]
        # Sorted here, by code point, so the order does not hang on the database's collation.
        return sorted(summaries, key=lambda s: (s.label, s.id))

    def get_patient(self, patient_id: int) -> PatientRow | None:
        """Return the patient with this id, or None."""
        try:
            pid = _id(patient_id, "patient_id", "patient")
        except RecordNotFound:
            return None
        with self._sessions() as session:
            row = session.get(PatientModel, pid)
            return None if row is None else _patient(row)

    def add_visit(self, patient_id: int, visit_date: date, state: Mapping[str, Any]) -> VisitRow:
        """Record a visit and the patient state of that day; committed when it returns."""
        pid = _id(patient_id, "patient_id", "patient")
        row = VisitModel(
            patient_id=pid,
            visit_date=_day(visit_date, "visit_date"),
            state=_json_object(state, "state"),
            created_at=_instant(self._clock(), "created_at"),
        )
        with write_session(self._sessions) as session:
            if session.get(PatientModel, pid) is None:
                raise RecordNotFound(f"patient {pid} not found")
            session.add(row)
            session.flush()
        return _visit(row)

    def log_answer(
        self,
        patient_id: int,
        visit_id: int | None,
        input_state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: datetime,
    ) -> int:
        """Append an answer shown for a patient (and visit, if any); return its id."""
        pid = _id(patient_id, "patient_id", "patient")
        vid = None if visit_id is None else _id(visit_id, "visit_id", "visit")
        plain = _json_object(result, "result")
        course = plain.get("course")
        if course not in COURSES:
            raise ValueError(f"result.course: must be one of {', '.join(COURSES)}")
        row = AnswerModel(
            patient_id=pid,
            visit_id=vid,
            shown_at=_instant(shown_at, "shown_at"),
            knowledge_version=_text(knowledge_version, "knowledge_version", MAX_KNOWLEDGE_VERSION),
            input=_json_object(input_state, "input_state"),
            result=plain,
            course=course,
            scenario=_optional_text(plain.get("scenario"), "result.scenario", MAX_SCENARIO),
            top_recommendation=_top_recommendation(plain),
        )
        with write_session(self._sessions) as session:
            if session.get(PatientModel, pid) is None:
                raise RecordNotFound(f"patient {pid} not found")
            if vid is not None:
                owner = session.scalar(select(VisitModel.patient_id).where(VisitModel.id == vid))
                if owner is None:
                    raise RecordNotFound(f"visit {vid} not found")
                if owner != pid:
                    raise ValueError(f"visit_id: visit {vid} belongs to another patient")
            session.add(row)
            session.flush()
            # Returned from inside the block: the commit on leaving it precedes the return.
            return row.id

    def record_decision(
        self,
        answer_id: int,
        decision: str,
        chosen_recommendation: str | None,
        reason: str | None,
        decided_at: datetime,
    ) -> int:
        """Append the clinician's decision on an answer; return its id."""
        aid = _id(answer_id, "answer_id", "answer")
        if decision not in DECISIONS:
            raise ValueError(f"decision: must be one of {', '.join(DECISIONS)}")
        chosen = _optional_text(
            chosen_recommendation, "chosen_recommendation", MAX_RECOMMENDATION_ID
        )
        if decision == "chose_other" and chosen is None:
            raise ValueError("chosen_recommendation: is required when decision is chose_other")
        if decision == "declined" and chosen is not None:
            raise ValueError("chosen_recommendation: must be empty when decision is declined")
        if reason is not None and not isinstance(reason, str):
            raise ValueError("reason: must be a string")
        if reason is not None and "\x00" in reason:
            raise ValueError("reason: must not contain NUL (U+0000) characters")
        when = _instant(decided_at, "decided_at")
        with write_session(self._sessions) as session:
            top = session.execute(
                select(AnswerModel.top_recommendation).where(AnswerModel.id == aid)
            ).first()
            if top is None:
                raise RecordNotFound(f"answer {aid} not found")
            row = DecisionModel(
                answer_id=aid,
                decided_at=when,
                decision=decision,
                # Accepting without naming a choice accepts the answer's first recommendation.
                chosen_recommendation=top[0]
                if decision == "accepted" and chosen is None
                else chosen,
                reason=reason if reason is None or reason.strip() else None,
            )
            session.add(row)
            session.flush()
            return row.id

    def timeline(self, patient_id: int) -> PatientRecord:
        """Return a patient's visits, answers and decisions in three queries."""
        patient_id = _id(patient_id, "patient_id", "patient")
        with self._sessions() as session:
            patient = session.get(PatientModel, patient_id)
            if patient is None:
                raise RecordNotFound(f"patient {patient_id} not found")
            visits = session.scalars(
                select(VisitModel)
                .where(VisitModel.patient_id == patient_id)
                .order_by(VisitModel.visit_date, VisitModel.id)
            ).all()
            pairs = session.execute(
                select(AnswerModel, DecisionModel)
                .outerjoin(DecisionModel, DecisionModel.answer_id == AnswerModel.id)
                .where(AnswerModel.patient_id == patient_id)
                .order_by(
                    AnswerModel.shown_at, AnswerModel.id, DecisionModel.decided_at, DecisionModel.id
                )
            ).all()
            answers: dict[int, tuple[AnswerRow, list[DecisionRow]]] = {}
            for answer, decision in pairs:
                entry = answers.get(answer.id)
                if entry is None:
                    entry = answers[answer.id] = (_answer(answer), [])
                if decision is not None:
                    entry[1].append(_decision(decision))
            by_visit: dict[int | None, list[AnswerRecord]] = {}
            for answer_row, decided in answers.values():
                by_visit.setdefault(answer_row.visit_id, []).append(
                    AnswerRecord(answer_row, tuple(decided))
                )
            return PatientRecord(
                patient=_patient(patient),
                visits=tuple(VisitRecord(_visit(v), tuple(by_visit.get(v.id, ()))) for v in visits),
                unattached_answers=tuple(by_visit.get(None, ())),
            )

    def export_patient(self, patient_id: int) -> dict[str, Any]:
        """Return a patient's whole record as JSON-ready data with ISO 8601 dates."""
        record = self.timeline(patient_id)
        answers = record.answers
        decisions = sorted(
            (d for a in answers for d in a.decisions), key=lambda d: (d.decided_at, d.id)
        )
        return {
            "format": EXPORT_FORMAT,
            "patient": _patient_json(record.patient),
            "visits": [_visit_json(v.visit) for v in record.visits],
            "answers": [_answer_json(a.answer) for a in answers],
            "decisions": [_decision_json(d) for d in decisions],
        }


class UserStore:
    """Durable store of user accounts, with argon2id password hashes."""

    def __init__(
        self, engine: Engine, *, hasher: PasswordHasher | None = None, clock: Clock = _now
    ) -> None:
        self._sessions = make_sessions(engine)
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        # Checked when the username is unknown, so that answer takes as long as a wrong password.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))

    def add_user(self, username: str, password: str) -> None:
        """Create an account; ValueError for a short password or a username already taken."""
        name = _text(username, "username", MAX_USERNAME)
        if not isinstance(password, str):
            raise ValueError("password: must be a string")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"password: must be at least {MIN_PASSWORD} characters")
        row = UserModel(
            username=name,
            password_hash=self._hasher.hash(password),
            created_at=_instant(self._clock(), "created_at"),
        )
        taken = ValueError(f"username: '{name}' is already taken")
        try:
            with write_session(self._sessions) as session:
                if session.scalar(select(UserModel.id).where(UserModel.username == name)):
                    raise taken
                session.add(row)
        except IntegrityError:
            raise taken from None

    def verify(self, username: str, password: str) -> bool:
        """Return whether the password is the user's; an unknown user costs a full check too."""
        name = username.strip() if isinstance(username, str) else ""
        secret = password if isinstance(password, str) else ""
        with self._sessions() as session:
            found = session.execute(
                select(UserModel.id, UserModel.password_hash).where(UserModel.username == name)
            ).first()
        if found is None:
            with contextlib.suppress(VerificationError):
                self._hasher.verify(self._dummy_hash, secret)
            return False
        user_id, stored = found
        try:
            self._hasher.verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return False
        if self._hasher.check_needs_rehash(stored):
            with write_session(self._sessions) as session:
                session.execute(
                    update(UserModel)
                    .where(UserModel.id == user_id)
                    .values(password_hash=self._hasher.hash(secret))
                )
        return True

    def count(self) -> int:
        """Return the number of user accounts."""
        with self._sessions() as session:
            return int(session.scalar(select(func.count()).select_from(UserModel)) or 0)
