"""Doses for this patient, and the one safety layer every computed dose passes through.

Weight- and surface-based arithmetic, stated maxima (clamped), a raise never below the dose
already taken, figures rounded to a precision a prescriber can act on (the exact figure stays
in the arithmetic), and the schedule (timing) of each regimen.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from myoguide.domain.facts import Facts
from myoguide.domain.fewest import Hundredths
from myoguide.domain.prepared import Prepared
from myoguide.domain.prescribable import DoseCalc, amounts_of
from myoguide.domain.result import Action, Dose, Practical, Regimen
from myoguide.domain.run import Run
from myoguide.domain.units import (
    clean,
    fmt,
    hundredths_text,
    in_hundredths,
    mul,
    product_hundredths,
    round2,
    round2_clean,
)
from myoguide.knowledge.model import Maximum

_TENTH = Decimal("0.1")
_HALF = Decimal("0.5")
_ONE = Decimal(1)
# The steps' bounds as Decimals: a comparison with an int converts it every time.
_TEN = Decimal(10)
_HUNDRED = Decimal(100)


# The figures of a dose as they are worked out: low, high and the arithmetic in words.
Figures = tuple[Decimal | None, Decimal | None, str]


def regimen(run: Run, f: Facts, c: DoseCalc, action: Action | None) -> Regimen:
    """Return one regimen with this patient's dose (through the safety layer) or why not.

    `c` is what the regimen's rule, its step and the agent's verified products say, read at
    load; the dose carries the whole-unit amounts of those products. The figures pass through
    the safety layer as numbers and the dose is built once, at the end.
    """
    h = c.hundredths
    if h is not None:
        fast = _fast(run, f, c, h, action)
        if fast is not None:
            return fast
    got = _figures(run, f, c)
    if isinstance(got, str):
        return Regimen(c.rule_id, c.rule.note, None, got, c.sources)
    # The safety layer: clamp to a stated maximum, round for prescribing, and keep a raise
    # above today's dose.
    if c.clamp_to is not None:
        got = _clamp(run, c, c.clamp_to, got)
    low, high, basis = _rounded(got)
    if action == "raise":
        floor = _raise_floor(run, f, c, low, high, basis)
        if isinstance(floor, str):
            return Regimen(c.rule_id, c.rule.note, None, floor, c.sources)
        low, basis = floor
    amounts = amounts_of(low, high, None, c.unit, c.form, c.split, c.ceiling)
    dose = Dose(low, high, c.unit, c.period, basis, None, c.timing, amounts)
    return Regimen(c.rule_id, c.rule.note, dose, None, c.sources)


def _fast(run: Run, f: Facts, c: DoseCalc, h: Hundredths, action: Action | None) -> Regimen | None:
    """Return a rate regimen worked out in whole hundredths, or None for `_figures`.

    The same figures, words and amounts as the general path, which it leaves to where a figure
    is capped, a raise is not above today's dose, a measure is missing or no single whole amount
    is nearest: a weight is whole hundredths of a kg, so rate x weight rounded half up to 0.01
    is integer arithmetic; a surface area's product is rounded as the general path rounds it.
    """
    q = _times(f, c, h, h.rate, c.const.low)
    if q is None:
        return None
    if h.rate_high != h.rate:
        return _fast_range(f, c, h, action, q)
    per_kg = c.rule.kind == "per_kg"
    words = f.weight_words if per_kg else f.bsa_words
    if h.clamp is not None and q > h.clamp:
        return None  # capped at a stated maximum: said by the general path
    shown = _practical_h(q)
    if action == "raise":
        current = f.current.get(c.rule.agent)
        if current is not None and shown <= in_hundredths(current):
            return None  # not above today's dose: said by the general path
    text = hundredths_text(q)
    if per_kg and h.warn is not None and q > h.warn:
        run.warn("prednisone_above_75", dose=text)
    basis = f"{c.lead}{words} = {text} {c.const.per}"
    if per_kg and h.split > 1:
        each = hundredths_text((2 * q + h.split) // (2 * h.split))
        basis += f", given as {each} {c.rule.unit} {c.split_words} a day"
    if shown != q:
        text = hundredths_text(shown)
        basis = f"{basis}; shown as {text}"
    low = Decimal(text)
    amounts = _amounts_h(c, h, shown, low)
    dose = Dose(low, low, c.unit, c.period, basis, None, c.timing, amounts)
    return Regimen(c.rule_id, c.rule.note, dose, None, c.sources)


def _times(f: Facts, c: DoseCalc, h: Hundredths, rate: int, exact: Decimal) -> int | None:
    """Return a rate times the patient's weight or surface area in whole hundredths, rounded."""
    if c.rule.kind == "per_kg":
        kg = f.kg_h
        return None if kg is None else (2 * rate * kg + h.div) // (2 * h.div)
    return None if f.bsa is None else product_hundredths(exact, f.bsa)


def _fast_range(
    f: Facts, c: DoseCalc, h: Hundredths, action: Action | None, q: int
) -> Regimen | None:
    """Return a range regimen (no split, no warning) in whole hundredths, or None, as `_fast`."""
    high = _times(f, c, h, h.rate_high, c.const.high)
    per_kg = c.rule.kind == "per_kg"
    if high is None or h.split > 1 or h.warn is not None:
        return None  # split words and a warning for a range: the general path
    if h.clamp is not None and high > h.clamp:
        return None
    if action == "raise" and f.current.get(c.rule.agent) is not None:
        return None  # kept above today's dose: the general path
    text = hundredths_text(q) if q == high else f"{hundredths_text(q)} to {hundredths_text(high)}"
    basis = f"{c.lead}{f.weight_words if per_kg else f.bsa_words} = {text} {c.const.per}"
    lo, hi = _practical_h(q), _practical_h(high)
    lo_text, hi_text = hundredths_text(lo), hundredths_text(hi)
    if lo != q or hi != high:
        basis += f"; shown as {hi_text if lo == hi else f'{lo_text} to {hi_text}'}"
    low = Decimal(lo_text)
    if lo == hi:
        amounts = _amounts_h(c, h, lo, low)
        dose = Dose(low, low, c.unit, c.period, basis, None, c.timing, amounts)
    else:
        top = Decimal(hi_text)
        amounts = _range_h(c, h, lo, hi, low, top)
        dose = Dose(low, top, c.unit, c.period, basis, None, c.timing, amounts)
    return Regimen(c.rule_id, c.rule.note, dose, None, c.sources)


def _range_h(c: DoseCalc, h: Hundredths, lo: int, hi: int, low: Decimal, top: Decimal) -> Practical:
    """Return `amounts_of` a range of whole hundredths a day, its ends rounded inward."""
    form, s = c.form, h.step
    if form is None or (h.cap is not None and hi * h.mg > h.cap):
        return amounts_of(low, top, None, c.unit, form, None, c.ceiling)
    lo_r = max(-(-lo * h.mg // s) * s, s)
    hi_r = hi * h.mg // s * s
    if lo_r > hi_r:
        return amounts_of(low, top, None, c.unit, form, None, c.ceiling)  # none fits: says why
    key = (lo_r, hi_r, 1, c.unit)
    hit = form.range_h.get(key)
    if hit is None:
        hit = amounts_of(low, top, None, c.unit, form, None, c.ceiling)
        if len(form.range_h) < _KEPT:
            form.range_h[key] = hit
    return hit


def _practical_h(q: int) -> int:
    """Return `practical` of a figure in whole hundredths (0.1 below 10, 0.5 below 100, else 1)."""
    if q < 1000:
        return (q + 5) // 10 * 10
    if q % 100 == 0:
        return q
    if q < 10000:
        return (q + 25) // 50 * 50
    return (q + 50) // 100 * 100


def _amounts_h(c: DoseCalc, h: Hundredths, q: int, low: Decimal) -> Practical:
    """Return `amounts_of` a single figure of `q` hundredths of the dose's unit a day."""
    form, n = c.form, h.split
    if form is None:
        return amounts_of(low, low, None, c.unit, None, c.split, c.ceiling)
    total = q * h.mg  # hundredths of a mg a day
    if total % n:  # a part of a hundredth each time: left to the general path
        return amounts_of(low, low, None, c.unit, form, c.split, c.ceiling)
    t, s = total // n, h.step
    pick = t // s * s
    if pick != t:  # the nearer whole amount; halfway (both) left to the general path
        under, over = t - pick, pick + s - t
        pick = pick if under < over else pick + s if over < under else 0
    if pick <= 0 or (h.cap is not None and pick * n > h.cap):
        return amounts_of(low, low, None, c.unit, form, c.split, c.ceiling)  # none, or both
    key = (pick, n, c.unit)
    hit = form.nearest_h.get(key)
    if hit is None:
        hit = amounts_of(low, low, None, c.unit, form, c.split, c.ceiling)
        if len(form.nearest_h) < _KEPT:
            form.nearest_h[key] = hit
    return hit


_KEPT = 4096  # whole amounts kept per formulary, as prescribable keeps its amounts given


def _raise_floor(
    run: Run, f: Facts, c: DoseCalc, low: Decimal | None, high: Decimal | None, basis: str
) -> tuple[Decimal | None, str] | str:
    """Keep a raise above today's dose: the low figure and words, or why no figure is given."""
    # No figure at or below today's dose; a range does not start below it.
    rule = c.rule
    current = f.current.get(rule.agent)
    if current is None or high is None:
        return low, basis
    per = f"{c.unit}/{c.period}"
    if high <= current and rule.kind != "up_to_max":
        run.warn("raise_not_above_current", computed=fmt(high), current=fmt(current))
        run.step(
            f"dose.raise_floor.{rule.agent}",
            "warnings.raise_not_above_current",
            "the weight-based figure is not above the current dose: no figure given",
            computed=fmt(high),
            current=fmt(current),
        )
        return (
            f"about {fmt(high)} {per} is not above the current {fmt(current)} {per}; "
            "the dose is the clinician's judgment"
        )
    if low is not None and low < current:
        return clean(current), f"{basis}; not below the current {fmt(current)} {per}"
    return low, basis


def practical(value: Decimal) -> Decimal:
    """Round a clean figure to what a prescriber can act on: 0.1 below 10, 0.5 below 100, else 1."""
    # Every figure arrives clean (no trailing zeros): one already at the step is its own result.
    if value < _TEN:
        # Dividing by 0.1 keeps every digit, so rounding to the step directly is the same.
        tenth = value.quantize(_TENTH, ROUND_HALF_UP)
        return value if tenth == value else clean(tenth)
    if value == value.to_integral_value():
        return value  # a whole figure from 10 up is already as precise as shown
    if value < _HUNDRED:
        return clean((value / _HALF).quantize(_ONE, ROUND_HALF_UP) * _HALF)
    return clean(value.quantize(_ONE, ROUND_HALF_UP))


def _rounded(got: Figures) -> Figures:
    """Return the figures rounded for prescribing, the basis saying what is shown."""
    was_low, was_high, basis = got
    low = practical(was_low) if was_low is not None else None
    high = was_high
    if high is not None:
        high = low if high == was_low else practical(high)  # a single figure: rounded once
    if low == was_low and high == was_high:
        return got  # the figures as worked out (same digits)
    shown = fmt(high) if low == high and high is not None else _span(low, high)
    return low, high, f"{basis}; shown as {shown}"


def _span(low: Decimal | None, high: Decimal | None) -> str:
    if low is None:
        return f"up to {fmt(high or Decimal(0))}"
    if high is None:
        return f"at least {fmt(low)}"
    return f"{fmt(low)} to {fmt(high)}"


def _split_words(c: DoseCalc, low: Decimal, high: Decimal) -> str:
    """Return ', given as X twice a day' for a daily total the source splits into doses."""
    n = c.split_n
    if n is None:
        return ""
    each = _span(round2(low / n), round2(high / n)) if low != high else fmt(round2(low / n))
    return f", given as {each} {c.rule.unit} {c.split_words} a day"


def _figures(run: Run, f: Facts, calc: DoseCalc) -> Figures | str:
    """Return this patient's figures for a computed regimen, or why there are none."""
    rule, c = calc.rule, calc.const
    kind = rule.kind
    if kind == "unstated":
        return "the source gives no figure for this step"
    if kind == "up_to_max":
        return _up_to(f, calc)
    if kind == "per_m2":
        if f.bsa is None:
            missing = run.no_height if f.weight_kg is not None else run.no_weight
            missing.append(calc.rule_id)
            return "needs height and weight for body surface area"
        lo, hi, result = _per(c.low, c.high, f.bsa)
        return lo, hi, f"{calc.lead}{f.bsa_words} = {result} {c.per}"
    # per_kg and fixed_to_per_kg need a weight.
    kg = f.kg
    if kg is None:
        run.no_weight.append(calc.rule_id)
        return "needs weight"
    if kind == "per_kg":
        lo, hi, result = _per(c.low, c.high, kg)
        basis = f"{calc.lead}{f.weight_words} = {result} {c.per}"
        if calc.split_n is not None:
            basis += _split_words(calc, lo, hi)
    else:  # fixed_to_per_kg: a fixed floor up to a weight-based ceiling
        lo = calc.floor if calc.floor is not None else clean(c.low)
        computed = round2(mul(c.high, kg))
        hi = clean(max(computed, lo))
        basis = f"{calc.lead}{f.weight_words} = {fmt(computed)} {c.per}"
        if computed < lo:
            basis += f"; the weight-based figure is below {fmt(lo)}, so the range is {fmt(lo)}"
    if calc.warn_above is not None and hi > calc.warn_above:
        run.warn("prednisone_above_75", dose=fmt(hi))
    return lo, hi, basis


def _per(low: Decimal, high: Decimal, measure: Decimal) -> tuple[Decimal, Decimal, str]:
    """Return a rate's bounds times a weight or surface area, rounded, and the result in words."""
    # A figure rounded to 0.01 and cleaned has no exponent, so str() writes it as fmt() does.
    lo = round2_clean(mul(low, measure))
    if high == low:  # a single rate: rounded once
        return lo, lo, str(lo)
    hi = round2_clean(mul(high, measure))
    return lo, hi, (str(lo) if lo == hi else f"{lo} to {hi}")


def _up_to(f: Facts, c: DoseCalc) -> Figures | str:
    """Return the figures from the current dose up to the stated maximum, or why not."""
    m = c.top
    assert m is not None  # read at load for every "up to the maximum" rule
    per = f"{m.unit}/{m.period}"
    current = f.current.get(c.rule.agent)
    if current is None:
        return f"current dose unknown; the source's maximum is {fmt(m.amount)} {per}"
    basis = f"from the current {fmt(current)} {per} up to the stated maximum {fmt(m.amount)} {per}"
    return clean(current), clean(m.amount), basis


def _clamp(run: Run, c: DoseCalc, m: Maximum, got: Figures) -> Figures:
    """Cap the figures at a stated maximum of the same unit and period, and say so."""
    low, high, basis = got
    if c.unit != m.unit or c.period != m.period or high is None or high <= m.amount:
        return got
    agent = c.rule.agent
    run.warn_max("dose_clamped", m, computed=fmt(high))
    run.step(
        f"clamp.{agent}",
        f"maxima.{m.id}",
        f"capped at {fmt(m.amount)}",
        computed=fmt(high),
        maximum=fmt(m.amount),
    )
    basis = f"{basis}; capped at the stated maximum {fmt(m.amount)} {m.unit}/{m.period}"
    return (clean(min(low, m.amount)) if low is not None else None), clean(m.amount), basis


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
