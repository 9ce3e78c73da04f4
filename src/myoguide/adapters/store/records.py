"""Durable record of patients' courses: patients, visits, answers shown and decisions taken."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from myoguide.adapters.clock import SYSTEM_CLOCK
from myoguide.adapters.store.anchor import ChainAnchor, Head
from myoguide.adapters.store.chain import (
    DECISION_CONTENT_VERSION,
    GENESIS,
    UNKEYED,
    ChainKeys,
    answer_row_content,
    decision_row_content,
)
from myoguide.adapters.store.db import chain_lock, make_sessions, write_session
from myoguide.adapters.store.rows import (
    AnswerRecord,
    AnswerRow,
    DecisionRow,
    PatientRecord,
    PatientRow,
    PatientSummary,
    RecordNotFound,
    VisitRecord,
    VisitRow,
    answer_json,
    decision_json,
    patient_json,
    read_answer,
    read_decision,
    read_patient,
    read_visit,
    visit_json,
)
from myoguide.adapters.store.tables import (
    COURSES,
    DECISIONS,
    MAX_CLINICIAN,
    MAX_ISS,
    MAX_LABEL,
    MAX_RECOMMENDATION_ID,
    MAX_SAVE_KEY,
    MAX_SCENARIO,
    REASON_CODES,
    AnswerModel,
    DecisionModel,
    PatientModel,
    VisitModel,
)
from myoguide.adapters.store.validation import (
    calendar_day,
    checked_id,
    clean_optional_text,
    clean_text,
    json_object,
    top_recommendation,
    utc_instant,
)
from myoguide.service.ports import Clock

# The row types are part of this store's interface, so they can be imported from here too.
__all__ = [
    "EXPORT_FORMAT",
    "MAX_KNOWLEDGE_VERSION",
    "AnswerRecord",
    "AnswerRow",
    "DecisionRow",
    "PatientRecord",
    "PatientRow",
    "PatientSummary",
    "RecordNotFound",
    "RecordStore",
    "VisitRecord",
    "VisitRow",
]

MAX_KNOWLEDGE_VERSION = 64
EXPORT_FORMAT = "myoguide-patient-record/1"
# An EHR link is an HMAC-SHA256 in hex: anything else (an EHR's raw patient id) is refused.
_LINK = re.compile(r"[0-9a-f]{64}")


class RecordStore:
    """Durable store of patients, their visits, the answers shown and the decisions taken."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock = SYSTEM_CLOCK,
        keys: ChainKeys = UNKEYED,
        anchor: ChainAnchor | None = None,
    ) -> None:
        self._sessions = make_sessions(engine)
        self._clock = clock
        self._keys = keys
        self._anchor = anchor

    def _advance(self, chain: str, row: AnswerModel | DecisionModel) -> None:
        """Keep the chain's new head outside the database, once its row is committed."""
        if self._anchor is not None and row.row_hash is not None:
            self._anchor.advance(chain, Head(row.id, row.row_hash))

    def add_patient(self, label: str) -> PatientRow:
        """Create a patient under a unique pseudonymous label (ValueError names `label`)."""
        text = clean_text(label, "label", MAX_LABEL)
        row = PatientModel(label=text, created_at=utc_instant(self._clock.now(), "created_at"))
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
        return read_patient(row)

    def linked_patient(self, ehr_iss: str, ehr_link: str, label: str) -> PatientRow:
        """Return the patient linked to (EHR, keyed hash of its patient id), made if new."""
        iss = clean_text(ehr_iss, "ehr_iss", MAX_ISS)
        if not isinstance(ehr_link, str) or not _LINK.fullmatch(ehr_link):
            raise ValueError("ehr_link: must be a keyed hash (64 lowercase hex digits)")
        text = clean_text(label, "label", MAX_LABEL)
        # Twice: a concurrent launch of the same patient may insert between look-up and insert.
        for _ in range(2):
            found = self._linked(iss, ehr_link)
            if found is not None:
                return found
            row = PatientModel(
                label=text,
                created_at=utc_instant(self._clock.now(), "created_at"),
                ehr_iss=iss,
                ehr_link=ehr_link,
            )
            try:
                with write_session(self._sessions) as session:
                    if session.scalar(select(PatientModel.id).where(PatientModel.label == text)):
                        break
                    session.add(row)
                    session.flush()
                return read_patient(row)
            except IntegrityError:
                continue
        found = self._linked(iss, ehr_link)
        if found is not None:
            return found
        raise ValueError(f"label: '{text}' is already used by another patient")

    def _linked(self, iss: str, link: str) -> PatientRow | None:
        """Return the patient linked to this EHR and keyed hash, or None."""
        query = select(PatientModel).where(
            PatientModel.ehr_iss == iss, PatientModel.ehr_link == link
        )
        with self._sessions() as session:
            row = session.scalars(query).first()
            return None if row is None else read_patient(row)

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
            pid = checked_id(patient_id, "patient_id", "patient")
        except RecordNotFound:
            return None
        with self._sessions() as session:
            row = session.get(PatientModel, pid)
            return None if row is None else read_patient(row)

    def add_visit(self, patient_id: int, visit_date: date, state: Mapping[str, Any]) -> VisitRow:
        """Record a visit and the patient state of that day; committed when it returns."""
        pid = checked_id(patient_id, "patient_id", "patient")
        row = self._visit_row(pid, visit_date, state)
        with write_session(self._sessions) as session:
            _require_patient(session, pid)
            session.add(row)
            session.flush()
        return read_visit(row)

    def _visit_row(
        self, pid: int, visit_date: date, state: Mapping[str, Any], save_key: str | None = None
    ) -> VisitModel:
        """Return a validated visit row, not yet added to a session."""
        return VisitModel(
            patient_id=pid,
            visit_date=calendar_day(visit_date, "visit_date"),
            state=json_object(state, "state"),
            created_at=utc_instant(self._clock.now(), "created_at"),
            save_key=clean_optional_text(save_key, "save_key", MAX_SAVE_KEY),
        )

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
        pid = checked_id(patient_id, "patient_id", "patient")
        vid = None if visit_id is None else checked_id(visit_id, "visit_id", "visit")
        row = self._answer_row(pid, vid, input_state, result, knowledge_version, shown_at)
        with write_session(self._sessions) as session:
            _require_patient(session, pid)
            if vid is not None:
                owner = session.scalar(select(VisitModel.patient_id).where(VisitModel.id == vid))
                if owner is None:
                    raise RecordNotFound(f"visit {vid} not found")
                if owner != pid:
                    raise ValueError(f"visit_id: visit {vid} belongs to another patient")
            _append_answer(session, row, self._keys)
        self._advance("answers", row)
        return row.id

    def log_visit_answer(
        self,
        patient_id: int,
        visit_date: date,
        state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: datetime,
    ) -> tuple[int, int]:
        """Save a visit and the answer shown at it in one transaction; return both ids."""
        visit_id, answer_id, _ = self.save_visit_answer(
            patient_id, visit_date, state, result, knowledge_version, shown_at, None
        )
        return visit_id, answer_id

    def save_visit_answer(
        self,
        patient_id: int,
        visit_date: date,
        state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: datetime,
        save_key: str | None,
    ) -> tuple[int, int, bool]:
        """Save a visit and its answer once per save key; return both ids and whether new.

        A key already used for this patient returns the visit saved under it (and the first
        answer shown at it) and writes nothing: a repeated submit of one form is one visit.
        """
        pid = checked_id(patient_id, "patient_id", "patient")
        visit = self._visit_row(pid, visit_date, state, save_key)
        key = visit.save_key
        if key is not None:
            found = self.saved_visit(pid, key)
            if found is not None:
                return (*found, False)
        try:
            with write_session(self._sessions) as session:
                _require_patient(session, pid)
                session.add(visit)
                session.flush()
                row = self._answer_row(pid, visit.id, state, result, knowledge_version, shown_at)
                _append_answer(session, row, self._keys)
                ids = (visit.id, row.id)
        except IntegrityError:
            # Another request saved the same form between the look-up and the insert.
            found = self.saved_visit(pid, key) if key is not None else None
            if found is None:
                raise
            return (*found, False)
        self._advance("answers", row)
        return (*ids, True)

    def saved_visit(self, patient_id: int, save_key: str) -> tuple[int, int] | None:
        """Return the visit saved under a save key and its first answer's id, or None."""
        pid = checked_id(patient_id, "patient_id", "patient")
        with self._sessions() as session:
            found = session.execute(
                select(VisitModel.id, func.min(AnswerModel.id))
                .join(AnswerModel, AnswerModel.visit_id == VisitModel.id)
                .where(VisitModel.patient_id == pid, VisitModel.save_key == save_key)
                .group_by(VisitModel.id)
            ).first()
        return None if found is None else (int(found[0]), int(found[1]))

    def get_answer(self, answer_id: int) -> AnswerRow | None:
        """Return the answer with this id, or None."""
        try:
            aid = checked_id(answer_id, "answer_id", "answer")
        except RecordNotFound:
            return None
        with self._sessions() as session:
            row = session.get(AnswerModel, aid)
            return None if row is None else read_answer(row)

    @staticmethod
    def _answer_row(
        pid: int,
        vid: int | None,
        input_state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: datetime,
    ) -> AnswerModel:
        """Return a checked answer row, not yet chained."""
        plain = json_object(result, "result")
        course = plain.get("course")
        if course not in COURSES:
            raise ValueError(f"result.course: must be one of {', '.join(COURSES)}")
        return AnswerModel(
            patient_id=pid,
            visit_id=vid,
            shown_at=utc_instant(shown_at, "shown_at"),
            knowledge_version=clean_text(
                knowledge_version, "knowledge_version", MAX_KNOWLEDGE_VERSION
            ),
            input=json_object(input_state, "input_state"),
            result=plain,
            course=course,
            scenario=clean_optional_text(plain.get("scenario"), "result.scenario", MAX_SCENARIO),
            top_recommendation=top_recommendation(plain),
        )

    def record_decision(
        self,
        answer_id: int,
        decision: str,
        chosen_recommendation: str | None,
        reason: str | None,
        decided_at: datetime,
        *,
        clinician: str | None = None,
        reason_code: str | None = None,
    ) -> int:
        """Append the clinician's decision on an answer (and who decided); return its id.

        Only an option the answer offered can be chosen, and accepting without naming one is
        refused when the first choices are tied (ValueError names `chosen_recommendation`).
        """
        aid = checked_id(answer_id, "answer_id", "answer")
        if decision not in DECISIONS:
            raise ValueError(f"decision: must be one of {', '.join(DECISIONS)}")
        chosen = clean_optional_text(
            chosen_recommendation, "chosen_recommendation", MAX_RECOMMENDATION_ID
        )
        if decision == "chose_other" and chosen is None:
            raise ValueError("chosen_recommendation: is required when decision is chose_other")
        if decision == "declined" and chosen is not None:
            raise ValueError("chosen_recommendation: must be empty when decision is declined")
        if reason_code is not None and reason_code not in REASON_CODES:
            raise ValueError(f"reason_code: must be one of {', '.join(REASON_CODES)}")
        if reason is not None and not isinstance(reason, str):
            raise ValueError("reason: must be a string")
        if reason is not None and "\x00" in reason:
            raise ValueError("reason: must not contain NUL (U+0000) characters")
        who = clean_optional_text(clinician, "clinician", MAX_CLINICIAN)
        when = utc_instant(decided_at, "decided_at")
        with write_session(self._sessions) as session:
            chain_lock(session)
            top = session.execute(
                select(
                    AnswerModel.top_recommendation, AnswerModel.row_hash, AnswerModel.result
                ).where(AnswerModel.id == aid)
            ).first()
            if top is None:
                raise RecordNotFound(f"answer {aid} not found")
            _check_offered(chosen, top[2])
            chosen = _accepted_choice(decision, chosen, top[0], top[2])
            row = DecisionModel(
                answer_id=aid,
                decided_at=when,
                decision=decision,
                chosen_recommendation=chosen,
                reason=reason if reason is None or reason.strip() else None,
                clinician=who,
                content_version=DECISION_CONTENT_VERSION,
                reason_code=reason_code,
            )
            row.prev_hash = _last_hash(session, DecisionModel)
            row.row_hash = self._keys.seal(row.prev_hash, decision_row_content(row, top[1]))
            session.add(row)
            session.flush()
        self._advance("decisions", row)
        return row.id

    def timeline(self, patient_id: int) -> PatientRecord:
        """Return a patient's visits, answers and decisions in three queries."""
        patient_id = checked_id(patient_id, "patient_id", "patient")
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
                    entry = answers[answer.id] = (read_answer(answer), [])
                if decision is not None:
                    entry[1].append(read_decision(decision))
            by_visit: dict[int | None, list[AnswerRecord]] = {}
            for answer_row, decided in answers.values():
                by_visit.setdefault(answer_row.visit_id, []).append(
                    AnswerRecord(answer_row, tuple(decided))
                )
            return PatientRecord(
                patient=read_patient(patient),
                visits=tuple(
                    VisitRecord(read_visit(v), tuple(by_visit.get(v.id, ()))) for v in visits
                ),
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
            "patient": patient_json(record.patient),
            "visits": [visit_json(v.visit) for v in record.visits],
            "answers": [answer_json(a.answer) for a in answers],
            "decisions": [decision_json(d) for d in decisions],
        }


def _accepted_choice(
    decision: str, chosen: str | None, top: str | None, result: Mapping[str, Any]
) -> str | None:
    """Return the option a decision names; accepting on a tie must name one (ValueError)."""
    if decision != "accepted" or chosen is not None:
        return chosen
    recs = [r for r in result.get("recommendations") or [] if isinstance(r, Mapping)]
    ranks = [r.get("rank") for r in recs]
    if ranks and ranks[0] is not None and ranks.count(ranks[0]) > 1:
        raise ValueError("chosen_recommendation: the first choices are tied; name the one accepted")
    # Accepting without naming a choice accepts the answer's first recommendation.
    return top


def _last_hash(session: Session, model: type[AnswerModel] | type[DecisionModel]) -> str:
    """Return the hash of the chain's last row, or the genesis value for an empty table."""
    last = session.scalar(select(model.row_hash).order_by(model.id.desc()).limit(1))
    return last or GENESIS


def _append_answer(session: Session, row: AnswerModel, keys: ChainKeys) -> None:
    """Chain an answer row to the last one and insert it, under the chain's lock."""
    chain_lock(session)
    content = answer_row_content(row)
    row.prev_hash = _last_hash(session, AnswerModel)
    row.row_hash = keys.seal(row.prev_hash, content)
    session.add(row)
    session.flush()


def _check_offered(chosen: str | None, result: Any) -> None:
    """Refuse a chosen option the answer did not offer (ValueError naming the field)."""
    if chosen is None:
        return
    recs = result.get("recommendations") if isinstance(result, Mapping) else None
    offered = [r.get("id") for r in recs or [] if isinstance(r, Mapping)]
    if chosen not in offered:
        shown = ", ".join(str(o) for o in offered) or "none"
        raise ValueError(
            f"chosen_recommendation: '{chosen}' is not an option this answer offered ({shown})"
        )


def _require_patient(session: Session, pid: int) -> None:
    """Raise RecordNotFound unless the patient exists (checked inside the writing transaction)."""
    if session.get(PatientModel, pid) is None:
        raise RecordNotFound(f"patient {pid} not found")
