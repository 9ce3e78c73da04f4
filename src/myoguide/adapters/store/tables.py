"""The store's tables as typed SQLAlchemy models; each change ships with an Alembic revision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
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
