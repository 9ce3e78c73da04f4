"""The demo patients are seeded through the record use cases, each visit at its own date."""

from __future__ import annotations

import datetime as dt

from fakes import FakeClock, MemoryRecords
from myoguide.adapters.web.demo import demo_courses, seed_demo
from myoguide.service import PatientRecords, Service

TODAY = dt.datetime(2026, 6, 1, 8, 30, tzinfo=dt.UTC)


def test_demo_patients_are_seeded_once_with_dated_answers(service: Service) -> None:
    store = MemoryRecords()
    records = PatientRecords(store, FakeClock(TODAY))
    courses = demo_courses(TODAY.date())
    assert seed_demo(service, records) == len(courses)
    assert sorted(p.label for p in records.patients()) == sorted(courses)
    for patient in records.patients():
        file = records.patient_file(patient.id)
        assert file is not None
        days = [when for when, _ in courses[patient.label]]
        assert [e.visit.visit_date for e in file.course.visits] == sorted(days)
        for entry in file.course.visits:
            [shown] = entry.answers
            # The answer is the one the service gives for that visit's state.
            assert shown.answer.result["knowledge_version"] == service.knowledge.knowledge_version
            assert shown.answer.course == service.assess(entry.visit.state).result.course
            stamp = dt.datetime.combine(entry.visit.visit_date, dt.time(10, 0), tzinfo=dt.UTC)
            assert [a.shown_at for a in store.answers if a.visit_id == entry.visit.id] == [stamp]
            for decision in shown.decisions:
                assert decision.decision == "accepted"
                assert decision.chosen_recommendation == shown.answer.top_recommendation
                assert decision.decided_at == stamp + dt.timedelta(minutes=5)
    # A second start adds nothing: the labels are there already.
    answers = len(store.answers)
    assert seed_demo(service, records) == 0
    assert len(store.answers) == answers
