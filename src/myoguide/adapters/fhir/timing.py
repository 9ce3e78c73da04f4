"""FHIR Timing.repeat written from a schedule: shared by the PlanDefinition and the draft orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from myoguide.domain.result import Dose
from myoguide.domain.units import clean


class TimingLike(Protocol):
    """A schedule with the fields of FHIR Timing.repeat (the knowledge's or a dose's)."""

    @property
    def frequency(self) -> int | None: ...
    @property
    def period(self) -> Decimal | None: ...
    @property
    def period_unit(self) -> str | None: ...
    @property
    def count(self) -> int | None: ...
    @property
    def count_max(self) -> int | None: ...


def fhir_number(value: Decimal) -> int | float:
    """Return a decimal as a JSON number: an integer when it is whole."""
    value = clean(value)
    return int(value) if value == value.to_integral_value() else float(value)


def timing_repeat(t: TimingLike) -> dict[str, Any]:
    """Return a schedule as FHIR Timing.repeat, leaving out what it does not say."""
    repeat: dict[str, Any] = {}
    if t.frequency is not None:
        repeat["frequency"] = t.frequency
    if t.period is not None:
        repeat["period"] = fhir_number(t.period)
    if t.period_unit is not None:
        repeat["periodUnit"] = t.period_unit
    if t.count is not None:
        repeat["count"] = t.count
    if t.count_max is not None:
        repeat["countMax"] = t.count_max
    return repeat


_PERIOD_UNIT = {"day": "d", "week": "wk"}


def dose_repeat(dose: Dose) -> dict[str, Any]:
    """Return FHIR Timing.repeat for a dose: its own schedule, or once per its period."""
    if dose.timing is None:
        return {"frequency": 1, "period": 1, "periodUnit": _PERIOD_UNIT.get(dose.period, "d")}
    return timing_repeat(dose.timing)
