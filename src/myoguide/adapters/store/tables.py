"""The store's tables as typed SQLAlchemy models; each change ships with an Alembic revision."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Named constraints let later revisions alter or drop them, including SQLite batch mode.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

OUTCOMES = ("accepted", "overridden")
COURSES = ("recurrent", "resistant", "controlled", "out_of_scope")
DECISIONS = ("accepted", "chose_other", "declined")
# Why a clinician chose another option or none, coded in the style of CDS Hooks override reasons.
REASON_CODES = (
    "patient_preference",
    "contraindication",
    "cost_or_access",
    "already_tried",
    "clinical_judgment",
    "other",
)
MAX_SAVE_KEY = 64
# Column widths, checked again in records.py so SQLite and PostgreSQL refuse the same input.
MAX_LABEL, MAX_USERNAME, MAX_SCENARIO, MAX_RECOMMENDATION_ID = 80, 80, 64, 200
# A clinician is an account's username or a SMART launch's fhirUser (a URL, at most 500).
MAX_CLINICIAN = MAX_ISS = 500

# JSONB on PostgreSQL so reports can query inside it; plain JSON text elsewhere.
JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only aliases the rowid when the type is exactly INTEGER.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC that always reads back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes and store the instant in UTC."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamps must be timezone-aware")
        utc = value.astimezone(UTC)
        # SQLite has no timezone type; naive UTC text sorts and compares correctly.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base whose metadata Alembic compares against the migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class FeedbackRecord(Base):
    """One CDS Hooks feedback item as received: no patient data, only the card and outcome."""

    __tablename__ = "cds_feedback"
    __table_args__ = (
        CheckConstraint("outcome IN ('accepted', 'overridden')", name="outcome"),
        Index("ix_cds_feedback_service_summary", "service_id", "card_summary"),
        Index("ix_cds_feedback_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(200))
    card_uuid: Mapped[str] = mapped_column(String(36), index=True)
    card_summary: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    accepted_suggestions: Mapped[list[str]] = mapped_column(JsonType)
    override_system: Mapped[str | None] = mapped_column(String(500))
    override_code: Mapped[str | None] = mapped_column(String(200))
    override_display: Mapped[str | None] = mapped_column(Text)
    override_comment: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    knowledge_version: Mapped[str] = mapped_column(String(64))
    raw: Mapped[dict[str, Any]] = mapped_column(JsonType)


class PatientModel(Base):
    """A patient known only by a pseudonymous label; no direct identifiers are stored."""

    __tablename__ = "patients"
    __table_args__ = (
        CheckConstraint("length(label) BETWEEN 1 AND 80", name="label_length"),
        # One local patient per EHR patient; NULLs (patients added by hand) never collide.
        Index("uq_patients_ehr_iss_ehr_link", "ehr_iss", "ehr_link", unique=True),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    label: Mapped[str] = mapped_column(String(MAX_LABEL), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A patient opened by a SMART launch: the EHR's FHIR base, and the HMAC-SHA256 (hex) of
    # its patient id under the server's key; the EHR's own id is never stored.
    ehr_iss: Mapped[str | None] = mapped_column(String(MAX_ISS))
    ehr_link: Mapped[str | None] = mapped_column(String(64))


class VisitModel(Base):
    """One visit of a patient, with the patient state (contract JSON) as it was that day."""

    __tablename__ = "visits"
    __table_args__ = (
        Index("ix_visits_patient_id_visit_date", "patient_id", "visit_date"),
        # One save per intent: the form's key, unique per patient (revision 0007).
        Index("uq_visits_patient_id_save_key", "patient_id", "save_key", unique=True),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(IdType, ForeignKey("patients.id"))
    visit_date: Mapped[date] = mapped_column(Date())
    state: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    save_key: Mapped[str | None] = mapped_column(String(MAX_SAVE_KEY))


class AnswerModel(Base):
    """One answer shown to a clinician, kept with its input; rows are never changed."""

    __tablename__ = "answers"
    __table_args__ = (
        CheckConstraint(
            "course IN ('recurrent', 'resistant', 'controlled', 'out_of_scope')", name="course"
        ),
        Index("ix_answers_patient_id_shown_at", "patient_id", "shown_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(IdType, ForeignKey("patients.id"))
    visit_id: Mapped[int | None] = mapped_column(IdType, ForeignKey("visits.id"), index=True)
    shown_at: Mapped[datetime] = mapped_column(UTCDateTime())
    knowledge_version: Mapped[str] = mapped_column(String(64))
    input: Mapped[dict[str, Any]] = mapped_column(JsonType)
    result: Mapped[dict[str, Any]] = mapped_column(JsonType)
    course: Mapped[str] = mapped_column(String(16))
    scenario: Mapped[str | None] = mapped_column(String(MAX_SCENARIO))
    top_recommendation: Mapped[str | None] = mapped_column(String(MAX_RECOMMENDATION_ID))
    # The hash chain (chain.py): the previous answer's hash and this row's.
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str | None] = mapped_column(String(64))


class DecisionModel(Base):
    """What the clinician did with one answer; rows are never changed."""

    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint("decision IN ('accepted', 'chose_other', 'declined')", name="decision"),
        # SQLite databases migrated by revision 0007 hold this as a trigger instead.
        CheckConstraint(
            "reason_code IN (" + ", ".join(f"'{c}'" for c in REASON_CODES) + ")",
            name="reason_code",
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    answer_id: Mapped[int] = mapped_column(IdType, ForeignKey("answers.id"), index=True)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decision: Mapped[str] = mapped_column(String(16))
    chosen_recommendation: Mapped[str | None] = mapped_column(String(MAX_RECOMMENDATION_ID))
    reason: Mapped[str | None] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(String(32))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str | None] = mapped_column(String(64))
    # Who decided: the account's username or the SMART launch's fhirUser; None when nobody
    # was signed in (loopback without sign-in) or the row predates revision 0008.
    clinician: Mapped[str | None] = mapped_column(String(MAX_CLINICIAN))
    # What the row's link covers (chain.py): 1 before revision 0008, 2 with the clinician.
    content_version: Mapped[int] = mapped_column(Integer(), server_default=text("1"))


class UserModel(Base):
    """A clinician's account: a username and an argon2id password hash."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("length(username) BETWEEN 1 AND 80", name="username_length"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(MAX_USERNAME), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TokenJtiModel(Base):
    """A CDS Hooks token id already used, kept until its token expires (Unix seconds)."""

    __tablename__ = "token_jtis"
    __table_args__ = (
        PrimaryKeyConstraint("issuer", "jti"),
        Index("ix_token_jtis_expires_at", "expires_at"),
    )

    issuer: Mapped[str] = mapped_column(String(500))
    jti: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[float] = mapped_column(Float())


class WebSessionModel(Base):
    """A signed-in session, by the SHA-256 of its secret; deleting the row ends it."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_username", "username"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # An account's username, or a SMART launch's fhirUser (longer than any username).
    username: Mapped[str] = mapped_column(String(MAX_CLINICIAN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SigninThrottleModel(Base):
    """Failed sign-ins of one account ("user:NAME") or one address ("addr:IP")."""

    __tablename__ = "signin_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer())
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime())
    blocked_until: Mapped[datetime] = mapped_column(UTCDateTime())


class StoreHealthModel(Base):
    """One row rewritten by the health probe, to learn whether the store can write."""

    __tablename__ = "store_health"

    id: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=False)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IssuedCardModel(Base):
    """A CDS card shown, by uuid, so feedback from any worker finds its summary."""

    __tablename__ = "cds_issued_cards"
    __table_args__ = (Index("ix_cds_issued_cards_issued_at", "issued_at"),)

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChartHandoffModel(Base):
    """A patient state read from an EHR chart, kept briefly under the SHA-256 of a link's token."""

    __tablename__ = "chart_handoffs"
    __table_args__ = (Index("ix_chart_handoffs_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # [{"code": ..., "message": ...}]: what the chart could not tell.
    warnings: Mapped[list[dict[str, str]]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
