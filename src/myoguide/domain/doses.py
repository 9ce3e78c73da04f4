"""Doses for this patient, and the one safety layer every computed dose passes through.

Weight- and surface-based arithmetic, stated maxima (clamped), a raise never below the dose
already taken, figures rounded to a precision a prescriber can act on (the exact figure stays
in the arithmetic), and the schedule (timing) of each regimen.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import msgspec

from myoguide.domain.facts import Facts
from myoguide.domain.prepared import Prepared
from myoguide.domain.prescribable import DoseCalc
from myoguide.domain.prescribable import practical as practical_amounts
from myoguide.domain.result import Action, Dose, Regimen
from myoguide.domain.run import Run
from myoguide.domain.units import clean, fmt, mul, round2, round2_clean
from myoguide.knowledge.model import DoseRule, Maximum

_TENTH = Decimal("0.1")
_HALF = Decimal("0.5")
_ONE = Decimal(1)
_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times"}


def regimen(run: Run, f: Facts, c: DoseCalc, action: Action | None) -> Regimen:
    """Return one regimen with this patient's dose (through the safety layer) or why not.

    `c` is what the regimen's rule, its step and the agent's verified products say, read at
    load; the dose carries the whole-unit amounts of those products.
    """
    rule = c.rule
    dose, reason = _dose(run, f, c)
    if dose is not None:
        # The safety layer: clamp to a stated maximum, round for prescribing, and keep a raise
        # above today's dose.
        if c.clamp_to is not None:
            dose = clamp(run, dose, c.clamp_to, rule.agent)
        dose = _practical(dose)
        if action == "raise":
            dose, reason = _raise_floor(run, f, rule, dose)
        if dose is not None:
            amounts = practical_amounts(dose, c.form, c.split, c.ceiling)
            dose = msgspec.structs.replace(dose, practical=amounts)
    return Regimen(c.rule_id, rule.note, dose, reason, c.sources)


def _raise_floor(run: Run, f: Facts, rule: DoseRule, dose: Dose) -> tuple[Dose | None, str | None]:
    """Keep a raise above today's dose: no figure at or below it, a range not starting below."""
    current = f.current.get(rule.agent)
    if current is None or dose.high is None:
        return dose, None
    per = f"{dose.unit}/{dose.period}"
    if dose.high <= current and rule.kind != "up_to_max":
        run.warn("raise_not_above_current", computed=fmt(dose.high), current=fmt(current))
        run.step(
            f"dose.raise_floor.{rule.agent}",
            "warnings.raise_not_above_current",
            "the weight-based figure is not above the current dose: no figure given",
            computed=fmt(dose.high),
            current=fmt(current),
        )
        return None, (
            f"about {fmt(dose.high)} {per} is not above the current {fmt(current)} {per}; "
            "the dose is the clinician's judgment"
        )
    if dose.low is not None and dose.low < current:
        basis = f"{dose.basis}; not below the current {fmt(current)} {per}"
        dose = Dose(
            clean(current), dose.high, dose.unit, dose.period, basis, dose.qualifier, dose.timing
        )
    return dose, None


def practical(value: Decimal) -> Decimal:
    """Round a figure to what a prescriber can act on: 0.1 below 10, 0.5 below 100, else 1."""
    if value >= 10 and value == value.to_integral_value():
        return value  # a whole figure from 10 up is already as precise as shown
    # Dividing by 0.1 or 1 keeps every digit, so rounding to the step directly is the same.
    if value < 10:
        return clean(value.quantize(_TENTH, ROUND_HALF_UP))
    if value < 100:
        return clean((value / _HALF).quantize(_ONE, ROUND_HALF_UP) * _HALF)
    return clean(value.quantize(_ONE, ROUND_HALF_UP))


def _practical(dose: Dose) -> Dose:
    low = practical(dose.low) if dose.low is not None else None
    high = dose.high
    if high is not None:
        high = low if high == dose.low else practical(high)  # a single figure: rounded once
    if low == dose.low and high == dose.high:
        return dose
    shown = fmt(high) if low == high and high is not None else _span(low, high)
    basis = f"{dose.basis}; shown as {shown}"
    return Dose(low, high, dose.unit, dose.period, basis, dose.qualifier, dose.timing)


def _span(low: Decimal | None, high: Decimal | None) -> str:
    if low is None:
        return f"up to {fmt(high or Decimal(0))}"
    if high is None:
        return f"at least {fmt(low)}"
    return f"{fmt(low)} to {fmt(high)}"


def _split_words(rule: DoseRule, low: Decimal, high: Decimal) -> str:
    """Return ', given as X twice a day' for a daily total the source splits into doses."""
    if not rule.split:
        return ""
    n = Decimal(rule.split)
    each = _span(round2(low / n), round2(high / n)) if low != high else fmt(round2(low / n))
    return f", given as {each} {rule.unit} {_TIMES.get(rule.split, f'{rule.split} times')} a day"


def _dose(run: Run, f: Facts, calc: DoseCalc) -> tuple[Dose | None, str | None]:
    p = run.p
    rule, rule_id, c = calc.rule, calc.rule_id, calc.const
    per, low, high, timing = c.per, c.low, c.high, c.timing
    if rule.kind == "unstated":
        return None, "the source gives no figure for this step"
    if rule.kind == "up_to_max":
        return _dose_up_to(p, f, rule)
    if rule.kind == "per_m2":
        if f.bsa is None:
            missing = run.no_height if f.weight_kg is not None else run.no_weight
            missing.append(rule_id)
            return None, "needs height and weight for body surface area"
        lo, hi = _per(low, high, f.bsa)
        result = fmt(lo) if lo == hi else f"{fmt(lo)} to {fmt(hi)}"
        basis = f"{calc.rate} {rule.unit}/m2 x {f.bsa_words} = {result} {per}"
        return Dose(lo, hi, rule.unit, rule.period, basis, None, timing), None
    # per_kg and fixed_to_per_kg need a weight.
    if f.kg is None:
        run.no_weight.append(rule_id)
        return None, "needs weight"
    kg = f.kg
    if rule.kind == "per_kg":
        lo, hi = _per(low, high, kg)
        result = fmt(lo) if lo == hi else f"{fmt(lo)} to {fmt(hi)}"
        basis = (
            f"{calc.rate} {rule.unit}/kg/{rule.period} x {f.weight_words} = {result} {per}"
            + _split_words(rule, lo, hi)
        )
    else:  # fixed_to_per_kg: a fixed floor up to a weight-based ceiling
        lo = clean(low)
        computed = round2(mul(high, kg))
        hi = clean(max(computed, lo))
        basis = (
            f"{fmt(lo)} {per} up to {fmt(high)} {rule.unit}/kg/{rule.period}"
            f" x {f.weight_words} = {fmt(computed)} {per}"
        )
        if computed < lo:
            basis += f"; the weight-based figure is below {fmt(lo)}, so the range is {fmt(lo)}"
    if rule.agent == "prednisone" and hi > p.prednisone_warning:
        run.warn("prednisone_above_75", dose=fmt(hi))
    return Dose(lo, hi, rule.unit, rule.period, basis, None, timing), None


def _per(low: Decimal, high: Decimal, measure: Decimal) -> tuple[Decimal, Decimal]:
    """Return a rate's bounds times a weight or surface area, rounded (a single rate once)."""
    lo = round2_clean(mul(low, measure))
    return lo, lo if high == low else round2_clean(mul(high, measure))


def _dose_up_to(p: Prepared, f: Facts, rule: DoseRule) -> tuple[Dose | None, str | None]:
    m = p.kb.maximum(rule.maximum or "")
    per = f"{m.unit}/{m.period}"
    current = f.current.get(rule.agent)
    if current is None:
        return None, f"current dose unknown; the source's maximum is {fmt(m.amount)} {per}"
    basis = f"from the current {fmt(current)} {per} up to the stated maximum {fmt(m.amount)} {per}"
    return Dose(clean(current), clean(m.amount), m.unit, m.period, basis), None


def clamp(run: Run, dose: Dose, m: Maximum, agent: str) -> Dose:
    """Cap a dose at a stated maximum of the same unit and period, and say so."""
    if dose.unit != m.unit or dose.period != m.period or dose.high is None:
        return dose
    if dose.high <= m.amount:
        return dose
    run.warn_max("dose_clamped", m, computed=fmt(dose.high))
    run.step(
        f"clamp.{agent}",
        f"maxima.{m.id}",
        f"capped at {fmt(m.amount)}",
        computed=fmt(dose.high),
        maximum=fmt(m.amount),
    )
    basis = f"{dose.basis}; capped at the stated maximum {fmt(m.amount)} {m.unit}/{m.period}"
    low = clean(min(dose.low, m.amount)) if dose.low is not None else None
    return Dose(low, clean(m.amount), dose.unit, dose.period, basis, dose.qualifier, dose.timing)


def missing_measure_warnings(run: Run) -> None:
    """Warn once about every dose left out for want of a weight or a height."""
    if run.no_weight:
        run.warn("no_weight", rules=_rule_labels(run.p, run.no_weight))
    if run.no_height:
        run.warn("no_height", rules=_rule_labels(run.p, run.no_height))


def _rule_labels(p: Prepared, rule_ids: list[str]) -> str:
    labels = []
    for rid in dict.fromkeys(rule_ids):
        rule = p.kb.dose_rules[rid]
        per = "m2" if rule.kind == "per_m2" else "kg"
        low, high = rule.high if rule.kind == "fixed_to_per_kg" else rule.low, rule.high
        rate = fmt(low or high or Decimal(0))
        if rule.kind != "fixed_to_per_kg" and low != high:
            rate += f"-{fmt(high or Decimal(0))}"
        labels.append(f"{p.kb.agent(rule.agent).display} {rate} {rule.unit}/{per}")
    return "; ".join(labels)
