"""Patients' courses for the clinician's page, append-only answers and decisions, and users.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from tables.py, so this revision never changes after release.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
APPEND_ONLY = ("answers", "decisions")
PG_FUNCTION = "myoguide_append_only"

# No '%' in the body: drivers with pyformat parameters would rewrite it.
# CREATE OR REPLACE: dropping the tables drops their triggers but leaves this function behind.
PG_CREATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP || ' refused',
        ERRCODE = 'restrict_violation';
END;
$$
"""


def _create_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_CREATE_FUNCTION)
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
            )
        return
    for table in APPEND_ONLY:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
            )


def _drop_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")
        return
    for table in APPEND_ONLY:
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")


def upgrade() -> None:
    """Create the patients, visits, answers, decisions and users tables and their triggers."""
    op.create_table(
        "patients",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(label) BETWEEN 1 AND 80", name=op.f("ck_patients_label_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("label", name=op.f("uq_patients_label")),
    )
    op.create_table(
        "visits",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("visit_date", sa.Date(), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_visits_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visits")),
    )
    op.create_index("ix_visits_patient_id_visit_date", "visits", ["patient_id", "visit_date"])
    op.create_table(
        "answers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("patient_id", ID, nullable=False),
        sa.Column("visit_id", ID, nullable=True),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("knowledge_version", sa.String(length=64), nullable=False),
        sa.Column("input", JSON, nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("course", sa.String(length=16), nullable=False),
        sa.Column("scenario", sa.String(length=64), nullable=True),
        sa.Column("top_recommendation", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "course IN ('recurrent', 'resistant', 'controlled', 'out_of_scope')",
            name=op.f("ck_answers_course"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_answers_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"], ["visits.id"], name=op.f("fk_answers_visit_id_visits")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answers")),
    )
    op.create_index("ix_answers_patient_id_shown_at", "answers", ["patient_id", "shown_at"])
    op.create_index(op.f("ix_answers_visit_id"), "answers", ["visit_id"])
    op.create_table(
        "decisions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("answer_id", ID, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("chosen_recommendation", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "decision IN ('accepted', 'chose_other', 'declined')",
            name=op.f("ck_decisions_decision"),
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["answers.id"], name=op.f("fk_decisions_answer_id_answers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index(op.f("ix_decisions_answer_id"), "decisions", ["answer_id"])
    op.create_table(
        "users",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "length(username) BETWEEN 1 AND 80", name=op.f("ck_users_username_length")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    _create_triggers()


def downgrade() -> None:
    """Drop the triggers and the tables this revision created."""
    _drop_triggers()
    op.drop_table("users")
    op.drop_index(op.f("ix_decisions_answer_id"), table_name="decisions")
    op.drop_table("decisions")
    op.drop_index(op.f("ix_answers_visit_id"), table_name="answers")
    op.drop_index("ix_answers_patient_id_shown_at", table_name="answers")
    op.drop_table("answers")
    op.drop_index("ix_visits_patient_id_visit_date", table_name="visits")
    op.drop_table("visits")
    op.drop_table("patients")
