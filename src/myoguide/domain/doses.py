"""Doses for this patient: weight- and surface-based arithmetic, stated maxima, missing measures."""

from __future__ import annotations

from decimal import Decimal

from myoguide.domain.facts import Facts
from myoguide.domain.prepared import Prepared
from myoguide.domain.result import Dose, Regimen
from myoguide.domain.run import Run
from myoguide.domain.units import clean, fmt, mul, round2
from myoguide.knowledge.model import DoseRule, Maximum


def regimen(run: Run, f: Facts, rule_id: str, max_ref: str | None) -> Regimen:
    """Return one regimen with this patient's dose (clamped to a stated maximum) or why not."""
    p = run.p
    rule = p.kb.dose_rules[rule_id]
    dose, reason = _dose(run, f, rule_id, rule)
    if dose is not None and max_ref is not None:
        dose = clamp(run, dose, p.kb.maximum(max_ref), rule.agent)
    return Regimen(rule_id, rule.note, dose, reason, p.rule_sources[rule_id])


def _dose(run: Run, f: Facts, rule_id: str, rule: DoseRule) -> tuple[Dose | None, str | None]:
    p = run.p
    c = p.rule_consts[rule_id]
    per, low, high = c.per, c.low, c.high
    if rule.kind == "up_to_max":
        return _dose_up_to(p, f, rule)
    if rule.kind == "per_m2":
        if f.bsa is None:
            missing = run.no_height if f.weight_kg is not None else run.no_weight
            missing.append(rule_id)
            return None, "needs height and weight for body surface area"
        if low == high:
            lo = hi = clean(round2(mul(low, f.bsa)))
            result = fmt(lo)
        else:
            lo, hi = clean(round2(mul(low, f.bsa))), clean(round2(mul(high, f.bsa)))
            result = f"{fmt(lo)} to {fmt(hi)}"
        basis = f"{p.rate[rule_id]} {rule.unit}/m2 x {f.bsa_words} = {result} {per}"
        return Dose(lo, hi, rule.unit, rule.period, basis), None
    # per_kg and fixed_to_per_kg need a weight.
    if f.kg is None:
        run.no_weight.append(rule_id)
        return None, "needs weight"
    kg = f.kg
    if rule.kind == "per_kg":
        if low == high:
            lo = hi = clean(round2(mul(low, kg)))
            result = fmt(lo)
        else:
            lo, hi = clean(round2(mul(low, kg))), clean(round2(mul(high, kg)))
            result = f"{fmt(lo)} to {fmt(hi)}"
        basis = (
            f"{p.rate[rule_id]} {rule.unit}/kg/{rule.period} x {f.weight_words} = {result} {per}"
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
    return Dose(lo, hi, rule.unit, rule.period, basis), None


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
    if dose.unit != m.unit or dose.period != m.period or dose.high <= m.amount:
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
    low = clean(min(dose.low, m.amount))
    return Dose(low, clean(m.amount), dose.unit, dose.period, basis, dose.qualifier)


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
