"""A drug known to name no guideline agent is answered at once, and nothing else changes."""

from __future__ import annotations

import datetime
import gc
import threading

import synthea_shapes

from myoguide.adapters.fhir import bundle_to_state
from myoguide.adapters.gcpause import gc_paused

DAY = datetime.date(2026, 11, 21)
OINTMENT = ("1000000", "tacrolimus 0.1 % Topical Ointment")


def _chart(*products: tuple[str, str]) -> dict:
    resources = [synthea_shapes.patient(), synthea_shapes.dm()]
    for n, product in enumerate(products):
        resources.append(
            synthea_shapes.request(product, seed=f"q-{n}", lines=[synthea_shapes.dosage(1)])
        )
    return synthea_shapes.bundle(*resources)


def test_a_repeated_topical_form_is_warned_about_at_every_record() -> None:
    other = synthea_shapes.OTHERS[0]
    result = bundle_to_state(_chart(other, OINTMENT, other, OINTMENT, other), evaluation_date=DAY)
    topical = [w for w in result.warnings if w.code == "medication_topical"]
    # One warning per ointment record, each naming its own record; the statin says nothing.
    assert len(topical) == 2
    assert len({w.resource for w in topical}) == 2
    assert result.state["current_medications"] == []


def test_the_big_chart_reads_the_same_however_often_its_drugs_repeat() -> None:
    chart = synthea_shapes.big_chart(1000)
    first = bundle_to_state(chart, evaluation_date=DAY)
    # The same chart with only its first record of each other drug: the same state and warnings.
    seen: set[str] = set()
    entries = []
    for entry in chart["entry"]:
        res = entry["resource"]
        text = res.get("medicationCodeableConcept", {}).get("text")
        if text in {d for _, d in synthea_shapes.OTHERS}:
            if text in seen:
                continue
            seen.add(text)
        entries.append(entry)
    fewer = bundle_to_state({**chart, "entry": entries}, evaluation_date=DAY)
    assert first.state == fewer.state
    assert [(w.code, w.message) for w in first.warnings] == [
        (w.code, w.message) for w in fewer.warnings
    ]


def test_collection_is_held_off_while_any_paused_block_runs() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def worker() -> None:
        with gc_paused():
            inside.set()
            leave.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    with gc_paused():
        assert not gc.isenabled()
    # The other thread's block still runs: collection stays off until it ends.
    assert not gc.isenabled()
    leave.set()
    t.join(5)
    assert gc.isenabled()


def test_a_process_without_collection_keeps_it_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
