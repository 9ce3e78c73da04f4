"""CDS Hooks feedback: one row per feedback item, with its raw JSON.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from tables.py, so this revision never changes after release.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the cds_feedback table and its indexes."""
    op.create_table(
        "cds_feedback",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("service_id", sa.String(length=200), nullable=False),
        sa.Column("card_uuid", sa.String(length=36), nullable=False),
        sa.Column("card_summary", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("accepted_suggestions", JSON, nullable=False),
        sa.Column("override_system", sa.String(length=500), nullable=True),
        sa.Column("override_code", sa.String(length=200), nullable=True),
        sa.Column("override_display", sa.Text(), nullable=True),
        sa.Column("override_comment", sa.Text(), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("knowledge_version", sa.String(length=64), nullable=False),
        sa.Column("raw", JSON, nullable=False),
        sa.CheckConstraint(
            "outcome IN ('accepted', 'overridden')", name=op.f("ck_cds_feedback_outcome")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cds_feedback")),
    )
    op.create_index(op.f("ix_cds_feedback_card_uuid"), "cds_feedback", ["card_uuid"])
    op.create_index(
        "ix_cds_feedback_service_summary", "cds_feedback", ["service_id", "card_summary"]
    )
    op.create_index("ix_cds_feedback_received_at", "cds_feedback", ["received_at"])


def downgrade() -> None:
    """Drop the cds_feedback table."""
    op.drop_index("ix_cds_feedback_received_at", table_name="cds_feedback")
    op.drop_index("ix_cds_feedback_service_summary", table_name="cds_feedback")
    op.drop_index(op.f("ix_cds_feedback_card_uuid"), table_name="cds_feedback")
    op.drop_table("cds_feedback")
