"""Doses as they are given, and the label checks before starting each agent (ADR 0022).

A computed dose stays exactly as the arithmetic gave it; beside it goes the nearest amount that
whole units of verified products (terminology.yaml codes named in guideline.yaml `prescribing`)
can make: never above a stated maximum or a range's bound, ranges rounded inward, within half
the smallest unit of a single figure, and nothing where no verified product exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec
from msgspec import Struct, field

from myoguide.domain.fewest import SCALE as _SCALE
from myoguide.domain.fewest import FewestTable, Hundredths
from myoguide.domain.prepared import OptionPlan, Prepared, RegimenPlan, RuleConst, StaticRec
from myoguide.domain.result import (
    Action,
    AgentOption,
    Check,
    Dose,
    GivenAmount,
    LabelRef,
    Practical,
    Regimen,
    Source,
    Timing,
    UnitCount,
)
from myoguide.domain.units import clean, fmt
from myoguide.errors import KnowledgeError
from myoguide.knowledge.model import AgentCheck, DoseRule, Knowledge, MassUnit, Maximum, Period
from myoguide.knowledge.terminology import Terminology, amount_decimal

_MG = {"mg": Decimal(1), "g": Decimal(1000)}
_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_TIMES = {2: "twice", 3: "three times", 4: "four times"}
_SPLIT = {k: Decimal(k) for k in range(1, 5)}  # doses a day, as decimals made once
_ONE_MG = _MG["mg"]
_NO_PRODUCT = Practical(
    "none", "No verified product in the terminology: the figure is not rounded."
)


# msgspec Structs and a plain class rather than dataclasses: a dataclass runs generated code
# when it is defined, milliseconds of every command's start (issue 24).
class Unit(Struct, frozen=True):
    """One verified product: its strength in mg per unit and its RxNorm code."""

    strength_mg: Decimal
    rxnorm: str


class Formulary:
    """The verified products one agent's doses are made of, strongest first."""

    __slots__ = ("given", "label", "nearest", "nearest_h", "range_h", "table", "unit_word", "units")

    def __init__(self, label: str, unit_word: str, units: tuple[Unit, ...]) -> None:
        self.label = label
        self.unit_word = unit_word
        self.units = units
        # The fewest-units table over multiples of the strengths' common step: a function of
        # the strengths alone, grown on first need (each entry reads only smaller ones, so
        # growing it later gives the same entries as building it whole).
        self.table = FewestTable.of(tuple(u.strength_mg for u in units))
        # Per amount of one administration (a multiple of the smallest strength), the doses a
        # day and the mg factor: the amount given and its words, shared by every dose that
        # rounds to it. The amount is keyed by its text: hashing a new Decimal costs about as
        # much as the work it would save. The same per amount, doses a day, mg factor and unit:
        # the line as shown.
        self.given: dict[tuple[str, Decimal, Decimal], tuple[GivenAmount, str]] = {}
        self.nearest: dict[tuple[str, Decimal, Decimal, str], Practical] = {}
        self.nearest_h: dict[tuple[int, int, str], Practical] = {}  # in hundredths
        self.range_h: dict[tuple[int, int, int, str], Practical] = {}  # a range's two ends

    @property
    def smallest(self) -> Decimal:
        """Return the smallest strength, in mg."""
        return self.units[-1].strength_mg


class Tables(Struct, frozen=True):
    """Per agent: its formulary and its checks; per dose rule: its split and ceiling."""

    forms: dict[str, Formulary]
    checks: dict[str, tuple[Check, ...]]
    split: dict[str, int]
    kb: Knowledge
    # Per (recommendation, agent): the step's stated maximum, read once.
    step_max: dict[tuple[str, str], str | None] = field(default_factory=dict)
    # Per (recommendation, agent, rule): a patient-independent regimen and the same regimen with
    # its practical amounts, worked out once at load (see `with_static`).
    static: dict[tuple[str, str, str], tuple[Regimen, Regimen]] = field(default_factory=dict)
    # Per (recommendation, agent, rule): the stated maximum a regimen's amounts stay under.
    limit: dict[tuple[str, str, str], Maximum | None] = field(default_factory=dict)
    # Per recommendation, per agent option, per regimen: the prepared regimen or its DoseCalc.
    parts: dict[str, tuple[tuple[Regimen | DoseCalc, ...], ...]] = field(default_factory=dict)


class DoseCalc(Struct, frozen=True):
    """What one computed regimen of a step needs, read once at load (see `with_calcs`)."""

    rule_id: str
    rule: DoseRule
    const: RuleConst
    rate: str  # the rule's rate in words ("0.075", "3 to 5")
    sources: tuple[Source, ...]
    clamp_to: Maximum | None  # the stated maximum a computed figure is capped at
    form: Formulary | None
    split: int | None
    ceiling: Decimal | None  # the maximum whole-unit amounts stay under, in the dose's unit
    # The dose's unit, period and schedule: the maximum's unit and period (and no schedule) for
    # "up to the maximum", else the rule's.
    unit: MassUnit = "mg"
    period: Period = "day"
    timing: Timing | None = None
    top: Maximum | None = None  # the stated maximum of "up to the maximum"
    # The arithmetic's words up to the patient's measure ("0.075 mg/kg/day x "), and for a
    # fixed floor up to a weight-based ceiling, the floor.
    lead: str = ""
    floor: Decimal | None = None
    # For a daily total the source splits into doses: how many, and how often in words.
    split_n: Decimal | None = None
    split_words: str = ""
    warn_above: Decimal | None = None  # a figure above this warns (prednisone above 75 mg/day)
    # A single rate per kg or per m2 taken once a day or per dose: its figures in whole
    # hundredths (see doses.py); None for every other rule.
    hundredths: Hundredths | None = None


def _hundredths(c: DoseCalc) -> Hundredths | None:
    """Return a rate regimen's constants in hundredths (None for any other rule)."""
    low, high = c.const.low, c.const.high
    if c.rule.kind not in ("per_kg", "per_m2"):
        return None
    exps = (low.as_tuple().exponent, high.as_tuple().exponent)
    div = 10 ** max(0, *(-e for e in exps if isinstance(e, int)))  # rates are finite
    mg = int(_MG[c.unit])
    m = c.clamp_to
    clamp = m.amount * 100 if m is not None and (m.unit, m.period) == (c.unit, c.period) else None
    return Hundredths(
        int(low * div),
        int(high * div),
        div,
        mg,
        c.split or 1,
        int(c.form.smallest * _SCALE) if c.form is not None else 0,
        c.ceiling * mg * 100 if c.ceiling is not None else None,
        clamp,
        c.warn_above * 100 if c.warn_above is not None else None,
    )


def with_calcs(t: Tables, p: Prepared) -> Tables:
    """Read once, for every computed regimen of a step, what its dose needs."""
    # Each step's own plan: two steps naming one agent keep their own maximum.
    for rec_id, plans in p.option_plans.items():
        t.parts[rec_id] = tuple(
            tuple(
                rp.static or _with_hundredths(_calc(t, p, rec_id, op.agent, rp))
                for rp in op.regimens
            )
            for op in plans
        )
    return t


def _calc(t: Tables, p: Prepared, rec_id: str, agent: str, rp: RegimenPlan) -> DoseCalc:
    """Read what one computed regimen's dose needs."""
    kb = t.kb
    rule = kb.dose_rules[rp.rule_id]
    m = t.limit[(rec_id, agent, rp.rule_id)]
    const = p.rule_consts[rp.rule_id]
    rate = p.rate[rp.rule_id]
    # The dose's unit and period: the maximum's for "up to the maximum", else the rule's.
    unit, period, timing, top = rule.unit, rule.period, const.timing, None
    if rule.kind == "up_to_max":
        top = kb.maximum(rule.maximum or "")
        unit, period, timing = top.unit, top.period, None
    ceiling = None
    if m is not None and m.period == period:
        ceiling = m.amount * _MG[m.unit] / _MG[unit]
    lead, floor = "", None
    if rule.kind == "per_m2":
        lead = f"{rate} {rule.unit}/m2 x "
    elif rule.kind == "per_kg":
        lead = f"{rate} {rule.unit}/kg/{rule.period} x "
    elif rule.kind == "fixed_to_per_kg":
        floor = clean(const.low)
        lead = f"{fmt(floor)} {const.per} up to {fmt(const.high)} {rule.unit}/kg/{rule.period} x "
    n = rule.split
    # By keyword: several neighbours share a type (Decimal | None), so a slip would type-check.
    return DoseCalc(
        rule_id=rp.rule_id,
        rule=rule,
        const=const,
        rate=rate,
        sources=p.rule_sources[rp.rule_id],
        clamp_to=kb.maximum(rp.maximum) if rp.maximum is not None else None,
        form=t.forms.get(agent),
        split=t.split.get(rp.rule_id),
        ceiling=ceiling,
        unit=unit,
        period=period,
        timing=timing,
        top=top,
        lead=lead,
        floor=floor,
        split_n=Decimal(n) if n else None,
        split_words=_DAILY.get(n, f"{n} times") if n else "",
        warn_above=p.prednisone_warning if rule.agent == "prednisone" else None,
    )


_DAILY = {1: "once", 2: "twice", 3: "three times", 4: "four times"}


def _with_hundredths(c: DoseCalc) -> DoseCalc:
    return msgspec.structs.replace(c, hundredths=_hundredths(c))


def build_tables(kb: Knowledge, terminology: Terminology) -> Tables:
    """Read strengths from the terminology by the codes the knowledge names; fail closed."""
    origin = kb.origin or "guideline.yaml"
    forms: dict[str, Formulary] = {}
    checks: dict[str, tuple[Check, ...]] = {}
    for agent, rx in kb.prescribing.items():
        order = sorted(rx.checks, key=lambda c: c.when != "before_first_dose")
        checks[agent] = as_checks(tuple(order))
        if rx.given_as is None:
            continue
        units = []
        for code in rx.given_as.products:
            coded = terminology.agent_for_code(code)
            if coded is None or coded.agent != agent or coded.product is None:
                raise KnowledgeError(
                    origin,
                    f"prescribing.{agent}.given_as.products",
                    f"{code} is not a verified product of '{agent}' in terminology.yaml",
                )
            # The drafted route and the products must agree: oral forms for an oral route only.
            oral_form = coded.product.form.startswith("Oral")
            if rx.route is not None and (rx.route == "oral") != oral_form:
                raise KnowledgeError(
                    origin,
                    f"prescribing.{agent}.route",
                    f"'{rx.route}' does not fit {code} ({coded.product.form})",
                )
            mg = amount_decimal(coded.product.amount) * _MG[coded.product.amount.unit]
            if (mg * _SCALE) != (mg * _SCALE).to_integral_value():
                raise KnowledgeError(
                    origin, f"prescribing.{agent}.given_as", f"{code}: strength too fine"
                )
            units.append(Unit(mg, code))
        ordered = tuple(sorted({u.strength_mg: u for u in units}.values(), key=_by_strength))
        forms[agent] = Formulary(rx.given_as.label, rx.given_as.unit_word, ordered)
    split = {rid: r.split for rid, r in kb.dose_rules.items() if r.split}
    step_max: dict[tuple[str, str], str | None] = {}
    for rid, tpl in kb.recommendations.items():
        for a in tpl.agents:
            step_max.setdefault((rid, a.agent), a.max)  # the first step naming the agent
    limit: dict[tuple[str, str, str], Maximum | None] = {}
    for rid, tpl in kb.recommendations.items():
        for a in tpl.agents:
            for rule_id in a.regimens:
                rule = kb.dose_rules.get(rule_id)
                max_id = (rule.maximum if rule else None) or step_max[(rid, a.agent)]
                limit[(rid, a.agent, rule_id)] = kb.maximum(max_id) if max_id else None
    return Tables(forms, checks, split, kb, step_max, limit=limit)


def with_static(t: Tables, static_regimens: Mapping[str, Regimen]) -> Tables:
    """Work out once the practical amounts of every patient-independent regimen of a step."""
    for rid, tpl in t.kb.recommendations.items():
        for a in tpl.agents:
            for rule_id in a.regimens:
                reg = static_regimens.get(rule_id)
                if reg is not None:
                    done = with_practical(t, a.agent, reg, t.step_max[(rid, a.agent)])
                    t.static[(rid, a.agent, rule_id)] = (reg, done)
    return t


def as_checks(checks: tuple[AgentCheck, ...]) -> tuple[Check, ...]:
    """Return knowledge checks as answer checks, each with its label sources."""
    return tuple(
        Check(
            c.id,
            c.when,
            c.text,
            c.short,
            c.outside_source,
            tuple(
                LabelRef(s.regulator, s.product, s.section, s.version, s.url, s.set_id)
                for s in c.sources
            ),
        )
        for c in checks
    )


def _by_strength(u: Unit) -> Decimal:
    return -u.strength_mg


def combine(form: Formulary, amount_mg: Decimal) -> tuple[UnitCount, ...] | None:
    """Return the fewest whole units making exactly `amount_mg`, or None if none can."""
    table = form.table
    scaled = amount_mg * _SCALE
    if scaled <= 0 or scaled != scaled.to_integral_value() or int(scaled) % table.step:
        return None
    target = int(scaled) // table.step
    best, pick = table.upto(target)
    if best[target] is None:
        return None
    coins = table.coins
    counts = [0] * len(coins)
    total = target
    while total:
        counts[pick[total]] += 1
        total -= coins[pick[total]]
    return tuple(
        UnitCount(n, u.strength_mg, "mg", u.rxnorm)
        for n, u in zip(counts, form.units, strict=True)
        if n
    )


def practical(
    dose: Dose, form: Formulary | None, split: int | None = None, ceiling: Decimal | None = None
) -> Practical:
    """Return the whole-unit amounts nearest a dose (`ceiling`: a stated maximum, dose's unit)."""
    return amounts_of(dose.low, dose.high, dose.qualifier, dose.unit, form, split, ceiling)


def amounts_of(
    low: Decimal | None,
    high: Decimal | None,
    qualifier: str | None,
    unit: str,
    form: Formulary | None,
    split: int | None,
    ceiling: Decimal | None,
) -> Practical:
    """Return the whole-unit amounts nearest a dose given by its figures, as `practical`."""
    if form is None:
        return _NO_PRODUCT
    n = _SPLIT.get(split or 1) or Decimal(split or 1)
    f = _MG[unit]
    # Times one and divided by one leave the value as it is: skipped for a once-a-day mg dose.
    plain = split is None and f is _ONE_MG
    cap = None if ceiling is None else ceiling if plain else ceiling * f / n
    if qualifier is None and low is not None and low == high:
        return _nearest(form, low if plain else low * f / n, n, f, cap, unit)
    return _inward(low, high, unit, form, n, f, cap, plain)


def _nearest(
    form: Formulary, t: Decimal, n: Decimal, f: Decimal, cap: Decimal | None, unit: str
) -> Practical:
    """Return the whole amount nearest a single figure `t` (mg per administration), or both."""
    s = form.units[-1].strength_mg
    below = (t / s).to_integral_value(ROUND_FLOOR) * s
    if below == t:
        picks: tuple[Decimal, ...] = (below,)
    else:  # the nearer whole amount, or both when the figure lies halfway
        above = below + s
        under, over = t - below, above - t
        picks = (below,) if under < over else (above,) if over < under else (below, above)
    # Picks rise, so only the first can be nought; a cap can rule out either.
    if len(picks) == 1:  # the common case, without building a tuple again
        one = picks[0]
        if not one > 0 or (cap is not None and one > cap):
            picks = ()
    elif cap is not None or not picks[0] > 0:
        picks = tuple(a for a in picks if a > 0 and (cap is None or a <= cap))
    if not picks:
        why = f"no whole {form.unit_word} amount within half a {fmt(s)} mg {form.unit_word}"
        return Practical("none", f"{why} stays under the stated maximum.", (), form.label)
    if len(picks) == 1:
        key = (str(picks[0]), n, f, unit)
        hit = form.nearest.get(key)
        if hit is None:
            amount, text = _given(form, picks[0], n, f)
            hit = Practical("nearest", _shown(form, text, unit), (amount,), form.label)
            if len(form.nearest) < _GIVEN_LIMIT:
                form.nearest[key] = hit
        return hit
    made = [_given(form, a, n, f) for a in picks]
    amounts = tuple(g for g, _ in made)
    text = " or ".join(w for _, w in made)
    return Practical("nearest", _shown(form, text, unit), amounts, form.label)


def _inward(
    lo: Decimal | None,
    hi: Decimal | None,
    unit: str,
    form: Formulary,
    n: Decimal,
    f: Decimal,
    cap: Decimal | None,
    plain: bool,
) -> Practical:
    """Return a range's ends rounded inward to whole amounts, or why none fits."""
    s = form.smallest
    if not plain:
        lo = lo * f / n if lo is not None else None
        hi = hi * f / n if hi is not None else None
    if cap is not None:
        hi = cap if hi is None else min(hi, cap)
    lo_r = (lo / s).to_integral_value(ROUND_CEILING) * s if lo is not None else None
    hi_r = (hi / s).to_integral_value(ROUND_FLOOR) * s if hi is not None else None
    if lo_r is not None and lo_r <= 0:
        lo_r = s
    if (hi_r is not None and hi_r <= 0) or (lo_r is not None and hi_r is not None and lo_r > hi_r):
        why = f"No whole-{form.unit_word} amount of {form.label} falls inside this range."
        return Practical("none", why, (), form.label)
    end = lo_r if lo_r is not None else hi_r
    amounts: tuple[GivenAmount, ...] = ()
    joined = ""
    if end is not None and hi_r is not None and end != hi_r:  # both ends, low first
        (low, low_words), (high, high_words) = _given(form, end, n, f), _given(form, hi_r, n, f)
        amounts, joined = (low, high), f"{low_words} to {high_words}"
    elif end is not None:  # one end, or both the same
        one, joined = _given(form, end, n, f)
        amounts = (one,)
        if lo_r is None:
            joined = "up to " + joined
        elif hi_r is None:
            joined = "from " + joined
    return Practical("range", _shown(form, joined, unit), amounts, form.label)


def _shown(form: Formulary, text: str, unit: str) -> str:
    """Return the line shown: the products named and the dose's unit put in."""
    return f"As {form.label}: " + text.replace("{u}", unit)


_GIVEN_LIMIT = 4096  # amounts kept per formulary; beyond that they are worked out each time


def _given(form: Formulary, each_mg: Decimal, n: Decimal, f: Decimal) -> tuple[GivenAmount, str]:
    """Return the amount given for one administration of `each_mg`, and its words."""
    key = (str(each_mg), n, f)
    hit = form.given.get(key)
    if hit is not None:
        return hit
    units = combine(form, each_mg)
    # Multiples of the smallest strength can always be made; None would be a broken formulary.
    assert units is not None, each_mg
    amount = GivenAmount(_clean(each_mg * n / f), _clean(each_mg / f), units)
    made = (amount, _text(form, (amount,), n, ""))
    if len(form.given) < _GIVEN_LIMIT:
        form.given[key] = made
    return made


_ONE = Decimal(1)


def _clean(v: Decimal) -> Decimal:
    return v.quantize(_ONE) if v == v.to_integral_value() else v.normalize()


def _count(n: int) -> str:
    return _WORDS[n] if n < len(_WORDS) else str(n)


def _units_words(form: Formulary, units: tuple[UnitCount, ...]) -> str:
    parts = [
        f"{_count(u.count)} {fmt(u.strength)} mg {form.unit_word}{'s' if u.count > 1 else ''}"
        for u in units
    ]
    return " + ".join(parts)


def _text(form: Formulary, amounts: tuple[GivenAmount, ...], n: Decimal, sep: str) -> str:
    pieces = []
    for a in amounts:
        if n == 1:
            pieces.append(f"{fmt(a.amount)} {{u}} ({_units_words(form, a.units)})")
        else:
            times = _TIMES.get(int(n), f"{n} times")
            pieces.append(
                f"{fmt(a.per_administration)} {{u}} {times} a day, each as "
                f"{_units_words(form, a.units)} ({fmt(a.amount)} {{u}} a day)"
            )
    return sep.join(pieces)


def _ceiling(t: Tables, rule_id: str, step_max: str | None, dose: Dose) -> Decimal | None:
    """Return the stated maximum for a regimen's dose in the dose's unit, if one applies."""
    rule = t.kb.dose_rules.get(rule_id)
    max_id = (rule.maximum if rule else None) or step_max
    if max_id is None:
        return None
    m = t.kb.maximum(max_id)
    if m.period != dose.period:
        return None
    return m.amount * _MG[m.unit] / _MG[dose.unit]


def with_practical(t: Tables, agent: str, reg: Regimen, step_max: str | None) -> Regimen:
    """Return a regimen whose dose carries its practical (whole-unit) amounts."""
    if reg.dose is None:
        return reg
    ceiling = _ceiling(t, reg.id, step_max, reg.dose)
    p = practical(reg.dose, t.forms.get(agent), t.split.get(reg.id), ceiling)
    return msgspec.structs.replace(reg, dose=msgspec.structs.replace(reg.dose, practical=p))


def _regimen(t: Tables, rec_id: str, agent: str, reg: Regimen, step_max: str | None) -> Regimen:
    if reg.dose is None or reg.dose.practical is not None:
        return reg  # no dose, or its practical amounts already worked out (at load)
    known = t.static.get((rec_id, agent, reg.id))
    if known is not None and known[0] is reg:  # the very regimen worked out at load
        return known[1]
    return with_practical(t, agent, reg, step_max)


def _option(t: Tables, rec_id: str, opt: AgentOption) -> AgentOption:
    step_max = t.step_max.get((rec_id, opt.agent))
    regs = tuple(_regimen(t, rec_id, opt.agent, r, step_max) for r in opt.regimens)
    dose = opt.dose
    if dose is not None:
        same = next(
            (n.dose for o, n in zip(opt.regimens, regs, strict=True) if o.dose is dose), None
        )
        dose = same or msgspec.structs.replace(
            dose, practical=practical(dose, t.forms.get(opt.agent))
        )
    checks = t.checks.get(opt.agent, ())
    return msgspec.structs.replace(opt, dose=dose, regimens=regs, checks=checks)


def prescribed_static(static: dict[str, StaticRec], t: Tables) -> dict[str, StaticRec]:
    """Return the recommendations' patient-independent options with practical amounts and checks.

    Each carries its step's planned action, as a patient with no use of the agent gets it.
    """
    out = {}
    for rec_id, st in static.items():
        options = tuple(
            (agent, _planned(_option(t, rec_id, opt), planned) if opt is not None else None)
            for (agent, opt), planned in zip(st.options, st.planned, strict=True)
        )
        out[rec_id] = msgspec.structs.replace(st, options=options)
    return out


def _planned(opt: AgentOption, planned: Action) -> AgentOption:
    return msgspec.structs.replace(opt, action=planned)


def prescribed_plans(
    plans: dict[str, tuple[OptionPlan, ...]], t: Tables
) -> dict[str, tuple[OptionPlan, ...]]:
    """Return the option plans whose static regimens carry their practical amounts (from load)."""
    out = {}
    for rec_id, opts in plans.items():
        out[rec_id] = tuple(
            msgspec.structs.replace(
                op,
                regimens=tuple(
                    rp
                    if rp.static is None
                    else msgspec.structs.replace(
                        rp, static=t.static[(rec_id, op.agent, rp.rule_id)][1]
                    )
                    for rp in op.regimens
                ),
            )
            for op in opts
        )
    return out


def short_line(option: AgentOption) -> str:
    """Return one short line of an option's label checks for a summary, or '' when it has none."""
    if not option.checks:
        return ""
    before = [c.short for c in option.checks if c.when == "before_first_dose"]
    during = [c.short for c in option.checks if c.when == "while_taking"]
    parts = []
    if before:
        parts.append(f"before starting {option.display}: " + "; ".join(before))
    if during:
        parts.append("while taking: " + "; ".join(during))
    return "Label checks (outside the review) - " + " | ".join(parts)
