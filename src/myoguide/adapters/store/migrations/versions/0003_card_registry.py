"""CDS cards issued, by uuid, so feedback finds its card on any worker and after a restart.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the cds_issued_cards table."""
    op.create_table(
        "cds_issued_cards",
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("service_id", sa.String(length=200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_cds_issued_cards")),
    )
    op.create_index("ix_cds_issued_cards_issued_at", "cds_issued_cards", ["issued_at"])


def downgrade() -> None:
    """Drop the cds_issued_cards table."""
    op.drop_index("ix_cds_issued_cards_issued_at", table_name="cds_issued_cards")
    op.drop_table("cds_issued_cards")
