"""Chart hand-offs: a CDS card's link opens the form filled from the chart it was computed from.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from tables.py, so this revision never changes after release.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the chart_handoffs table."""
    op.create_table(
        "chart_handoffs",
        # The SHA-256 of the link's token: the token itself is never stored.
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("warnings", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_chart_handoffs")),
    )
    op.create_index("ix_chart_handoffs_expires_at", "chart_handoffs", ["expires_at"])


def downgrade() -> None:
    """Drop the chart_handoffs table."""
    op.drop_index("ix_chart_handoffs_expires_at", table_name="chart_handoffs")
    op.drop_table("chart_handoffs")
