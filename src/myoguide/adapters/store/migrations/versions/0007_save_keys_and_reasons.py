"""One save per intent and structured decision reasons.

A visit may carry the save key of the form that saved it, unique per patient, so a repeated
submit finds the visit already saved instead of making a second one. A decision may carry a
coded reason beside its free text, in the style of CDS Hooks override reasons.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from tables.py, so this revision never changes after release.
REASON_CODES = (
    "patient_preference",
    "contraindication",
    "cost_or_access",
    "already_tried",
    "clinical_judgment",
    "other",
)
UNIQUE_KEY = "uq_visits_patient_id_save_key"


def upgrade() -> None:
    """Add visits.save_key (unique per patient) and decisions.reason_code (a known code)."""
    # Plain ADD COLUMN, not batch mode: SQLite's batch mode rebuilds the table and would drop
    # the append-only triggers of revisions 0002 and 0004 with it.
    op.add_column("visits", sa.Column("save_key", sa.String(length=64), nullable=True))
    op.create_index(UNIQUE_KEY, "visits", ["patient_id", "save_key"], unique=True)
    op.add_column("decisions", sa.Column("reason_code", sa.String(length=32), nullable=True))
    codes = ", ".join(f"'{c}'" for c in REASON_CODES)
    if op.get_context().dialect.name == "postgresql":
        op.create_check_constraint("reason_code", "decisions", f"reason_code IN ({codes})")
        return
    # SQLite cannot add a CHECK to an existing table: a trigger refuses the same rows.
    op.execute(
        "CREATE TRIGGER decisions_reason_code BEFORE INSERT ON decisions "
        f"WHEN NEW.reason_code IS NOT NULL AND NEW.reason_code NOT IN ({codes}) "
        "BEGIN SELECT RAISE(ABORT, 'decisions.reason_code: not a known reason'); END"
    )


def downgrade() -> None:
    """Drop decisions.reason_code and visits.save_key."""
    if op.get_context().dialect.name == "postgresql":
        op.drop_constraint("reason_code", "decisions", type_="check")
    else:
        op.execute("DROP TRIGGER IF EXISTS decisions_reason_code")
    op.drop_column("decisions", "reason_code")
    op.drop_index(UNIQUE_KEY, table_name="visits")
    op.drop_column("visits", "save_key")
