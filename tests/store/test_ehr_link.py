"""A SMART launch's patient on the local record: keyed by (EHR, HMAC of its patient id), and
decisions naming the clinician in the chain (content version 2), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from fakes import FakeClock
from myoguide.adapters.smart.link import PatientLinks
from myoguide.adapters.store import RecordStore, make_engine, upgrade, verify_chain
from myoguide.adapters.store.chain import UNKEYED, ChainKeys
from myoguide.adapters.store.db import alembic_config
from myoguide.service import PatientRecords

pytestmark = pytest.mark.timeout(900)

EHR = "https://ehr.example.org/fhir/r4"
OTHER_EHR = "https://other.example.org/fhir"
RAW_ID = "raw-ehr-id-5f1c0a"  # an EHR patient id; it must never reach the database
DOCTOR = "https://ehr.example.org/fhir/r4/Practitioner/dr-7"
SHOWN = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
STATE = {"age_years": 58, "diagnosis": "dermatomyositis"}
RESULT = {"course": "resistant", "scenario": None, "recommendations": [{"id": "add_ivig"}]}


def _records(engine: Engine) -> PatientRecords:
    return PatientRecords(RecordStore(engine), FakeClock(SHOWN))


def _dump(engine: Engine) -> str:
    """Return every row of every table as text: what a copy of the database would show."""
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(
            repr(row) for table in tables.sorted_tables for row in conn.execute(select(table))
        )


def test_the_same_ehr_patient_finds_the_same_record_and_no_other(engine: Engine) -> None:
    links, records = PatientLinks("server-secret"), _records(engine)
    first = records.ehr_patient(EHR, links.link(EHR, RAW_ID))
    # The same EHR, spelled with its trailing slash, and the same id: the same record.
    assert records.ehr_patient(EHR, links.link(EHR + "/", RAW_ID)).id == first.id
    assert first.label.startswith("EHR patient ")
    assert RAW_ID not in first.label
    # The same id at another EHR, or another id at this one, is another patient.
    other_ehr = records.ehr_patient(OTHER_EHR, links.link(OTHER_EHR, RAW_ID))
    other_id = records.ehr_patient(EHR, links.link(EHR, RAW_ID + "-2"))
    assert len({first.id, other_ehr.id, other_id.id}) == 3
    # Another server key makes another link: the hash is keyed, not a plain digest.
    assert PatientLinks("another-secret").link(EHR, RAW_ID) != links.link(EHR, RAW_ID)
    # A patient added by hand is never found by a link.
    records.add_patient("by hand")
    assert len(records.patients()) == 4


def test_the_raw_ehr_id_is_nowhere_in_the_database(engine: Engine) -> None:
    records = _records(engine)
    patient = records.ehr_patient(EHR, PatientLinks("k").link(EHR, RAW_ID))
    _visit_id, answer_id = records.store.log_visit_answer(
        patient.id, SHOWN.date(), STATE, RESULT, "kv", SHOWN
    )
    records.record_decision(answer_id, "accepted", None, None, clinician=DOCTOR)
    dump = _dump(engine)
    assert DOCTOR in dump
    assert patient.label in dump
    assert RAW_ID not in dump
    exported = records.export(patient.id)
    assert exported is not None
    assert exported["decisions"][0]["clinician"] == DOCTOR


def test_the_store_refuses_anything_but_a_keyed_hash(engine: Engine) -> None:
    store = RecordStore(engine)
    for bad in (RAW_ID, "A" * 64, "0" * 63, "g" * 64):
        with pytest.raises(ValueError, match="ehr_link"):
            store.linked_patient(EHR, bad, "EHR patient x")
    with pytest.raises(ValueError, match="ehr_iss"):
        store.linked_patient("", "0" * 64, "EHR patient x")
    assert _dump(engine).count("EHR patient") == 0


def test_a_label_taken_by_hand_gets_a_longer_pseudonym(engine: Engine) -> None:
    records = _records(engine)
    link = PatientLinks("k").link(EHR, RAW_ID)
    records.add_patient(f"EHR patient {link[:12]}")
    patient = records.ehr_patient(EHR, link)
    assert patient.label == f"EHR patient {link[:20]}"
    assert records.ehr_patient(EHR, link).id == patient.id


def test_the_database_allows_one_record_per_ehr_patient(engine: Engine) -> None:
    store = RecordStore(engine)
    store.linked_patient(EHR, "a" * 64, "one")
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO patients (label, created_at, ehr_iss, ehr_link) "
                "VALUES ('two', :now, :iss, :link)"
            ),
            {"now": now, "iss": EHR, "link": "a" * 64},
        )


def _lift_guard(engine: Engine) -> None:
    """Lift the decisions' UPDATE guard, as someone holding the database could."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER decisions_no_update"))
        else:
            conn.execute(text("ALTER TABLE decisions DISABLE TRIGGER decisions_append_only"))


def test_decisions_written_before_0008_still_verify_beside_new_ones(empty_url: str) -> None:
    # A record written by the release before revision 0008 (rows as of 0003, chained by 0004).
    engine = make_engine(empty_url)
    with engine.connect() as conn, conn.begin():
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
    tables = MetaData()
    tables.reflect(engine, only=["patients", "answers", "decisions"])

    def add(table: str, **values: Any) -> int:
        with engine.begin() as conn:
            key = conn.execute(insert(Table(table, tables)).values(**values)).inserted_primary_key
            assert key is not None
            return int(key[0])

    naive = SHOWN.replace(tzinfo=None)
    pid = add("patients", label="old", created_at=naive)
    aid = add(
        "answers",
        patient_id=pid,
        visit_id=None,
        shown_at=naive,
        knowledge_version="kv",
        input=STATE,
        result=RESULT,
        course="resistant",
        scenario=None,
        top_recommendation="add_ivig",
    )
    add("decisions", answer_id=aid, decided_at=naive, decision="declined", reason="old row")
    engine.dispose()
    # Revision 0006 re-seals the old rows under a chain key; the stores below use the same one.
    upgrade(empty_url, chain_key=UNKEYED.keys[0])
    engine = make_engine(empty_url)
    try:
        assert {c["name"] for c in inspect(engine).get_columns("decisions")} >= {
            "clinician",
            "content_version",
        }
        RecordStore(engine).record_decision(aid, "accepted", None, None, SHOWN, clinician=DOCTOR)
        report = verify_chain(engine)
        assert report.broken is None, report.text()
        assert report.decisions == 2
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT content_version, clinician FROM decisions ORDER BY id")
            )
            assert [tuple(r) for r in rows] == [(1, None), (2, DOCTOR)]

        # A new row's clinician is covered by its hash; an old row cannot gain one.
        _lift_guard(engine)
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE decisions SET clinician = 'dr-forged' WHERE content_version = 2")
            )
        broken = verify_chain(engine).broken
        assert broken is not None
        assert "decisions id 2" in broken
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE decisions SET clinician = :c WHERE content_version = 2"), {"c": DOCTOR}
            )
            conn.execute(
                text("UPDATE decisions SET clinician = 'dr-forged' WHERE content_version = 1")
            )
        broken = verify_chain(engine).broken
        assert broken is not None
        assert "decisions id 1" in broken
        assert "version-1" in broken
        # Nor can a new row pass as an old one by dropping its clinician and version.
        with engine.begin() as conn:
            conn.execute(text("UPDATE decisions SET clinician = NULL WHERE id = 1"))
            conn.execute(
                text("UPDATE decisions SET clinician = NULL, content_version = 1 WHERE id = 2")
            )
        broken = verify_chain(engine).broken
        assert broken is not None
        assert "decisions id 2" in broken
    finally:
        engine.dispose()


def test_concurrent_launches_of_one_patient_make_one_record(migrated_url: str) -> None:
    link = PatientLinks("k").link(EHR, RAW_ID)
    engines = [make_engine(migrated_url) for _ in range(4)]
    start = threading.Barrier(len(engines))

    def launch(engine: Engine) -> int:
        start.wait()
        return _records(engine).ehr_patient(EHR, link).id

    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            ids = set(pool.map(launch, engines))
        assert len(ids) == 1
        assert len(_records(engines[0]).patients()) == 1
    finally:
        for engine in engines:
            engine.dispose()


def test_going_back_before_0008_reseals_decisions_without_the_clinician(empty_url: str) -> None:
    key = b"0123456789abcdef0123456789abcdef"
    keys = ChainKeys((key,))
    upgrade(empty_url, chain_key=key)
    engine = make_engine(empty_url)
    store = RecordStore(engine, keys=keys)
    patient = store.add_patient("P-back")
    _, answer_id = store.log_visit_answer(patient.id, SHOWN.date(), STATE, RESULT, "kv", SHOWN)
    store.record_decision(answer_id, "declined", None, "first", SHOWN)
    store.record_decision(answer_id, "accepted", None, None, SHOWN, clinician=DOCTOR)
    config = alembic_config()
    # Without the key the clinicians' rows cannot be checked and re-sealed: refused.
    with engine.begin() as conn:
        config.attributes.update(connection=conn)
        with pytest.raises(RuntimeError, match="no chain key"):
            command.downgrade(config, "0006")
        conn.rollback()
    with engine.begin() as conn:
        config.attributes.update(connection=conn, chain_key=key)
        command.downgrade(config, "0006")
    assert "clinician" not in {c["name"] for c in inspect(engine).get_columns("decisions")}
    upgrade(empty_url, chain_key=key)
    # Back at head the rows are version 1, no clinician, and the chain holds under the key.
    report = verify_chain(engine, keys)
    assert report.broken is None, report.text()
    assert report.decisions == 2
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT content_version, clinician FROM decisions"))
        assert {tuple(r) for r in rows} == {(1, None)}
    engine.dispose()
