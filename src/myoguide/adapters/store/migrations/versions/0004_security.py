"""Tamper evidence and shared security state: hash chain, id-reuse and visit guards, token ids,
server-side sessions, the sign-in throttle and the write probe.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAINED = ("answers", "decisions")
NO_REUSE = ("answers", "decisions", "visits")
PG_FUNCTION = "myoguide_append_only"  # created by revision 0002
GENESIS = "0" * 64


# ---- the chain's format, version 1, spelled out so this revision never changes ----------------
# adapters/store/chain.py computes the same; tests/store check both agree on every backend.


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _instant(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def _hash(prev: str, content: Mapping[str, Any]) -> str:
    text = json.dumps(
        _plain(content), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(f"{prev}\n{text}".encode()).hexdigest()


def _json(value: Any) -> Any:
    # SQLite's JSON column comes back as text through plain Core reflection of the raw table.
    return json.loads(value) if isinstance(value, str) else value


def _backfill() -> None:
    """Chain the rows already stored, oldest id first."""
    conn = op.get_bind()
    prev = GENESIS
    answer_hash: dict[int, str] = {}
    rows = conn.execute(
        sa.text(
            "SELECT id, patient_id, visit_id, shown_at, knowledge_version, input, result, "
            "course, scenario, top_recommendation FROM answers ORDER BY id"
        ).columns(shown_at=sa.DateTime(timezone=True))
    ).all()
    for r in rows:
        content = {
            "patient_id": r.patient_id,
            "visit_id": r.visit_id,
            "shown_at": _instant(r.shown_at),
            "knowledge_version": r.knowledge_version,
            "input": _json(r.input),
            "result": _json(r.result),
            "course": r.course,
            "scenario": r.scenario,
            "top_recommendation": r.top_recommendation,
        }
        digest = _hash(prev, content)
        conn.execute(
            sa.text("UPDATE answers SET prev_hash = :p, row_hash = :h WHERE id = :i"),
            {"p": prev, "h": digest, "i": r.id},
        )
        answer_hash[r.id] = prev = digest
    prev = GENESIS
    rows = conn.execute(
        sa.text(
            "SELECT id, answer_id, decided_at, decision, chosen_recommendation, reason "
            "FROM decisions ORDER BY id"
        ).columns(decided_at=sa.DateTime(timezone=True))
    ).all()
    for r in rows:
        content = {
            "answer_id": r.answer_id,
            "answer_hash": answer_hash.get(r.answer_id),
            "decided_at": _instant(r.decided_at),
            "decision": r.decision,
            "chosen_recommendation": r.chosen_recommendation,
            "reason": r.reason,
        }
        digest = _hash(prev, content)
        conn.execute(
            sa.text("UPDATE decisions SET prev_hash = :p, row_hash = :h WHERE id = :i"),
            {"p": prev, "h": digest, "i": r.id},
        )
        prev = digest


def _pg() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")


def _set_update_guard(enabled: bool) -> None:
    """Lift (or restore) revision 0002's UPDATE guard on the chained tables for the backfill."""
    for table in CHAINED:
        if _pg():
            verb = "ENABLE" if enabled else "DISABLE"
            op.execute(f"ALTER TABLE {table} {verb} TRIGGER {table}_append_only")
        elif enabled:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END"
            )
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")


def _create_guards() -> None:
    if _pg():
        # PostgreSQL never lets an INSERT replace a row: a reused id is a key violation, and
        # INSERT ... ON CONFLICT DO UPDATE fires the UPDATE guard. Visits get 0002's guard.
        op.execute(
            f"CREATE TRIGGER visits_append_only BEFORE UPDATE OR DELETE ON visits "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()"
        )
        op.execute(
            f"CREATE TRIGGER visits_no_truncate BEFORE TRUNCATE ON visits "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()"
        )
        return
    # SQLite's INSERT OR REPLACE deletes the old row without firing DELETE triggers (unless
    # recursive_triggers is on), so a reused id is refused before the insert.
    for table in NO_REUSE:
        op.execute(
            f"CREATE TRIGGER {table}_no_reuse BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE id = NEW.id) "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: INSERT reusing an id refused'); "
            f"END"
        )
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER visits_no_{verb.lower()} BEFORE {verb} ON visits "
            f"BEGIN SELECT RAISE(ABORT, 'visits is append-only: {verb} refused'); END"
        )


def _drop_guards() -> None:
    if _pg():
        op.execute("DROP TRIGGER IF EXISTS visits_no_truncate ON visits")
        op.execute("DROP TRIGGER IF EXISTS visits_append_only ON visits")
        return
    for table in NO_REUSE:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_reuse")
    op.execute("DROP TRIGGER IF EXISTS visits_no_update")
    op.execute("DROP TRIGGER IF EXISTS visits_no_delete")


def upgrade() -> None:
    """Add the chain columns (backfilled), the guards, and the security tables."""
    for table in CHAINED:
        op.add_column(table, sa.Column("prev_hash", sa.String(length=64), nullable=True))
        op.add_column(table, sa.Column("row_hash", sa.String(length=64), nullable=True))
    _set_update_guard(False)
    _backfill()
    _set_update_guard(True)
    _create_guards()
    op.create_table(
        "token_jtis",
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("jti", sa.String(length=500), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name=op.f("pk_token_jtis")),
    )
    op.create_index("ix_token_jtis_expires_at", "token_jtis", ["expires_at"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    op.create_index("ix_web_sessions_username", "web_sessions", ["username"])
    op.create_table(
        "signin_throttle",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_signin_throttle")),
    )
    op.create_table(
        "store_health",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_health")),
    )


def downgrade() -> None:
    """Drop what this revision added."""
    op.drop_table("store_health")
    op.drop_table("signin_throttle")
    op.drop_index("ix_web_sessions_username", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index("ix_token_jtis_expires_at", table_name="token_jtis")
    op.drop_table("token_jtis")
    _drop_guards()
    for table in CHAINED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("row_hash")
            batch.drop_column("prev_hash")
    if not _pg():
        # SQLite's batch mode rebuilt the tables, which dropped revision 0002's triggers.
        for table in CHAINED:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb.lower()}")
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
                )
