"""The patient-record use cases read and write through the RecordStore port (in memory here)."""

from __future__ import annotations

import datetime as dt

import pytest

from fakes import FakeClock, MemoryRecords
from myoguide.adapters.jsonio import to_jsonable
from myoguide.service import PatientRecords, Service

NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
STATE = {
    "age_years": 58,
    "diagnosis": "dermatomyositis",
    "disease_control_achieved": False,
    "current_medications": [{"agent": "prednisone", "dose": {"value": 20, "unit": "mg/day"}}],
    "treatment_history": [],
    "alternative_diagnoses_excluded": True,
}


@pytest.fixture
def records() -> PatientRecords:
    return PatientRecords(MemoryRecords(), FakeClock(NOON))


def _log(records: PatientRecords, service: Service, patient_id: int, day: dt.date | None) -> int:
    result = service.recommend(STATE)
    return records.log_answer(patient_id, STATE, result, to_jsonable(result), day)


def test_an_unknown_patient_reads_as_none(records: PatientRecords) -> None:
    assert records.patient(7) is None
    assert records.patient_file(7) is None
    assert records.export(7) is None


def test_a_saved_visit_is_read_back_with_its_answer_and_decision(
    records: PatientRecords, service: Service
) -> None:
    patient = records.add_patient("P-1")
    answer = _log(records, service, patient.id, dt.date(2026, 3, 1))
    records.clock.at = NOON + dt.timedelta(minutes=3)  # type: ignore[attr-defined]
    records.record_decision(answer, "declined", None, "patient prefers to wait")
    file = records.patient_file(patient.id)
    assert file is not None
    assert file.patient.label == "P-1"
    [entry] = file.course.visits
    assert entry.visit.visit_date == dt.date(2026, 3, 1)
    assert file.visit(entry.visit.id) is entry
    assert file.visit(entry.visit.id + 1) is None
    [shown] = entry.answers
    assert shown.answer.result["knowledge_version"] == service.knowledge.knowledge_version
    [decided] = shown.decisions
    assert (decided.decision, decided.reason) == ("declined", "patient prefers to wait")
    store = records.store
    assert isinstance(store, MemoryRecords)
    # Each write is stamped by the use case's clock, not the store's.
    assert store.answers[0].shown_at == NOON
    assert store.decisions[0].decided_at == NOON + dt.timedelta(minutes=3)


def test_an_answer_without_a_date_is_logged_but_saves_no_visit(
    records: PatientRecords, service: Service
) -> None:
    patient = records.add_patient("P-2")
    _log(records, service, patient.id, None)
    file = records.patient_file(patient.id)
    assert file is not None
    assert file.course.visits == []
    store = records.store
    assert isinstance(store, MemoryRecords)
    assert [a.visit_id for a in store.answers] == [None]


def test_patients_and_export_go_through_the_store(records: PatientRecords) -> None:
    records.add_patient("B")
    a = records.add_patient("A")
    assert [p.label for p in records.patients()] == ["A", "B"]
    assert records.export(a.id) == {"label": "A", "visits": []}
    with pytest.raises(ValueError, match="label"):
        records.add_patient("A")


def test_a_decision_on_an_unknown_answer_is_refused(records: PatientRecords) -> None:
    with pytest.raises(LookupError):
        records.record_decision(99, "accepted", None, None)
