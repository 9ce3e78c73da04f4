"""Patients linked to an EHR by a keyed hash of its patient id; decisions name the clinician.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


GENESIS = "0" * 64


def _sqlite() -> bool:
    return bool(op.get_context().dialect.name == "sqlite")


# ---- a decision's content, versions 1 and 2, spelled out so this revision never changes -------
# adapters/store/chain.py computes the same (the keyed chain of revision 0006).


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


def _mac(key: bytes, prev: str, content: Mapping[str, Any]) -> str:
    text = json.dumps(
        _plain(content), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hmac.new(key, f"{prev}\n{text}".encode(), hashlib.sha256).hexdigest()


def _content(row: Any, answer_hash: str | None, version: int) -> dict[str, Any]:
    content: dict[str, Any] = {
        "answer_id": row.answer_id,
        "answer_hash": answer_hash,
        "decided_at": _instant(row.decided_at),
        "decision": row.decision,
        "chosen_recommendation": row.chosen_recommendation,
        "reason": row.reason,
    }
    # Revision 0007's coded reason is covered only when given (as chain.py seals it).
    if row.reason_code is not None:
        content["reason_code"] = row.reason_code
    if version == 2:
        content.update(content_version=2, clinician=row.clinician)
    return content


def _set_update_guard(enabled: bool) -> None:
    """Lift (or restore) the decisions' UPDATE guard for the re-sealing."""
    if not _sqlite():
        verb = "ENABLE" if enabled else "DISABLE"
        op.execute(f"ALTER TABLE decisions {verb} TRIGGER decisions_append_only")
    elif enabled:
        op.execute(
            "CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions "
            "BEGIN SELECT RAISE(ABORT, 'decisions is append-only: UPDATE refused'); END"
        )
    else:
        op.execute("DROP TRIGGER IF EXISTS decisions_no_update")


def _reseal_as_version_1() -> None:
    """Check every decision's link, then re-seal the chain with no clinician (version 1)."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT id, prev_hash, row_hash, answer_id, decided_at, decision, "
            "chosen_recommendation, reason, reason_code, clinician, content_version "
            "FROM decisions ORDER BY id"
        ).columns(decided_at=sa.DateTime(timezone=True))
    ).all()
    if all(r.content_version == 1 for r in rows):
        return
    key = context.config.attributes.get("chain_key")
    if not isinstance(key, bytes) or len(key) < 16:
        raise RuntimeError(
            "revision 0008 downgrade: decisions naming a clinician must be re-sealed without "
            "it, and no chain key was given to check and re-seal them"
        )
    answers: dict[int, str | None] = {
        int(i): h for i, h in conn.execute(sa.text("SELECT id, row_hash FROM answers"))
    }
    _set_update_guard(False)
    prev_old = prev_new = GENESIS
    for r in rows:
        answer_hash = answers.get(r.answer_id)
        if r.prev_hash != prev_old or r.row_hash != _mac(
            key, prev_old, _content(r, answer_hash, r.content_version)
        ):
            raise RuntimeError(
                f"revision 0008 downgrade: decisions id {r.id} does not hold under the chain "
                f"key, so the record is not re-sealed; run 'myoguide record verify'"
            )
        digest = _mac(key, prev_new, _content(r, answer_hash, 1))
        conn.execute(
            sa.text("UPDATE decisions SET prev_hash = :p, row_hash = :h WHERE id = :i"),
            {"p": prev_new, "h": digest, "i": r.id},
        )
        prev_old, prev_new = r.row_hash, digest
    _set_update_guard(True)


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
    # Rows already written keep content version 1: their link covers no clinician (chain.py).
    op.add_column(
        "decisions",
        sa.Column("content_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
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
    """Drop what this revision added: decisions lose their clinician (re-sealed, checked
    first, under the chain key), EHR patients their link, and sessions end."""
    _reseal_as_version_1()
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
    op.drop_column("decisions", "content_version")
    op.drop_column("decisions", "clinician")
    op.drop_index("uq_patients_ehr_iss_ehr_link", table_name="patients")
    op.drop_column("patients", "ehr_link")
    op.drop_column("patients", "ehr_iss")
