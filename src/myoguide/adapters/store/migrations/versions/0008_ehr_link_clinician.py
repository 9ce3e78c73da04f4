"""Patients linked to an EHR by a keyed hash of its patient id; decisions name the clinician.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
# 0006 and 0007 are being written alongside this one; whoever merges re-chains this to the head.
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite() -> bool:
    return bool(op.get_context().dialect.name == "sqlite")


def upgrade() -> None:
    """Add the EHR link to patients, the clinician and row format to decisions."""
    # Plain ADD COLUMN, never batch mode: rebuilding a table on SQLite would drop its triggers
    # (decisions are append-only) or trip the foreign keys that point at patients.
    op.add_column("patients", sa.Column("ehr_iss", sa.String(length=500), nullable=True))
    op.add_column("patients", sa.Column("ehr_link", sa.String(length=64), nullable=True))
    op.create_index(
        "uq_patients_ehr_iss_ehr_link", "patients", ["ehr_iss", "ehr_link"], unique=True
    )
    op.add_column("decisions", sa.Column("clinician", sa.String(length=500), nullable=True))
    # Rows already written keep format 1: their hash covers no clinician (chain.py).
    op.add_column(
        "decisions",
        sa.Column("row_format", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    # A SMART session's user is the fhirUser, a URL longer than any account name.
    if _sqlite():
        # SQLite does not enforce VARCHAR lengths; the rebuilt table has no triggers to lose.
        with op.batch_alter_table("web_sessions") as batch:
            batch.alter_column(
                "username", type_=sa.String(length=500), existing_type=sa.String(length=80)
            )
    else:
        op.alter_column(
            "web_sessions",
            "username",
            type_=sa.String(length=500),
            existing_type=sa.String(length=80),
            existing_nullable=False,
        )


def downgrade() -> None:
    """Drop what this revision added (decisions' clinicians are lost; sessions end)."""
    # Sessions of longer names cannot fit the old column: they end, as at a sign-out.
    op.execute("DELETE FROM web_sessions")
    if _sqlite():
        with op.batch_alter_table("web_sessions") as batch:
            batch.alter_column(
                "username", type_=sa.String(length=80), existing_type=sa.String(length=500)
            )
    else:
        op.alter_column(
            "web_sessions",
            "username",
            type_=sa.String(length=80),
            existing_type=sa.String(length=500),
            existing_nullable=False,
        )
    # DROP COLUMN fires no row trigger, so the append-only decisions keep theirs on both backends.
    op.drop_column("decisions", "row_format")
    op.drop_column("decisions", "clinician")
    op.drop_index("uq_patients_ehr_iss_ehr_link", table_name="patients")
    op.drop_column("patients", "ehr_link")
    op.drop_column("patients", "ehr_iss")
