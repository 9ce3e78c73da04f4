"""Clearly synthetic demo patients, so a new user sees a working course on first start."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from myoguide.adapters.jsonio import to_jsonable
from myoguide.service import PatientRecords, Service

P = "prednisone"


def _med(agent: str, value: float | None = None, unit: str = "mg/day") -> dict[str, Any]:
    return (
        {"agent": agent}
        if value is None
        else {"agent": agent, "dose": {"value": value, "unit": unit}}
    )


def _state(
    age: int,
    dx: str,
    weight: float,
    meds: list[dict[str, Any]],
    history: list[tuple[str, str]],
    *,
    control: bool,
    flare: bool,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "age_years": age,
        "diagnosis": dx,
        "weight": {"value": weight, "unit": "kg"},
        "height": {"value": 168, "unit": "cm"},
        "disease_control_achieved": control,
        "flare": flare,
        "alternative_diagnoses_excluded": True,
        "current_medications": meds,
        "treatment_history": [{"agent": a, "outcome": o} for a, o in history],
        **extra,
    }


def demo_courses(today: dt.date) -> dict[str, list[tuple[dt.date, dict[str, Any]]]]:
    """Return the synthetic courses: label -> dated patient states."""

    def d(days: int) -> dt.date:
        return today - dt.timedelta(days=days)

    inad = "inadequate_response"
    return {
        "DEMO-A (synthetic): DM, flare on taper": [
            (
                d(300),
                _state(
                    54,
                    "dermatomyositis",
                    72,
                    [_med(P, 7.5), _med("methotrexate", 15, "mg/week")],
                    [],
                    control=True,
                    flare=True,
                ),
            ),
            (
                d(240),
                _state(
                    54,
                    "dermatomyositis",
                    72,
                    [_med(P, 30), _med("methotrexate", 25, "mg/week")],
                    [],
                    control=True,
                    flare=False,
                ),
            ),
            (
                d(120),
                _state(
                    54,
                    "dermatomyositis",
                    71,
                    [_med(P, 12.5), _med("methotrexate", 25, "mg/week")],
                    [],
                    control=True,
                    flare=True,
                ),
            ),
            (
                d(30),
                _state(
                    55,
                    "dermatomyositis",
                    70,
                    [_med(P, 60), _med("methotrexate", 25, "mg/week"), _med("rituximab")],
                    [],
                    control=True,
                    flare=False,
                ),
            ),
        ],
        "DEMO-B (synthetic): resistant DM": [
            (
                d(200),
                _state(
                    61,
                    "dermatomyositis",
                    66,
                    [_med(P, 40), _med("azathioprine", 150)],
                    [(P, inad), ("azathioprine", inad)],
                    control=False,
                    flare=False,
                ),
            ),
            (
                d(100),
                _state(
                    61,
                    "dermatomyositis",
                    66,
                    [_med(P, 30), _med("rituximab")],
                    [(P, inad), ("azathioprine", inad)],
                    control=False,
                    flare=False,
                ),
            ),
            (
                d(10),
                _state(
                    62,
                    "dermatomyositis",
                    65,
                    [_med(P, 25)],
                    [(P, inad), ("azathioprine", inad), ("rituximab", inad)],
                    control=False,
                    flare=False,
                ),
            ),
        ],
        "DEMO-C (synthetic): PM with refractory ILD": [
            (
                d(90),
                _state(
                    49,
                    "polymyositis",
                    80,
                    [_med(P, 30), _med("methotrexate", 20, "mg/week")],
                    [(P, inad), ("methotrexate", inad)],
                    control=False,
                    flare=False,
                    ild={"present": True, "refractory": True},
                ),
            ),
        ],
    }


@dataclass(frozen=True)
class _At:
    """A clock stopped at one instant: each synthetic visit is stamped at its own date."""

    instant: dt.datetime

    def now(self) -> dt.datetime:
        return self.instant

    def today(self) -> dt.date:
        return self.instant.date()


def seed_demo(service: Service, records: PatientRecords) -> int:
    """Add the demo patients that are not there yet, each visit with its answer; return count."""
    existing = {p.label for p in records.patients()}
    added = 0
    for label, visits in demo_courses(records.clock.today()).items():
        if label in existing:
            continue
        patient = records.add_patient(label)
        for when, raw in visits:
            assessment = service.assess(raw)
            state = msgspec.to_builtins(assessment.state)
            result = assessment.result
            shown = dt.datetime.combine(when, dt.time(10, 0), tzinfo=dt.UTC)
            # The same use cases as the page, with the clock at the synthetic visit's time.
            answer = replace(records, clock=_At(shown)).log_answer(
                patient.id, state, result, to_jsonable(result), when
            )
            if result.recommendations:
                decided = replace(records, clock=_At(shown + dt.timedelta(minutes=5)))
                decided.record_decision(answer, "accepted", result.recommendations[0].id, None)
        added += 1
    return added
