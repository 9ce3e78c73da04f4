"""Issue 22: the record cannot be re-sealed without the key, and truncation shows (ADR 0018)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from clirun import run_cli
from myoguide.adapters.store import (
    ChainAnchor,
    ChainKeys,
    RecordStore,
    make_engine,
    upgrade,
    verify_chain,
)
from myoguide.adapters.store.chain import answer_row_content, decision_content, link_hash
from myoguide.adapters.store.db import alembic_config
from myoguide.adapters.store.tables import AnswerModel

SHOWN = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
STATE = {"age_years": 54}
RESULT = {"course": "resistant", "scenario": None, "recommendations": [{"id": "r1"}]}
KEY = b"0123456789abcdef0123456789abcdef"
KEYS = ChainKeys((KEY,))


def _fill(records: RecordStore, n: int = 2) -> list[int]:
    """Store n answers, each with a decision; return the answers' ids."""
    patient = records.add_patient("K-1")
    ids = []
    for _ in range(n):
        _, answer_id = records.log_visit_answer(
            patient.id, date(2026, 1, 1), STATE, RESULT, "kv", SHOWN
        )
        records.record_decision(answer_id, "declined", None, "not now", SHOWN)
        ids.append(answer_id)
    return ids


def _unguarded(engine: Engine, *verbs: str) -> None:
    """Lift the append-only guards, as someone with write access to the database can."""
    with engine.begin() as conn:
        for table in ("answers", "decisions"):
            if engine.dialect.name == "sqlite":
                for verb in verbs:
                    conn.execute(text(f"DROP TRIGGER {table}_no_{verb}"))
            else:
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))


def test_a_rewritten_resealed_record_with_a_forged_append_is_detected(
    migrated_url: str,
) -> None:
    engine = make_engine(migrated_url)
    records = RecordStore(engine, keys=KEYS)
    answer_ids = _fill(records)
    assert verify_chain(engine, KEYS).broken is None
    _unguarded(engine, "update")
    # The attack of issue 22: a declined decision becomes accepted, every link after it is
    # recomputed (the attacker knows the format, not the key), and a forged decision appended.
    with engine.begin() as conn:
        answer_hash = {
            r.id: r.row_hash for r in conn.execute(text("SELECT id, row_hash FROM answers"))
        }
        rows = conn.execute(
            text("SELECT id, answer_id, decided_at, decision, reason FROM decisions ORDER BY id")
        ).all()
        prev = "0" * 64
        for r in [*rows, None]:
            decision = "accepted" if r is None or r.id == rows[0].id else r.decision
            content = decision_content(
                answer_id=answer_ids[-1] if r is None else r.answer_id,
                answer_hash=answer_hash[answer_ids[-1] if r is None else r.answer_id],
                decided_at=SHOWN,
                decision=decision,
                chosen_recommendation="r1" if decision == "accepted" else None,
                reason=None if r is None else r.reason,
            )
            forged = link_hash(prev, content)
            if r is None:
                conn.execute(
                    text(
                        "INSERT INTO decisions (answer_id, decided_at, decision, "
                        "chosen_recommendation, reason, prev_hash, row_hash) "
                        "VALUES (:a, :t, 'accepted', 'r1', NULL, :p, :h)"
                    ),
                    {"a": answer_ids[-1], "t": SHOWN, "p": prev, "h": forged},
                )
            else:
                conn.execute(
                    text(
                        "UPDATE decisions SET decision = :d, chosen_recommendation = :c, "
                        "prev_hash = :p, row_hash = :h WHERE id = :i"
                    ),
                    {
                        "d": decision,
                        "c": "r1" if decision == "accepted" else None,
                        "p": prev,
                        "h": forged,
                        "i": r.id,
                    },
                )
            prev = forged
    report = verify_chain(engine, KEYS)
    assert report.broken is not None
    assert f"decisions id {rows[0].id}" in report.broken
    assert "chain key" in report.broken
    # Re-sealed with another key: refused the same way.
    assert verify_chain(engine, ChainKeys((b"another key, 16+ bytes",))).broken is not None
    engine.dispose()


def test_deleting_the_newest_rows_is_detected(migrated_url: str, tmp_path: Path) -> None:
    engine = make_engine(migrated_url)
    anchor = ChainAnchor(tmp_path / "chain_head.json", KEYS)
    records = RecordStore(engine, keys=KEYS, anchor=anchor)
    answer_ids = _fill(records, 3)
    report = verify_chain(engine, KEYS, anchor)
    assert report.broken is None, report.text()
    assert report.anchored
    assert stat.S_IMODE((tmp_path / "chain_head.json").stat().st_mode) == 0o600
    _unguarded(engine, "delete")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM decisions WHERE answer_id = :i"), {"i": answer_ids[-1]})
        conn.execute(text("DELETE FROM answers WHERE id = :i"), {"i": answer_ids[-1]})
    # What remains is a chain that holds on its own...
    assert verify_chain(engine, KEYS).broken is None
    # ...but not against the head kept outside the database.
    report = verify_chain(engine, KEYS, anchor)
    assert report.broken is not None
    assert "answers: the newest rows were removed" in report.broken
    assert f"id {answer_ids[-1]}" in report.broken
    engine.dispose()


def test_an_edited_head_file_is_named(migrated_url: str, tmp_path: Path) -> None:
    engine = make_engine(migrated_url)
    anchor = ChainAnchor(tmp_path / "chain_head.json", KEYS)
    _fill(RecordStore(engine, keys=KEYS, anchor=anchor), 2)
    doc = json.loads(anchor.path.read_text())
    doc["answers"]["id"] -= 1
    anchor.path.write_text(json.dumps(doc))
    report = verify_chain(engine, KEYS, anchor)
    assert report.broken is not None
    assert "altered" in report.broken
    engine.dispose()


def test_rotation_keeps_old_rows_verifiable(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    _fill(RecordStore(engine, keys=KEYS), 1)
    rotated = ChainKeys((b"the new key, rotated in 2027", KEY))
    _fill_more = RecordStore(engine, keys=rotated)
    patient = _fill_more.add_patient("K-2")
    _fill_more.log_answer(patient.id, None, STATE, RESULT, "kv", SHOWN)
    assert verify_chain(engine, rotated).broken is None
    # Without the old key, the rows it sealed no longer verify.
    assert verify_chain(engine, ChainKeys(rotated.keys[:1])).broken is not None
    engine.dispose()


def test_revision_0006_reseals_an_intact_sha256_chain(empty_url: str) -> None:
    upgrade(empty_url, chain_key=KEY)
    engine = make_engine(empty_url)
    _fill(RecordStore(engine, keys=KEYS), 2)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes.update(connection=conn, chain_key=KEY)
        command.downgrade(config, "0005")
    # Back at 0005 the chain is plain SHA-256, as revision 0004 made it.
    with Session(engine) as session:
        row = session.scalars(select(AnswerModel).order_by(AnswerModel.id).limit(1)).one()
        assert row.row_hash == link_hash("0" * 64, answer_row_content(row))
    with pytest.raises(RuntimeError, match="no chain key"):
        upgrade(empty_url)
    upgrade(empty_url, chain_key=KEY)
    assert verify_chain(engine, KEYS).broken is None
    engine.dispose()


def test_revision_0006_refuses_to_reseal_a_broken_chain(empty_url: str) -> None:
    upgrade(empty_url, chain_key=KEY)
    engine = make_engine(empty_url)
    _fill(RecordStore(engine, keys=KEYS), 1)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes.update(connection=conn, chain_key=KEY)
        command.downgrade(config, "0005")
    _unguarded(engine, "update")
    with engine.begin() as conn:
        conn.execute(text("UPDATE decisions SET decision = 'accepted'"))
    with pytest.raises(RuntimeError, match=r"decisions id \d+ does not hold"):
        upgrade(empty_url, chain_key=KEY)
    engine.dispose()


def test_record_verify_uses_the_data_folders_key_and_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    data = tmp_path / "data"
    first = run_cli("record", "verify", "--database-url", url, "--data-dir", str(data))
    assert first.code == 0, first.stdout + first.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "chain_key").stat().st_mode) == 0o600
    keys = ChainKeys((data.joinpath("chain_key").read_text().strip().encode(),))
    engine = make_engine(url)
    ids = _fill(RecordStore(engine, keys=keys, anchor=ChainAnchor(data / "chain_head.json", keys)))
    ok = run_cli("record", "verify", "--database-url", url, "--data-dir", str(data))
    assert ok.code == 0, ok.stdout
    assert "heads kept outside the database match" in ok.stdout
    _unguarded(engine, "delete")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM decisions WHERE answer_id = :i"), {"i": ids[-1]})
    res = run_cli("record", "verify", "--database-url", url, "--data-dir", str(data))
    assert res.code == 4
    assert "decisions: the newest rows were removed" in res.stdout
    engine.dispose()
