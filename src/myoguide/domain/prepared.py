"""The patient-independent tables the engine needs, built once per loaded Knowledge."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

from msgspec import Struct

from myoguide.domain.result import (
    Action,
    AgentOption,
    CautionDetail,
    Dose,
    LiteratureNote,
    Regimen,
    Source,
    Timing,
)
from myoguide.domain.units import clean, fmt
from myoguide.errors import KnowledgeError
from myoguide.knowledge.model import (
    DoseRule,
    Knowledge,
    Maximum,
    RecommendationTemplate,
    SourceRef,
)

KB = "guideline.yaml#"
STATIC_KINDS = frozenset({"fixed", "at_least", "up_to"})
Stance = Literal["recommended", "alternative", "reserved", "not_suggested"]

# Every warning code and scenario id the rules emit: checked when the engine is built, so a
# renamed key fails at start-up naming the file and key, never on the first matching patient.
REQUIRED_WARNINGS = (
    "out_of_scope_deceased",
    "out_of_scope_child",
    "out_of_scope_ibm",
    "out_of_scope_diagnosis",
    "out_of_scope_initial_therapy",
    "flare_without_control",
    "skin_predominant_not_dm",
    "ild_without_sparing_trial",
    "all_options_failed",
    "prednisone_dose_unknown",
    "scenario_not_covered",
    "prednisone_at_boundary",
    "both_sparing_failed",
    "sparing_dose_unknown",
    "current_above_maximum",
    "alternative_diagnoses_unknown",
    "alternative_diagnoses_not_excluded",
    "prednisone_above_75",
    "dose_clamped",
    "no_weight",
    "no_height",
)
REQUIRED_SCENARIOS = (
    "flare_above_10mg",
    "flare_below_10mg",
    "flare_at_10mg_boundary",
    "flare_off_prednisone_on_sparing_agent",
    "flare_off_immunosuppression",
    "resistant",
    "ild_refractory",
)
REQUIRED_AGENTS = ("prednisone",)
REQUIRED_CLASSES = ("second_line", "tnf_inhibitor", "alkylating_agent")


def sources_of(refs: Iterable[SourceRef]) -> tuple[Source, ...]:
    """Return knowledge source pointers as result Sources."""
    return tuple(Source(r.document, r.section, r.references, r.citations) for r in refs)


# msgspec Structs rather than dataclasses: a dataclass runs generated code when it is defined,
# milliseconds of every command's start (issue 24); a Struct is defined in microseconds.
class StaticRec(Struct, frozen=True):
    """The parts of a recommendation that do not depend on the patient, built once."""

    stance: Stance
    grade: str | None
    grade_meaning: str | None
    text: str
    sources: tuple[Source, ...]
    details: tuple[CautionDetail, ...]
    details_ild: tuple[CautionDetail, ...]
    cautions: tuple[str, ...]
    cautions_ild: tuple[str, ...]
    options: tuple[tuple[str, AgentOption | None], ...]  # None: computed per patient
    planned: tuple[Action, ...]  # what the step does with each agent, in template order
    planned_by: dict[str, Action]  # the same, by agent
    course: bool  # some agent of it is given as an infusion or course
    course_named: frozenset[str]  # those agents
    # Read once for each time the step is offered: its trace step's rule and knowledge, the
    # template's alternatives and words when offered alone, and whether an ILD caution names
    # calcineurin inhibitors.
    trace_rule: str = ""
    trace_knowledge: str = ""
    choose_one: tuple[str, ...] = ()
    text_alone: str | None = None
    cni_ild: bool = False


class RegimenPlan(Struct, frozen=True):
    """One regimen of an agent option: its rule, a prebuilt regimen if static, its maximum."""

    rule_id: str
    static: Regimen | None
    maximum: str | None


class OptionPlan(Struct, frozen=True):
    """What an agent option of a template needs to be built for a patient."""

    agent: str
    rxnorm: str | None
    display: str
    regimens: tuple[RegimenPlan, ...]
    maximum_words: str | None


class LadderEntry(Struct, frozen=True):
    """One recommendation of a ladder step and the facts the walk needs about it."""

    rec_id: str
    agents: frozenset[str]
    offered_after_failure: bool
    not_suggested: bool
    alkylating: bool


class LadderStepPlan(Struct, frozen=True):
    """One step of the resistant ladder, ready to walk."""

    number: int
    key: str
    label: str
    entries: tuple[LadderEntry, ...]
    ids: tuple[str, ...]


class RuleConst(Struct, frozen=True):
    """A dose rule's rate words and bounds, read once."""

    per: str
    low: Decimal
    high: Decimal
    timing: Timing | None


class Prepared(Struct):
    """Every patient-independent table of one Knowledge; built by `prepare`."""

    kb: Knowledge
    caution: dict[str, CautionDetail]
    rule_sources: dict[str, tuple[Source, ...]]
    warn_sources: dict[str, tuple[Source, ...]]
    literature: tuple[LiteratureNote, ...]
    grade_meaning: dict[str, str]
    second_line: frozenset[str]
    maxima_words: dict[str, str]
    rate: dict[str, str]
    static_regimens: dict[str, Regimen]
    static: dict[str, StaticRec]
    rule_consts: dict[str, RuleConst]
    option_plans: dict[str, tuple[OptionPlan, ...]]
    ladder_dm: tuple[LadderStepPlan, ...]
    ladder_pm: tuple[LadderStepPlan, ...]
    adult_age: float
    boundary: Decimal
    prednisone_warning: Decimal
    sparing: tuple[str, ...]
    sparing_set: frozenset[str]
    ladder_ids: frozenset[str]
    # Agents given as infusions or courses (never a "continue" order).
    course_agents: frozenset[str] = frozenset()
    # Recommendations that can never name azathioprine or methotrexate: their templates name
    # neither (the controlled step's agents come from the patient, so it is never here).
    no_sparing: frozenset[str] = frozenset()
    # The flare options a ladder folds beneath (R1-R4's "manage as resistant", in order), and
    # the escalations that apply only once other diagnoses are excluded.
    flare_parents: tuple[str, ...] = ()
    escalations: frozenset[str] = frozenset()
    # Each sparing agent with its first stated maximum (the AZA+MTX combination's closing test).
    sparing_max: tuple[tuple[str, Maximum | None], ...] = ()


def timing_of(rule: DoseRule) -> Timing | None:
    """Return a rule's schedule as a result Timing."""
    t = rule.timing
    if t is None:
        return None
    return Timing(t.frequency, t.period, t.period_unit, t.count, t.count_max)


def check_required(kb: Knowledge) -> None:
    """Fail closed, naming file and key, when the knowledge lacks an id the rules emit."""
    origin = kb.origin or "guideline.yaml"
    for code in REQUIRED_WARNINGS:
        if code not in kb.warnings:
            raise KnowledgeError(origin, f"warnings.{code}", "required by the engine, missing")
    for sid in REQUIRED_SCENARIOS:
        if sid not in kb.scenarios:
            raise KnowledgeError(origin, f"scenarios.{sid}", "required by the engine, missing")
    ids = set(kb.agent_ids)
    for agent in (*REQUIRED_AGENTS, *kb.wiring.sparing_agents):
        if agent not in ids:
            raise KnowledgeError(origin, "agents", f"'{agent}' is required by the engine")
    for sid in ("flare_below_10mg", "flare_off_immunosuppression"):
        if sid not in kb.severity_notes:
            raise KnowledgeError(origin, f"severity_notes.{sid}", "required by the engine, missing")
    for cls in REQUIRED_CLASSES:
        if not kb.agents_in_class(cls):
            raise KnowledgeError(origin, "agents", f"no agent in class '{cls}'")


def prepare(kb: Knowledge) -> Prepared:
    """Check the knowledge against what the rules need and build every table once."""
    check_required(kb)
    caution = {k: CautionDetail(k, c.text, sources_of(c.sources)) for k, c in kb.cautions.items()}
    rule_sources = {k: sources_of(r.sources) for k, r in kb.dose_rules.items()}
    maxima_words = {m.id: f"{fmt(m.amount)} {m.unit}/{m.period}" for m in kb.maxima}
    static_regimens = {
        rid: Regimen(rid, r.note, static_dose(r, kb), None, rule_sources[rid])
        for rid, r in kb.dose_rules.items()
        if r.kind in STATIC_KINDS
    }
    grade_meaning: dict[str, str] = {
        g: kb.grades.explain(g)
        for g in {t.grade for t in kb.recommendations.values()}
        if g is not None
    }
    p = Prepared(
        kb=kb,
        caution=caution,
        rule_sources=rule_sources,
        warn_sources={k: sources_of(w.sources) for k, w in kb.warnings.items()},
        literature=tuple(
            LiteratureNote(i.id, i.display, i.text, sources_of(i.sources))
            for i in kb.literature_only
        ),
        grade_meaning=grade_meaning,
        second_line=kb.agents_in_class("second_line"),
        maxima_words=maxima_words,
        rate={
            rid: fmt(r.low or Decimal(0))
            if r.low == r.high
            else f"{fmt(r.low or Decimal(0))} to {fmt(r.high or Decimal(0))}"
            for rid, r in kb.dose_rules.items()
        },
        static_regimens=static_regimens,
        static={},
        rule_consts={
            rid: RuleConst(
                f"{r.unit}/{r.period}", r.low or Decimal(0), r.high or Decimal(0), timing_of(r)
            )
            for rid, r in kb.dose_rules.items()
        },
        option_plans={},
        ladder_dm=(),
        ladder_pm=(),
        # Ages arrive as JSON numbers; a float comparison with a whole-year threshold is exact.
        adult_age=float(kb.thresholds.adult_age_years),
        boundary=kb.thresholds.prednisone_flare_boundary_mg_per_day,
        prednisone_warning=kb.thresholds.prednisone_weight_based_warning_mg_per_day,
        sparing=kb.wiring.sparing_agents,
        sparing_set=frozenset(kb.wiring.sparing_agents),
        ladder_ids=frozenset(
            rid for s in kb.ladder for rid in (*s.recommendations, *(s.recommendations_pm or ()))
        ),
    )
    p.course_agents = frozenset(a.id for a in kb.agents if a.given_as_course)
    w = kb.wiring
    p.flare_parents = (
        w.flare_above_10mg.manage_as_resistant,
        w.flare_off_prednisone_on_sparing_agent.manage_as_resistant,
        w.flare_off_immunosuppression.manage_as_resistant,
    )
    # R1's "manage as resistant" raises prednisone for the flare either way: not held back.
    p.escalations = p.ladder_ids | frozenset((*p.flare_parents[1:], w.ild_refractory))
    p.sparing_max = tuple(
        (a, next((m for m in kb.maxima if m.agent == a), None)) for a in p.sparing
    )
    p.no_sparing = frozenset(
        rid
        for rid, t in kb.recommendations.items()
        if rid != kb.wiring.controlled and not any(a.agent in p.sparing_set for a in t.agents)
    )
    p.static = {rid: _static_rec(p, rid, t) for rid, t in kb.recommendations.items()}
    p.option_plans = {rid: _plan_options(p, t) for rid, t in kb.recommendations.items()}
    p.ladder_dm = _prepare_ladder(kb, pm=False)
    p.ladder_pm = _prepare_ladder(kb, pm=True)
    return p


def static_dose(rule: DoseRule, kb: Knowledge) -> Dose:
    """Return the dose of a rule that does not depend on the patient."""
    per = f"{rule.unit}/{rule.period}"
    low, high = rule.low or Decimal(0), rule.high or Decimal(0)
    timing = timing_of(rule)
    if rule.kind == "fixed":
        span = fmt(low) if low == high else f"{fmt(low)} to {fmt(high)}"
        basis = f"{span} {per} (fixed)"
        return Dose(clean(low), clean(high), rule.unit, rule.period, basis, None, timing)
    if rule.kind == "at_least":
        basis = f"at least {fmt(low)} {per} to start; the source gives no upper figure"
        return Dose(clean(low), None, rule.unit, rule.period, basis, "at_least", timing)
    m = kb.maximum(rule.maximum or "")
    basis = f"up to {fmt(m.amount)} {m.unit}/{m.period} (the source's stated maximum)"
    return Dose(None, clean(m.amount), m.unit, m.period, basis, "up_to", timing)


def _static_rec(p: Prepared, rec_id: str, tpl: RecommendationTemplate) -> StaticRec:
    """Build the patient-independent parts of one recommendation template."""
    plain = tuple(p.caution[c] for c in tpl.cautions)
    ild = plain + tuple(p.caution[c] for c in tpl.cautions_if_ild)
    options: list[tuple[str, AgentOption | None]] = []
    for step in tpl.agents:
        info = p.kb.agent(step.agent)
        if all(r in p.static_regimens for r in step.regimens):
            regs = tuple(p.static_regimens[r] for r in step.regimens)
            primary = regs[0].dose if regs else None
            maximum = p.maxima_words.get(step.max) if step.max else None
            opt = AgentOption(step.agent, info.rxnorm, info.display, primary, regs, maximum)
            options.append((step.agent, opt))
        else:
            options.append((step.agent, None))
    return StaticRec(
        stance=tpl.stance,
        grade=tpl.grade,
        grade_meaning=tpl.grade_words or (p.grade_meaning.get(tpl.grade) if tpl.grade else None),
        text=tpl.text,
        sources=sources_of(tpl.sources),
        details=plain,
        details_ild=ild,
        cautions=tuple(d.text for d in plain),
        cautions_ild=tuple(d.text for d in ild),
        options=tuple(options),
        planned=tuple(a.action for a in tpl.agents),
        planned_by={a.agent: a.action for a in tpl.agents},
        course=any(a.agent in p.course_agents for a in tpl.agents),
        course_named=frozenset(a.agent for a in tpl.agents if a.agent in p.course_agents),
        trace_rule=f"option.{rec_id}",
        trace_knowledge=f"{KB}recommendations.{rec_id}",
        choose_one=tuple(tpl.choose_one),
        text_alone=tpl.text_alone or None,
        cni_ild=any(d.id == "cni_ild" for d in ild),
    )


def _plan_options(p: Prepared, tpl: RecommendationTemplate) -> tuple[OptionPlan, ...]:
    """Precompute, per agent of a template, its identity and each regimen's plan."""
    plans: list[OptionPlan] = []
    for step in tpl.agents:
        info = p.kb.agent(step.agent)
        regs = tuple(
            RegimenPlan(rid, p.static_regimens.get(rid), p.kb.dose_rules[rid].maximum or step.max)
            for rid in step.regimens
        )
        maximum = p.maxima_words.get(step.max) if step.max else None
        plans.append(OptionPlan(step.agent, info.rxnorm, info.display, regs, maximum))
    return tuple(plans)


def _prepare_ladder(kb: Knowledge, *, pm: bool) -> tuple[LadderStepPlan, ...]:
    """Precompute, per ladder step, what the ladder walk needs to know of each option."""
    alkylating = kb.agents_in_class("alkylating_agent")
    out = []
    for i, step in enumerate(kb.ladder):
        ids = step.recommendations_pm if pm and step.recommendations_pm else step.recommendations
        entries = []
        for rid in ids:
            tpl = kb.recommendations[rid]
            agents = frozenset(a.agent for a in tpl.agents)
            entries.append(
                LadderEntry(
                    rec_id=rid,
                    agents=agents,
                    offered_after_failure=tpl.offered_after_failure,
                    not_suggested=tpl.stance == "not_suggested",
                    # A step made only of alkylating agents carries their reserve condition.
                    alkylating=bool(agents) and agents <= alkylating,
                )
            )
        out.append(
            LadderStepPlan(step.step, f"ladder[{i}]", f"ladder {step.step}", tuple(entries), ids)
        )
    return tuple(out)
