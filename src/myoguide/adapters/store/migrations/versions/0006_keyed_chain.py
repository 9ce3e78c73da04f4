"""Keyed chain: answers and decisions re-sealed with HMAC-SHA256 under a key outside the database.

The plain SHA-256 chain of revision 0004 is checked first; a broken chain is never re-sealed
(that would launder the tampering). The key comes from `db.upgrade(url, chain_key=...)`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAINED = ("answers", "decisions")
GENESIS = "0" * 64

# ---- the chain's formats 1 and 2, spelled out so this revision never changes ------------------
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


def _message(prev: str, content: Mapping[str, Any]) -> bytes:
    text = json.dumps(
        _plain(content), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return f"{prev}\n{text}".encode()


def _sha256(prev: str, content: Mapping[str, Any]) -> str:
    return hashlib.sha256(_message(prev, content)).hexdigest()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _rows() -> tuple[list[tuple[int, str | None, str | None, dict[str, Any]]], ...]:
    """Return both chains' rows as (id, prev_hash, row_hash, content), oldest first."""
    conn = op.get_bind()
    answers = [
        (
            r.id,
            r.prev_hash,
            r.row_hash,
            {
                "patient_id": r.patient_id,
                "visit_id": r.visit_id,
                "shown_at": _instant(r.shown_at),
                "knowledge_version": r.knowledge_version,
                "input": _json(r.input),
                "result": _json(r.result),
                "course": r.course,
                "scenario": r.scenario,
                "top_recommendation": r.top_recommendation,
            },
        )
        for r in conn.execute(
            sa.text(
                "SELECT id, prev_hash, row_hash, patient_id, visit_id, shown_at, "
                "knowledge_version, input, result, course, scenario, top_recommendation "
                "FROM answers ORDER BY id"
            ).columns(shown_at=sa.DateTime(timezone=True))
        )
    ]
    decisions = [
        (
            r.id,
            r.prev_hash,
            r.row_hash,
            {
                "answer_id": r.answer_id,
                "answer_hash": None,  # filled with the re-sealed answer's link below
                "decided_at": _instant(r.decided_at),
                "decision": r.decision,
                "chosen_recommendation": r.chosen_recommendation,
                "reason": r.reason,
            },
        )
        for r in conn.execute(
            sa.text(
                "SELECT id, prev_hash, row_hash, answer_id, decided_at, decision, "
                "chosen_recommendation, reason FROM decisions ORDER BY id"
            ).columns(decided_at=sa.DateTime(timezone=True))
        )
    ]
    return answers, decisions


def _rechain(
    old: Callable[[str, Mapping[str, Any]], str],
    new: Callable[[str, Mapping[str, Any]], str],
) -> None:
    """Check every link under the old format, then rewrite both chains under the new one."""
    answers, decisions = _rows()
    old_answer: dict[int, str | None] = {}
    new_answer: dict[int, str] = {}
    for table, rows in (("answers", answers), ("decisions", decisions)):
        prev_old = prev_new = GENESIS
        for row_id, stored_prev, stored, content in rows:
            if table == "decisions":
                content = dict(content, answer_hash=old_answer.get(content["answer_id"]))
            if stored_prev != prev_old or stored != old(prev_old, content):
                raise RuntimeError(
                    f"revision 0006: {table} id {row_id} does not hold under the current "
                    f"chain format, so the record is not re-sealed; run 'myoguide record "
                    f"verify' with the previous release and investigate"
                )
            if table == "decisions":
                content = dict(content, answer_hash=new_answer.get(content["answer_id"]))
            digest = new(prev_new, content)
            op.get_bind().execute(
                sa.text(f"UPDATE {table} SET prev_hash = :p, row_hash = :h WHERE id = :i"),
                {"p": prev_new, "h": digest, "i": row_id},
            )
            if table == "answers":
                old_answer[row_id] = stored
                new_answer[row_id] = digest
            prev_old, prev_new = stored, digest


def _pg() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")


def _set_update_guard(enabled: bool) -> None:
    """Lift (or restore) the UPDATE guard on the chained tables for the re-sealing."""
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


def _count() -> int:
    conn = op.get_bind()
    return sum(int(conn.scalar(sa.text(f"SELECT count(*) FROM {t}")) or 0) for t in CHAINED)


def upgrade() -> None:
    """Re-seal the stored chains with HMAC-SHA256 under the configured key."""
    if _count() == 0:
        return
    key = context.config.attributes.get("chain_key")
    if not isinstance(key, bytes) or len(key) < 16:
        raise RuntimeError(
            "revision 0006: the record holds chained rows and no chain key was given to "
            "re-seal them; run 'myoguide serve' or 'myoguide migrate' with the data folder "
            "(or MYOGUIDE_CHAIN_KEY)"
        )

    def mac(prev: str, content: Mapping[str, Any]) -> str:
        return hmac.new(key, _message(prev, content), hashlib.sha256).hexdigest()

    _set_update_guard(False)
    _rechain(_sha256, mac)
    _set_update_guard(True)


def downgrade() -> None:
    """Return the chains to plain SHA-256 (the key, if given, checks them first)."""
    if _count() == 0:
        return
    key = context.config.attributes.get("chain_key")

    def mac(prev: str, content: Mapping[str, Any]) -> str:
        if not isinstance(key, bytes):
            raise RuntimeError("revision 0006 downgrade: the chain key is needed to check")
        return hmac.new(key, _message(prev, content), hashlib.sha256).hexdigest()

    _set_update_guard(False)
    _rechain(mac, _sha256)
    _set_update_guard(True)
