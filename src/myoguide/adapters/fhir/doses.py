"""Dose reading: a medication's dosage lines as one normalised dose per day or week, or, for an
infusion or course agent, per administration (per course only where the chart states a total)."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from typing import Any, NamedTuple

from myoguide.adapters.fhir.agents import NamedAgent
from myoguide.adapters.fhir.codes import FORM_UNITS, MASS_UNITS, PER_DAY, PER_WEEK
from myoguide.adapters.fhir.primitives import (
    DECIMAL_CONTEXT,
    coding_codes,
    period_dates,
    shown,
    to_decimal,
    to_number,
    ucum_code,
    unit_key,
)
from myoguide.adapters.words import unit_words
from myoguide.knowledge.terminology import Terminology, amount_decimal


class DoseReading(NamedTuple):
    """A normalised dose {value, unit} (with notes), or None with the warning saying why."""

    dose: dict[str, Any] | None
    code: str
    message: str
    # Whether the record states a dose that could not be read (rather than stating none).
    unreadable: bool = False
    notes: tuple[tuple[str, str], ...] = ()


class Mass(NamedTuple):
    """An amount of drug in mg or g."""

    amount: Decimal
    unit: str
    assumed: str = ""


class Schedule(NamedTuple):
    """How often a dose is taken: frequency per period of period_unit."""

    frequency: Decimal
    period: Decimal
    period_unit: str
    from_text: bool = False


class Problem(NamedTuple):
    """Why a dose could not be read: warning code and message."""

    code: str
    message: str


def read_dose(
    dosages: object, resolved: NamedAgent, term: Terminology, today: datetime.date
) -> DoseReading:
    """Return a normalised dose {value, unit}, or None with a warning code and message."""
    if not isinstance(dosages, list) or not dosages:
        return DoseReading(None, "dose_missing", "no dose is given")
    if len(dosages) == 1:
        return read_line(dosages[0], resolved, term)
    # Lines with one sequence number are taken together; different numbers follow each other.
    groups: dict[object, list[object]] = {}
    for n, dosage in enumerate(dosages):
        seq = dosage.get("sequence") if isinstance(dosage, dict) else None
        groups.setdefault(seq if isinstance(seq, int) else ("line", n), []).append(dosage)
    now = [g for g in groups.values() if line_span(g, today) == "current"]
    if len(now) > 1 and any(isinstance(k, tuple) for k in groups):
        # Without sequence numbers FHIR does not say whether lines follow or add up.
        return DoseReading(
            None,
            "dose_ambiguous",
            "the order has several dosage lines without an order between them",
            True,
        )
    if not now:
        return DoseReading(
            None,
            "dose_ambiguous",
            "none of the dosage lines applies on the evaluation date",
            True,
        )
    readings = [group_dose(g, resolved, term) for g in now]
    notes: tuple[tuple[str, str], ...] = ()
    if len(now) < len(groups):
        notes = (
            (
                "dose_line_by_dates",
                f"the {shown(resolved.agent)} order has several dosage lines; the one whose "
                "dates cover "
                "the evaluation date was used",
            ),
        )
    if len(readings) == 1:
        only = readings[0]
        return only._replace(notes=only.notes + notes)
    notes += tuple(dict.fromkeys(n for r in readings for n in r.notes))
    doses = [r.dose for r in readings]
    if any(d is None for d in doses) or len({d["unit"] for d in doses if d}) != 1:
        return DoseReading(
            None,
            "dose_ambiguous",
            "the order has several dosage lines and which one is taken now is not stated",
            True,
        )
    values = sorted(Decimal(repr(d["value"])) for d in doses if d)
    unit = doses[0]["unit"] if doses[0] else ""
    high = max((d for d in doses if d), key=lambda d: Decimal(repr(d["value"])))
    if values[0] == values[-1]:
        return DoseReading(high, "", "", notes=notes)
    per_mg = Decimal(1000) if unit.startswith("g/") else Decimal(1)
    boundary = term.flare_boundary_mg_per_day  # the knowledge's flare boundary
    if (
        resolved.agent == "prednisone"
        and boundary is not None
        and (
            values[0] * per_mg < boundary < values[-1] * per_mg
            or values[0] * per_mg == boundary
            or values[-1] * per_mg == boundary
        )
    ):
        return DoseReading(
            None,
            "dose_ambiguous",
            f"the dosage lines give {values[0]} to {values[-1]} {unit}, on both sides of "
            "10 mg/day, and which one is taken now is not stated",
            True,
        )
    return DoseReading(
        high,
        "",
        "",
        notes=(
            *notes,
            (
                "dose_lines",
                f"the {shown(resolved.agent)} order has several dosage lines ({values[0]} to "
                f"{values[-1]} {unit_words(unit)}) and which one is taken now is not stated; "
                "the answer does not depend on which, and the highest was used",
            ),
        ),
    )


def line_span(group: list[object], today: datetime.date) -> str:
    """Say whether dosage lines taken together apply on the day: 'current', 'ended', 'future'."""
    spans = []
    for dosage in group:
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        spans.append(period_dates(repeat.get("boundsPeriod") if isinstance(repeat, dict) else None))
    if all(end is not None and end < today for _, end in spans):
        return "ended"
    if all(start is not None and start > today for start, _ in spans):
        return "future"
    return "current"


def group_dose(group: list[object], resolved: NamedAgent, term: Terminology) -> DoseReading:
    """Return the dose of dosage lines taken together (their sum), or why it cannot be read."""
    readings = [read_line(d, resolved, term) for d in group]
    if len(readings) == 1:
        return readings[0]
    for reading in readings:
        if reading.dose is None:
            return reading
    units = {r.dose["unit"] for r in readings if r.dose}
    if len(units) != 1:
        return DoseReading(
            None, "dose_unit_unknown", "dosage lines taken together use different units", True
        )
    total = sum((Decimal(repr(r.dose["value"])) for r in readings if r.dose), Decimal(0))
    number = to_number(total)
    notes = tuple(n for r in readings for n in r.notes)
    if number is None:
        return DoseReading(None, "dose_unparseable", "the dose is not a usable number", True)
    return DoseReading({"value": number, "unit": units.pop()}, "", "", notes=notes)


def read_line(dosage: object, resolved: NamedAgent, term: Terminology) -> DoseReading:
    """Return the dose of one dosage line."""
    if not isinstance(dosage, dict):
        return DoseReading(None, "dose_unparseable", "the dose is not readable", True)
    if dosage.get("asNeededBoolean") is True or dosage.get("asNeededCodeableConcept") is not None:
        return DoseReading(
            None, "dose_as_needed", "the dose is taken as needed, not regularly", True
        )
    rates = dosage.get("doseAndRate")
    first = rates[0] if isinstance(rates, list) and rates else None
    quantity = first.get("doseQuantity") if isinstance(first, dict) else None
    dose_range = first.get("doseRange") if isinstance(first, dict) else None
    if not isinstance(quantity, dict) and not isinstance(dose_range, dict):
        limit = dosage.get("maxDosePerPeriod")
        if isinstance(limit, dict):
            # A ceiling is not a schedule: the dose taken is not known, so none is guessed.
            return DoseReading(
                None,
                "dose_limit_only",
                f"the order gives only a maximum{limit_words(limit)}, not a regular dose; "
                "no dose was read",
                True,
            )
        text = dosage.get("text")
        if isinstance(text, str) and text.strip():
            # A free-text sig is not parsed: reading numbers out of prose is guessing.
            return DoseReading(
                None, "dose_text_only", "the dose is written as free text only (not read)", True
            )
        return DoseReading(None, "dose_missing", "the dosage states no amount")
    if resolved.agent in term.course_agents:
        # An infusion or course agent: one administration's amount, never a daily figure.
        return course_line(quantity, dose_range, resolved, term)
    schedule = read_schedule(dosage, term)
    if isinstance(schedule, Problem):
        return DoseReading(None, schedule.code, schedule.message, True)
    notes: tuple[tuple[str, str], ...] = ()
    if schedule.from_text:
        notes = (
            (
                "dose_timing_from_text",
                f"the {shown(resolved.agent)} dose is read as once a week from the written "
                "instructions, not from a coded schedule",
            ),
        )
    if isinstance(quantity, dict):
        total = per_period(quantity, schedule, resolved, term)
        if isinstance(total, Problem):
            return DoseReading(None, total.code, total.message, True)
        dose, assumed = total
        if assumed:
            notes += (
                (
                    "dose_unit_assumed",
                    f"the {shown(resolved.agent)} dose states no unit; it was read as a count of "
                    f"{assumed}s of the prescribed product's strength",
                ),
            )
        return DoseReading(dose, "", "", notes=notes)
    assert isinstance(dose_range, dict)
    ranged = read_range(dose_range, schedule, resolved, term)
    return ranged._replace(notes=notes + ranged.notes)


def course_line(
    quantity: object, dose_range: object, resolved: NamedAgent, term: Terminology
) -> DoseReading:
    """Return a course agent's dose line as one administration's amount (or a stated course
    total); its timing says how often, and is never multiplied in."""
    if isinstance(quantity, dict):
        read = per_administration(quantity, resolved, term)
        if isinstance(read, Problem):
            return DoseReading(None, read.code, read.message, True)
        dose, assumed = read
        notes: tuple[tuple[str, str], ...] = ()
        if assumed:
            notes = (
                (
                    "dose_unit_assumed",
                    f"the {shown(resolved.agent)} dose states no unit; it was read as a count of "
                    f"{assumed}s of the prescribed product's strength",
                ),
            )
        return DoseReading(dose, "", "", notes=notes)
    assert isinstance(dose_range, dict)
    ends = []
    for key in ("low", "high"):
        end = dose_range.get(key)
        got = per_administration(end, resolved, term) if isinstance(end, dict) else None
        ends.append(None if got is None or isinstance(got, Problem) else got[0])
    low, high = ends
    if high is None:
        return DoseReading(
            None, "dose_range_unusable", "the dose range has no readable high end", True
        )
    unit = unit_words(high["unit"])
    if low is not None and low["unit"] == high["unit"]:
        span = f"{low['value']} to {high['value']} {unit}"
    else:
        span = f"up to {high['value']} {unit} (low end not readable)"
    message = (
        f"{shown(resolved.agent)} is ordered as a dose range, {span}; the high end is used as "
        "the dose"
    )
    return DoseReading(high, "", "", notes=(("dose_range", message),))


# A dose written per course (UCUM annotation `g/{course}`, or words): the chart states a total.
_PER_COURSE = re.compile(r"^\s*(mg|g)\s*(?:/|per)\s*\{?course\}?\s*$", re.I)


def per_administration(
    quantity: dict[str, Any], resolved: NamedAgent, term: Terminology
) -> tuple[dict[str, Any], str] | Problem:
    """Return a course agent's dose quantity as {value, unit} per dose, or per course only when
    the quantity itself is written per course (and any form assumed for a unitless count)."""
    amount = to_decimal(quantity.get("value"))
    if amount is None or amount < 0:
        return Problem("dose_unparseable", "the dose value is not a non-negative number")
    written = ucum_code(quantity)
    course = _PER_COURSE.match(written) if written is not None else None
    if course is not None:
        quantity = {"value": quantity.get("value"), "code": course.group(1).lower()}
    mass = to_mass(amount, quantity, resolved, term)
    if mass is None:
        return Problem(
            "dose_unit_unknown",
            "the dose unit is not a mass, and no product strength converts it",
        )
    number = to_number(mass.amount)
    if number is None:
        return Problem("dose_unparseable", "the dose does not give a usable number")
    per = "course" if course is not None else "dose"
    return {"value": number, "unit": f"{mass.unit}/{per}"}, mass.assumed


def limit_words(limit: dict[str, Any]) -> str:
    """Return a maxDosePerPeriod Ratio in words (' of 200 mg a day'), or '' if unreadable."""
    parts = []
    for key in ("numerator", "denominator"):
        q = limit.get(key)
        raw = to_decimal(q.get("value")) if isinstance(q, dict) else None
        unit = (q.get("code") or q.get("unit")) if isinstance(q, dict) else None
        if raw is None or not isinstance(unit, str):
            return ""
        parts.append((to_number(raw), _PERIOD_WORDS.get(unit, unit)))
    (amount, unit), (per, period) = parts
    return f" of {amount} {unit} " + (f"a {period}" if per == 1 else f"per {per} {period}s")


_PERIOD_WORDS = {"h": "hour", "d": "day", "wk": "week", "mo": "month"}


def read_range(
    dose_range: dict[str, Any], schedule: Schedule, resolved: NamedAgent, term: Terminology
) -> DoseReading:
    """Return a doseRange as its high end, with a warning naming the range."""
    agent = resolved.agent
    high_q, low_q = dose_range.get("high"), dose_range.get("low")
    high_read = per_period(high_q, schedule, resolved, term) if isinstance(high_q, dict) else None
    high = None if high_read is None or isinstance(high_read, Problem) else high_read[0]
    if high is None:
        return DoseReading(
            None, "dose_range_unusable", "the dose range has no readable high end", True
        )
    low_read = per_period(low_q, schedule, resolved, term) if isinstance(low_q, dict) else None
    low = None if low_read is None or isinstance(low_read, Problem) else low_read[0]
    unit = high["unit"]
    if isinstance(low, dict) and low["unit"] == unit:
        span = f"{low['value']} to {high['value']} {unit}"
    else:
        span = f"up to {high['value']} {unit} (low end not readable)"
    message = f"{shown(agent)} is ordered as a dose range, {span}; the high end is used as the dose"
    if agent == "prednisone" and isinstance(low, dict) and low["unit"] == unit:
        per_mg = Decimal(1000) if unit.startswith("g/") else Decimal(1)
        lo = Decimal(repr(low["value"])) * per_mg
        hi = Decimal(repr(high["value"])) * per_mg
        boundary = term.flare_boundary_mg_per_day  # the knowledge's flare boundary
        if lo < hi and boundary is not None and lo <= boundary <= hi:
            message += "; the range spans the 10 mg/day prednisone boundary"
    return DoseReading(high, "", "", notes=(("dose_range", message),))


def read_schedule(dosage: dict[str, Any], term: Terminology) -> Schedule | Problem:
    """Return how often a dose is taken: timing.repeat, a known timing.code, or 'weekly' text."""
    timing = dosage.get("timing")
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    code = timing.get("code") if isinstance(timing, dict) else None
    if isinstance(repeat, dict) and (repeat.get("period") is not None or code is None):
        frequency = to_decimal(repeat.get("frequency", 1))
        period = to_decimal(repeat.get("period"))
        period_unit = repeat.get("periodUnit")
        if period is None and not weekly_text(dosage, code):
            return Problem("dose_timing_unparseable", "the dose schedule states no period")
        if period is None:
            return Schedule(Decimal(1), Decimal(1), "wk", True)
        if frequency is None or frequency <= 0 or period <= 0:
            return Problem("dose_timing_unparseable", "the dose schedule is not readable")
        if not isinstance(period_unit, str) or period_unit not in PER_DAY:
            return Problem(
                "dose_timing_unsupported",
                "the dose schedule is not in hours, days or weeks",
            )
        return Schedule(frequency, period, period_unit)
    if code is not None:
        for found in coding_codes(code, term.file.timing.system):
            known = term.timing_codes.get(found)
            if known is not None:
                return Schedule(
                    Decimal(known.frequency), Decimal(repr(known.period)), known.period_unit
                )
    if weekly_text(dosage, code):
        # QW or "weekly" is no code of the timing code system; written words are read, warned.
        return Schedule(Decimal(1), Decimal(1), "wk", True)
    if code is None:
        return Problem("dose_timing_missing", "the dose states no schedule")
    return Problem(
        "dose_timing_unsupported",
        "the dose schedule is a code this tool does not read",
    )


_WEEKLY = re.compile(r"\b(q\.?\s?1?\s?w(k|eek)?\.?|once\s+(a|per|every)\s+week|weekly)\b", re.I)


def weekly_text(dosage: dict[str, Any], code: object) -> bool:
    """Return whether the written instructions (or the timing code's text) say once a week."""
    texts = [dosage.get("text"), dosage.get("patientInstruction")]
    if isinstance(code, dict):
        texts.append(code.get("text"))  # the words, never a code from the wrong code system
    return any(isinstance(t, str) and _WEEKLY.search(t) is not None for t in texts)


def per_period(
    quantity: dict[str, Any], schedule: Schedule, resolved: NamedAgent, term: Terminology
) -> tuple[dict[str, Any], str] | Problem:
    """Return one dose quantity on a schedule as {value, unit} per day or week (and any form
    assumed for a unitless count)."""
    amount = to_decimal(quantity.get("value"))
    if amount is None or amount < 0:
        return Problem("dose_unparseable", "the dose value is not a non-negative number")
    mass = to_mass(amount, quantity, resolved, term)
    if mass is None:
        return Problem(
            "dose_unit_unknown",
            "the dose unit is not a mass, and no product strength converts it",
        )
    agent = resolved.agent
    # The state wants each agent's dose per its period in the knowledge (term.agent_periods);
    # an agent without one keeps the period its timing is written in.
    period = term.agent_periods.get(agent)
    weekly = period == "week" or (period is None and schedule.period_unit == "wk")
    multiplier, divisor = (PER_WEEK if weekly else PER_DAY)[schedule.period_unit]
    try:
        total = DECIMAL_CONTEXT.divide(
            DECIMAL_CONTEXT.multiply(
                DECIMAL_CONTEXT.multiply(mass.amount, schedule.frequency), multiplier
            ),
            DECIMAL_CONTEXT.multiply(schedule.period, divisor),
        )
    except ArithmeticError:
        total = Decimal("NaN")
    number = to_number(total)
    if number is None:
        return Problem("dose_unparseable", "the dose does not give a usable number")
    return {"value": number, "unit": f"{mass.unit}/{'week' if weekly else 'day'}"}, mass.assumed


def to_mass(
    amount: Decimal, quantity: dict[str, Any], resolved: NamedAgent, term: Terminology
) -> Mass | None:
    """Return a dose quantity in mg or g: a mass unit, or units of a form times its strength."""
    written = ucum_code(quantity)
    ucum = term.ucum(written) if written is not None else None
    if ucum is not None and ucum in MASS_UNITS:
        factor, unit = MASS_UNITS[ucum]
        return Mass(DECIMAL_CONTEXT.multiply(amount, factor), unit)
    form = form_unit(quantity, term)
    product = resolved.product
    assumed = ""
    if written is None and product is not None and product.per in ("tablet", "capsule"):
        # A count with no unit on a tablet or capsule product (as Synthea writes doses).
        form = assumed = product.per
    if form is not None and product is not None and product.per == form:
        try:
            strength = amount_decimal(product.amount)
            return Mass(DECIMAL_CONTEXT.multiply(amount, strength), product.amount.unit, assumed)
        except ArithmeticError:
            return None
    return dose_by_strength(amount, quantity, resolved.medication)


def form_unit(quantity: dict[str, Any], term: Terminology) -> str | None:
    """Return the dose form a quantity counts (tablet, capsule, mL), from its code or unit."""
    for key in ("code", "unit"):
        value = quantity.get(key)
        if isinstance(value, str):
            spelled = value.strip()
            form = FORM_UNITS.get(spelled) or FORM_UNITS.get(spelled.lower())
            if form is None and term.ucum(spelled) == "mL":
                form = "mL"
            if form is not None:
                return form
    return None


def dose_by_strength(
    amount: Decimal, quantity: dict[str, Any], medication: dict[str, Any] | None
) -> Mass | None:
    """Convert a dose in units of a form (tablets) to mg or g by the Medication's one strength."""
    unit = unit_key(quantity)
    if medication is None or unit is None:
        return None
    ingredients = medication.get("ingredient")
    if not isinstance(ingredients, list):
        return None
    strengths = [
        s
        for s in (i.get("strength") for i in ingredients if isinstance(i, dict))
        if isinstance(s, dict)
    ]
    if len(strengths) != 1:
        return None
    numerator, denominator = strengths[0].get("numerator"), strengths[0].get("denominator")
    if not isinstance(numerator, dict) or not isinstance(denominator, dict):
        return None
    mass = ucum_code(numerator)
    per = to_decimal(numerator.get("value"))
    each = to_decimal(denominator.get("value", 1))
    if (
        (mass != "mg" and mass != "g")
        or per is None
        or per < 0
        or each is None
        or each <= 0
        or unit_key(denominator) != unit
    ):
        return None
    try:
        return Mass(DECIMAL_CONTEXT.divide(DECIMAL_CONTEXT.multiply(amount, per), each), mass)
    except ArithmeticError:
        return None
