"""The pure guideline engine: a validated patient state in, a RecommendationSet out.

No I/O, no environment, no clock: the same state and knowledge always give the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from myoguide.domain.result import (
    AgentOption,
    CautionDetail,
    Course,
    Dose,
    FactValue,
    LiteratureNote,
    Recommendation,
    RecommendationSet,
    Regimen,
    Source,
    TraceStep,
    Warning,
)
from myoguide.domain.state import PatientState, dec
from myoguide.domain.units import (
    clean,
    fmt,
    mosteller_bsa,
    mul,
    round2,
    to_mg_per_day,
    to_mg_per_week,
)
from myoguide.knowledge.model import (
    DoseRule,
    Knowledge,
    Maximum,
    RecommendationTemplate,
    SourceRef,
)

KB = "guideline.yaml#"
SPARING = ("azathioprine", "methotrexate")
STATIC_KINDS = frozenset({"fixed", "at_least", "up_to"})
FAILED_OUTCOMES = frozenset({"inadequate_response", "intolerance"})
IN_SCOPE = frozenset({"dermatomyositis", "polymyositis"})
IBM_NAMES = frozenset({"inclusion_body_myositis", "inclusion body myositis", "ibm", "sibm"})


def sources_of(refs: Iterable[SourceRef]) -> tuple[Source, ...]:
    return tuple(Source(r.document, r.section, r.references, r.citations) for r in refs)


@dataclass(slots=True)
class _Facts:
    """What the rules need to know about the patient, derived once."""

    state: PatientState
    weight_kg: Decimal | None
    kg: Decimal | None  # rounded to 0.01 kg, the figure doses are computed from and shown with
    weight_words: str
    height_cm: Decimal | None
    kg_text: str
    height_text: str
    bsa_text: str
    bsa: Decimal | None
    bsa_words: str
    ild: bool
    current: dict[
        str, Decimal | None
    ]  # agent -> dose in mg/day (or mg/week for MTX); None: no dose
    failed: frozenset[str]
    inadequate: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Static:
    """The parts of a recommendation that do not depend on the patient, built once."""

    stance: Literal["recommended", "alternative", "reserved", "not_suggested"]
    grade: str | None
    grade_meaning: str | None
    text: str
    sources: tuple[Source, ...]
    details: tuple[CautionDetail, ...]
    details_ild: tuple[CautionDetail, ...]
    cautions: tuple[str, ...]
    cautions_ild: tuple[str, ...]
    options: tuple[tuple[str, AgentOption | None], ...]  # None: computed per patient
    knowledge: str
    all_static: bool


# (step number, knowledge key, label, options, option ids); each option is
# (id, its agents, offered after failure, not suggested, alkylating).
_LadderStep = tuple[
    int, str, str, tuple[tuple[str, frozenset[str], bool, bool, bool], ...], list[str]
]


# (agent, rxnorm, display, regimens as (rule id, prebuilt regimen or None, maximum id), maximum)
_OptionPlan = tuple[
    str, str | None, str, tuple[tuple[str, Regimen | None, str | None], ...], str | None
]


@dataclass(slots=True)
class _Run:
    """The answer being built: recommendations, warnings and trace, in order."""

    recs: list[Recommendation] = field(default_factory=list)
    warnings: dict[str, Warning] = field(default_factory=dict)
    trace: list[TraceStep] = field(default_factory=list)
    no_weight: list[str] = field(default_factory=list)
    no_height: list[str] = field(default_factory=list)

    def step(self, rule: str, knowledge: str, outcome: str, **facts: FactValue) -> None:
        self.trace.append(TraceStep(rule, KB + knowledge, facts, outcome))


class Engine:
    """Evaluates patient states against one loaded Knowledge."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.kb = knowledge
        self._rec_sources = {k: sources_of(t.sources) for k, t in knowledge.recommendations.items()}
        self._caution = {
            k: CautionDetail(k, c.text, sources_of(c.sources))
            for k, c in knowledge.cautions.items()
        }
        self._rule_sources = {k: sources_of(r.sources) for k, r in knowledge.dose_rules.items()}
        self._warn_sources = {k: sources_of(w.sources) for k, w in knowledge.warnings.items()}
        self._literature = tuple(
            LiteratureNote(i.id, i.display, i.text, sources_of(i.sources))
            for i in knowledge.literature_only
        )
        self._grade_meaning = {
            g: knowledge.grades.explain(g)
            for g in {t.grade for t in knowledge.recommendations.values()}
            if g is not None
        }
        self._second_line = knowledge.agents_in_class("second_line")
        self._agents = {a.id: a for a in knowledge.agents}
        self._maxima = {m.id: m for m in knowledge.maxima}
        self._max_words = {m.id: f"{fmt(m.amount)} {m.unit}/{m.period}" for m in knowledge.maxima}
        self._rate = {
            rid: fmt(r.low or Decimal(0))
            if r.low == r.high
            else f"{fmt(r.low or Decimal(0))} to {fmt(r.high or Decimal(0))}"
            for rid, r in knowledge.dose_rules.items()
        }
        # Doses that do not depend on the patient are built once, here.
        self._static_regimens = {
            rid: Regimen(rid, r.note, self._static_dose(r), None, self._rule_sources[rid])
            for rid, r in knowledge.dose_rules.items()
            if r.kind in STATIC_KINDS
        }
        self._static = {rid: self._prepare(rid, t) for rid, t in knowledge.recommendations.items()}
        self._rule_consts = {
            rid: (f"{r.unit}/{r.period}", r.low or Decimal(0), r.high or Decimal(0))
            for rid, r in knowledge.dose_rules.items()
        }
        self._option_plans = {
            rid: self._plan_options(t) for rid, t in knowledge.recommendations.items()
        }
        self._rec_agents = {
            rid: frozenset(a.agent for a in t.agents)
            for rid, t in knowledge.recommendations.items()
        }
        self._built: dict[tuple[object, ...], Recommendation] = {}
        self._ladder_dm = self._prepare_ladder(pm=False)
        self._ladder_pm = self._prepare_ladder(pm=True)
        th = knowledge.thresholds
        # Ages arrive as JSON numbers; a float comparison with a whole-year threshold is exact.
        self._adult = float(th.adult_age_years)
        self._boundary = th.prednisone_flare_boundary_mg_per_day
        self._pred_warn = th.prednisone_weight_based_warning_mg_per_day

    def _prepare(self, rec_id: str, tpl: RecommendationTemplate) -> _Static:
        """Build the patient-independent parts of one recommendation template."""
        plain = tuple(self._caution[c] for c in tpl.cautions)
        ild = plain + tuple(self._caution[c] for c in tpl.cautions_if_ild)
        options: list[tuple[str, AgentOption | None]] = []
        for step in tpl.agents:
            info = self._agents[step.agent]
            if all(r in self._static_regimens for r in step.regimens):
                regs = tuple(self._static_regimens[r] for r in step.regimens)
                primary = regs[0].dose if regs else None
                maximum = self._max_words.get(step.max) if step.max else None
                opt = AgentOption(step.agent, info.rxnorm, info.display, primary, regs, maximum)
                options.append((step.agent, opt))
            else:
                options.append((step.agent, None))
        return _Static(
            stance=tpl.stance,
            grade=tpl.grade,
            grade_meaning=self._grade_meaning.get(tpl.grade) if tpl.grade else None,
            text=tpl.text,
            sources=self._rec_sources[rec_id],
            details=plain,
            details_ild=ild,
            cautions=tuple(d.text for d in plain),
            cautions_ild=tuple(d.text for d in ild),
            options=tuple(options),
            knowledge=f"recommendations.{rec_id}",
            all_static=all(o is not None for _, o in options),
        )

    # ---- entry point -------------------------------------------------------------------

    def recommend(self, state: PatientState) -> RecommendationSet:
        """Return the RecommendationSet for a validated patient state."""
        run = _Run()
        facts = self._facts(state)
        course, scenario = self._evaluate(state, facts, run)
        self._missing_measure_warnings(run)
        recs = tuple(sorted(run.recs, key=lambda r: r.rank))
        scen = self.kb.scenarios.get(scenario) if scenario else None
        shows_ladder = any(r.id.startswith("resistant_") for r in recs)
        measures: dict[str, str] = {}
        if facts.kg_text:
            measures["weight_kg"] = facts.kg_text
        if facts.height_text:
            measures["height_cm"] = facts.height_text
        if facts.bsa_text:
            measures["bsa_m2"] = facts.bsa_text
        return RecommendationSet(
            knowledge_version=self.kb.knowledge_version,
            course=course,
            scenario=scenario,
            recommendations=recs,
            warnings=tuple(run.warnings.values()),
            trace=tuple(run.trace),
            scenario_title=scen.title if scen else None,
            literature_only=self._literature if shows_ladder else (),
            disclaimer=self.kb.disclaimer,
            measures=measures,
        )

    # ---- classification ----------------------------------------------------------------

    def _evaluate(self, state: PatientState, facts: _Facts, run: _Run) -> tuple[Course, str | None]:
        if state.age_years < self._adult:
            self._warn(run, "out_of_scope_child", age=fmt(state.age))
            run.step(
                "scope.adult",
                "thresholds.adult_age_years",
                "out of scope: under 18",
                age_years=state.age_years,
            )
            return "out_of_scope", None
        run.step(
            "scope.adult",
            "thresholds.adult_age_years",
            "adult: in scope",
            age_years=state.age_years,
        )
        diagnosis = state.diagnosis.strip().lower()
        if diagnosis not in IN_SCOPE:
            code = "out_of_scope_ibm" if diagnosis in IBM_NAMES else "out_of_scope_diagnosis"
            self._warn(run, code, diagnosis=state.diagnosis)
            run.step(
                "scope.diagnosis",
                f"warnings.{code}",
                "out of scope: diagnosis",
                diagnosis=state.diagnosis,
            )
            return "out_of_scope", None
        run.step("scope.diagnosis", "documents", f"in scope: {diagnosis}", diagnosis=diagnosis)

        resistant_history = "prednisone" in facts.inadequate and any(
            a in facts.inadequate for a in SPARING
        )
        ild_refractory = state.ild is not None and state.ild.present and state.ild.refractory
        control, flare = state.disease_control_achieved, state.flare
        if flare is True and control is False:
            self._warn(run, "flare_without_control")
        recurrent = flare is True and control is not False
        run.step(
            "course.classify",
            "scenarios",
            "recurrent" if recurrent else ("resistant" if resistant_history else "not recurrent"),
            disease_control_achieved=control,
            flare=flare,
            inadequate_response=sorted(facts.inadequate),
            resistant_history=resistant_history,
            ild_refractory=ild_refractory,
        )

        skin = bool(state.skin_predominant)
        if skin and diagnosis != "dermatomyositis":
            self._warn(run, "skin_predominant_not_dm")
            skin = False

        if ild_refractory:
            course: Course = "resistant"
            scenario: str | None = "ild_refractory"
        elif recurrent:
            course, scenario = "recurrent", None
        elif resistant_history:
            course, scenario = "resistant", "resistant"
        elif control is True:
            course, scenario = "controlled", None
        else:
            self._warn(run, "out_of_scope_initial_therapy")
            run.step(
                "scope.initial_therapy",
                "warnings.out_of_scope_initial_therapy",
                "out of scope: initial therapy",
                disease_control_achieved=control,
            )
            return "out_of_scope", None

        if skin:
            self._add(run, "refractory_rash_pointer", 1, facts, step="refractory_rash")
            run.step(
                "rash.pointer",
                "recommendations.refractory_rash_pointer",
                "rash is the refractory problem: point to cutaneous DM management, "
                "muscle options not escalated",
                skin_predominant=True,
            )
            if course == "recurrent":
                scenario = self._flare_scenario(facts, run, classify_only=True)
            return course, scenario

        if course == "controlled":
            run.step(
                "course.controlled",
                "scenarios",
                "in control, no flare: nothing to escalate",
                disease_control_achieved=True,
                flare=flare,
            )
            return course, None
        if course == "recurrent":
            return course, self._flare_scenario(facts, run, classify_only=False)

        self._check_alternative_diagnoses(state, run)
        rank = 1
        excluded: frozenset[str] = frozenset()
        if ild_refractory:
            if not any(a in facts.current or a in facts.failed for a in SPARING):
                self._warn(run, "ild_without_sparing_trial")
            if "tacrolimus" in facts.failed:
                run.step(
                    "ild.tacrolimus_first",
                    "recommendations.ild_tacrolimus",
                    "tacrolimus already failed: not offered again; general ladder follows",
                    ild_refractory=True,
                    tacrolimus_failed=True,
                )
            else:
                self._add(run, "ild_tacrolimus", 1, facts, step="ild")
                run.step(
                    "ild.tacrolimus_first",
                    "recommendations.ild_tacrolimus",
                    "tacrolimus 0.2 mg/kg/day leads, ahead of the general ladder",
                    ild_present=True,
                    ild_refractory=True,
                )
                rank, excluded = 2, frozenset({"tacrolimus"})
        self._ladder(facts, run, rank, excluded)
        return course, scenario

    def _facts(self, state: PatientState) -> _Facts:
        current: dict[str, Decimal | None] = {}
        for med in state.current_medications:
            if med.dose is None:
                current[med.agent] = None
            elif med.agent == "methotrexate":
                current[med.agent] = to_mg_per_week(dec(med.dose.value), med.dose.unit)
            else:
                current[med.agent] = to_mg_per_day(dec(med.dose.value), med.dose.unit)
        weight = state.weight.kg if state.weight is not None else None
        kg = round2(weight) if weight is not None else None
        kg_text = fmt(kg) if kg is not None else ""
        weight_words = ""
        if kg is not None and state.weight is not None:
            weight_words = f"{kg_text} kg"
            if state.weight.unit == "lb":
                weight_words += f" ({fmt(dec(state.weight.value))} lb x 0.45359237)"
        bsa, bsa_words, bsa_text = None, "", ""
        height = round2(state.height.cm) if state.height is not None else None
        height_text = fmt(height) if height is not None else ""
        if height is not None and state.height is not None and weight is not None:
            bsa = mosteller_bsa(state.height.cm, weight)
            bsa_text = fmt(bsa)
            bsa_words = f"{bsa_text} m2 (Mosteller sqrt({height_text} cm x {kg_text} kg / 3600))"
        hist = state.treatment_history
        return _Facts(
            state=state,
            weight_kg=weight,
            kg=kg,
            weight_words=weight_words,
            height_cm=height,
            kg_text=kg_text,
            height_text=height_text,
            bsa_text=bsa_text,
            bsa=bsa,
            bsa_words=bsa_words,
            ild=state.ild is not None and state.ild.present,
            current=current,
            failed=frozenset(h.agent for h in hist if h.outcome in FAILED_OUTCOMES),
            inadequate=frozenset(h.agent for h in hist if h.outcome == "inadequate_response"),
        )

    # ---- recurrent disease ---------------------------------------------------------------

    def _flare_scenario(self, f: _Facts, run: _Run, *, classify_only: bool) -> str | None:
        pred_listed = "prednisone" in f.current
        pred = f.current.get("prednisone")
        if pred_listed and pred is None:
            self._warn(run, "prednisone_dose_unknown")
            run.step(
                "flare.prednisone_dose",
                "warnings.prednisone_dose_unknown",
                "no scenario: prednisone dose missing",
                prednisone_listed=True,
            )
            return None
        sparing_now = [a for a in SPARING if a in f.current]
        others_now = sorted(a for a in f.current if a != "prednisone" and a not in SPARING)
        on_pred = pred is not None and pred > 0
        facts: dict[str, FactValue] = {
            "prednisone_mg_per_day": fmt(pred) if pred is not None else None,
            "sparing_agents_in_use": sparing_now,
            "other_immunosuppressants_in_use": others_now,
        }
        if on_pred:
            assert pred is not None
            if pred > self._boundary:
                scenario = "flare_above_10mg"
            elif pred < self._boundary:
                scenario = "flare_below_10mg"
            else:
                scenario = "flare_at_10mg_boundary"
        elif sparing_now:
            scenario = "flare_off_prednisone_on_sparing_agent"
        elif not others_now:
            scenario = "flare_off_immunosuppression"
        else:
            self._warn(
                run,
                "scenario_not_covered",
                detail="off prednisone, on "
                + ", ".join(others_now)
                + " without azathioprine or methotrexate",
            )
            run.step("flare.scenario", "scenarios", "no matching scenario", **facts)
            return None
        run.step("flare.scenario", f"scenarios.{scenario}", scenario, **facts)
        if classify_only:
            return scenario

        if scenario == "flare_above_10mg":
            self._r1(f, run, sparing_now)
        elif scenario == "flare_below_10mg":
            self._r2(f, run, sparing_now)
        elif scenario == "flare_at_10mg_boundary":
            self._warn(run, "prednisone_at_boundary", dose=fmt(pred or Decimal(0)))
            self._r2(f, run, sparing_now)
            self._r1(f, run, sparing_now)
        elif scenario == "flare_off_prednisone_on_sparing_agent":
            self._r3(f, run, sparing_now)
        else:
            self._r4(f, run)
        self._finish_flare(run)
        return scenario

    def _finish_flare(self, run: _Run) -> None:
        # Every flare option carries the reminder that full withdrawal usually fails.
        if not run.recs:
            return
        run.step(
            "flare.maintenance",
            "cautions.withdrawal_often_fails",
            "maintenance therapy expected",
            options=len(run.recs),
        )

    def _available_sparing(self, f: _Facts) -> list[str]:
        return [a for a in SPARING if a not in f.failed]

    def _r1(self, f: _Facts, run: _Run, sparing_now: list[str]) -> None:
        avail = self._available_sparing(f)
        if not sparing_now and avail:
            self._add(
                run,
                "r1_add_sparing_agent",
                1,
                f,
                step="R1",
                only_agents=frozenset((*avail, "prednisone")),
            )
            outcome = "add " + " or ".join(avail) + ", or manage as resistant"
        elif sparing_now:
            outcome = "sparing agent already in use: manage as resistant"
        else:
            self._warn(run, "both_sparing_failed")
            outcome = "both sparing agents failed: manage as resistant"
        run.step(
            "flare.r1",
            "scenarios.flare_above_10mg",
            outcome,
            sparing_agents_in_use=sparing_now,
            sparing_agents_failed=sorted(set(SPARING) & f.failed),
        )
        self._add(run, "r1_manage_as_resistant", 1, f, step="R1")
        self._check_alternative_diagnoses(f.state, run)
        self._ladder(f, run, 2, frozenset())

    def _r2(self, f: _Facts, run: _Run, sparing_now: list[str]) -> None:
        self._add(run, "r2_raise_prednisone", 1, f, step="R2")
        for agent in sparing_now:
            rec_id = f"r2_raise_{agent}"
            rule = self.kb.dose_rules[f"{agent}_raise_to_max"]
            maximum = self.kb.maximum(rule.maximum or "")
            current = f.current[agent]
            if current is None:
                self._warn(run, "sparing_dose_unknown", agent=self.kb.agent(agent).display)
                self._add(run, rec_id, 1, f, step="R2")
                outcome = "current dose unknown: raise offered, maximum shown"
            elif current < maximum.amount:
                self._add(run, rec_id, 1, f, step="R2")
                outcome = f"below maximum ({fmt(current)} < {fmt(maximum.amount)}): raise offered"
            else:
                if current > maximum.amount:
                    self._warn_max(run, "current_above_maximum", maximum, current=fmt(current))
                outcome = f"already at or above maximum {fmt(maximum.amount)}: no raise"
            run.step(
                f"flare.r2.{agent}",
                f"maxima.{maximum.id}",
                outcome,
                current=fmt(current) if current is not None else None,
                maximum=fmt(maximum.amount),
            )
        if not sparing_now:
            run.step(
                "flare.r2.sparing",
                "scenarios.flare_below_10mg",
                "no azathioprine or methotrexate in use: only the prednisone option applies",
                sparing_agents_in_use=[],
            )

    def _r3(self, f: _Facts, run: _Run, sparing_now: list[str]) -> None:
        self._add(run, "r3_restart_prednisone", 1, f, step="R3")
        both_failed = all(a in f.failed for a in SPARING)
        if both_failed:
            self._warn(run, "both_sparing_failed")
            self._add(run, "r3_manage_as_resistant", 1, f, step="R3")
            self._check_alternative_diagnoses(f.state, run)
            self._ladder(f, run, 2, frozenset())
            outcome = "both sparing agents failed: manage as resistant"
        elif len(sparing_now) == 1:
            target = "methotrexate" if sparing_now[0] == "azathioprine" else "azathioprine"
            if target in f.failed:
                outcome = f"switch not offered: {target} already failed"
            else:
                self._add(run, f"r3_switch_to_{target}", 1, f, step="R3")
                outcome = f"switch {sparing_now[0]} to {target} offered"
        else:
            outcome = "on both azathioprine and methotrexate: no switch possible"
        run.step(
            "flare.r3",
            "scenarios.flare_off_prednisone_on_sparing_agent",
            outcome,
            sparing_agents_in_use=sparing_now,
            sparing_agents_failed=sorted(set(SPARING) & f.failed),
        )

    def _r4(self, f: _Facts, run: _Run) -> None:
        self._add(run, "r4_restart_prednisone", 1, f, step="R4")
        avail = self._available_sparing(f)
        if avail:
            self._add(run, "r4_sparing_agent", 1, f, step="R4", only_agents=frozenset(avail))
            outcome = "restart prednisone and resume or start " + " or ".join(avail)
        else:
            self._warn(run, "both_sparing_failed")
            outcome = "restart prednisone; both sparing agents failed"
        run.step(
            "flare.r4",
            "scenarios.flare_off_immunosuppression",
            outcome,
            sparing_agents_failed=sorted(set(SPARING) & f.failed),
        )

    # ---- resistant disease -------------------------------------------------------------

    def _check_alternative_diagnoses(self, state: PatientState, run: _Run) -> None:
        excluded = state.alternative_diagnoses_excluded
        if excluded is None:
            self._warn(run, "alternative_diagnoses_unknown")
        elif excluded is False:
            self._warn(run, "alternative_diagnoses_not_excluded")
        run.step(
            "resistant.alternative_diagnoses",
            "warnings.alternative_diagnoses_unknown",
            "confirmed" if excluded else "flagged",
            alternative_diagnoses_excluded=excluded,
        )

    def _ladder(self, f: _Facts, run: _Run, first_rank: int, excluded: frozenset[str]) -> None:
        rank = first_rank
        steps = (
            self._ladder_pm
            if f.state.diagnosis.strip().lower() == "polymyositis"
            else (self._ladder_dm)
        )
        tnf_index: int | None = None
        emitted_other = 0
        failed = f.failed
        for number, step_key, label, entries, ids in steps:
            added = 0
            for rec_id, all_agents, keep_failed, not_suggested, alkylating in entries:
                agents = all_agents - excluded if excluded else all_agents
                if not keep_failed and failed:
                    agents = agents - failed
                if all_agents and not agents:
                    run.step(
                        f"ladder.step{number}.{rec_id}",
                        step_key,
                        "skipped: every agent already failed or offered above",
                        failed=sorted(all_agents & failed),
                    )
                    continue
                if not_suggested:
                    tnf_index = len(run.recs)
                else:
                    emitted_other += 1
                if alkylating:
                    n_failed = len(failed & self._second_line)
                    need = self.kb.thresholds.alkylating_min_failed_second_line
                    run.step(
                        "ladder.alkylating_condition",
                        "thresholds.alkylating_min_failed_second_line",
                        "condition met" if n_failed >= need else "not yet met: keep in reserve",
                        failed_second_line=n_failed,
                        needed=need,
                    )
                self._add(
                    run,
                    rec_id,
                    rank,
                    f,
                    step=label,
                    only_agents=None
                    if agents is all_agents or agents == all_agents
                    else frozenset(agents),
                )
                added += 1
            if added:
                rank += 1
            else:
                run.step(f"ladder.step{number}", step_key, "step dropped", recommendations=ids)
        if tnf_index is not None and emitted_other == 0:
            # The source's advice against TNF inhibitors lifts once every other option failed.
            old = run.recs[tnf_index]
            run.recs[tnf_index] = _replace_stance(old, "reserved")
            run.step(
                "ladder.tnf_last_resort",
                "recommendations.resistant_tnf",
                "every other option failed: TNF inhibitors no longer advised against",
                other_options=0,
            )
        if emitted_other == 0 and tnf_index is None:
            self._warn(run, "all_options_failed")

    def _prepare_ladder(self, pm: bool) -> tuple[_LadderStep, ...]:
        """Precompute, per ladder step, what the ladder walk needs to know of each option."""
        out = []
        for i, step in enumerate(self.kb.ladder):
            ids = (
                step.recommendations_pm if pm and step.recommendations_pm else step.recommendations
            )
            entries = tuple(
                (
                    rid,
                    self._rec_agents[rid],
                    self.kb.recommendations[rid].offered_after_failure,
                    self.kb.recommendations[rid].stance == "not_suggested",
                    rid == "resistant_alkylating",
                )
                for rid in ids
            )
            out.append((step.step, f"ladder[{i}]", f"ladder {step.step}", entries, list(ids)))
        return tuple(out)

    # ---- building recommendations and doses --------------------------------------------

    def _add(
        self,
        run: _Run,
        rec_id: str,
        rank: int,
        f: _Facts,
        *,
        step: str,
        only_agents: frozenset[str] | None = None,
        stance: Literal["recommended", "alternative", "reserved", "not_suggested"] | None = None,
    ) -> None:
        st = self._static[rec_id]
        run.step(f"option.{rec_id}", st.knowledge, f"offered at rank {rank}", grade=st.grade)
        if st.all_static:
            # Nothing here depends on the patient beyond these keys, so build each variant once.
            key = (rec_id, rank, stance, step, f.ild, only_agents)
            hit = self._built.get(key)
            if hit is None:
                hit = self._build(st, rec_id, rank, stance, step, f, only_agents, run)
                if len(self._built) < 4096:
                    self._built[key] = hit
            run.recs.append(hit)
            return
        run.recs.append(self._build(st, rec_id, rank, stance, step, f, only_agents, run))

    def _build(
        self,
        st: _Static,
        rec_id: str,
        rank: int,
        stance: Literal["recommended", "alternative", "reserved", "not_suggested"] | None,
        step: str,
        f: _Facts,
        only_agents: frozenset[str] | None,
        run: _Run,
    ) -> Recommendation:
        """Assemble one recommendation, computing the agent options that depend on the patient."""
        agents = tuple(
            opt if opt is not None else self._agent_option(run, f, rec_id, i)
            for i, (agent, opt) in enumerate(st.options)
            if only_agents is None or agent in only_agents
        )
        details = st.details_ild if f.ild else st.details
        return Recommendation(
            id=rec_id,
            rank=rank,
            stance=stance or st.stance,
            grade=st.grade,
            grade_meaning=st.grade_meaning,
            agents=agents,
            text=st.text,
            cautions=st.cautions_ild if f.ild else st.cautions,
            sources=st.sources,
            caution_details=details,
            step=step,
        )

    def _agent_option(self, run: _Run, f: _Facts, rec_id: str, index: int) -> AgentOption:
        agent, rxnorm, display, plans, maximum = self._option_plans[rec_id][index]
        regimens = []
        primary = None
        for rule_id, static, max_ref in plans:
            reg = static or self._regimen(run, f, rule_id, max_ref)
            if primary is None:
                primary = reg.dose
            regimens.append(reg)
        return AgentOption(agent, rxnorm, display, primary, tuple(regimens), maximum)

    def _regimen(self, run: _Run, f: _Facts, rule_id: str, max_ref: str | None) -> Regimen:
        rule = self.kb.dose_rules[rule_id]
        dose, reason = self._dose(run, f, rule_id, rule)
        if dose is not None and max_ref is not None:
            dose = self._clamp(run, dose, self._maxima[max_ref], rule.agent)
        return Regimen(rule_id, rule.note, dose, reason, self._rule_sources[rule_id])

    def _plan_options(self, tpl: RecommendationTemplate) -> list[_OptionPlan]:
        """Precompute, per agent of a template, its identity and each regimen's plan."""
        plans: list[_OptionPlan] = []
        for step in tpl.agents:
            info = self._agents[step.agent]
            regs = tuple(
                (rid, self._static_regimens.get(rid), self.kb.dose_rules[rid].maximum or step.max)
                for rid in step.regimens
            )
            maximum = self._max_words.get(step.max) if step.max else None
            plans.append((step.agent, info.rxnorm, info.display, regs, maximum))
        return plans

    def _static_dose(self, rule: DoseRule) -> Dose:
        """Return the dose of a rule that does not depend on the patient."""
        per = f"{rule.unit}/{rule.period}"
        low, high = rule.low or Decimal(0), rule.high or Decimal(0)
        if rule.kind == "fixed":
            span = fmt(low) if low == high else f"{fmt(low)} to {fmt(high)}"
            return Dose(clean(low), clean(high), rule.unit, rule.period, f"{span} {per} (fixed)")
        if rule.kind == "at_least":
            basis = f"at least {fmt(low)} {per} to start"
            return Dose(clean(low), clean(high), rule.unit, rule.period, basis, "at_least")
        m = self._maxima[rule.maximum or ""]
        basis = f"up to {fmt(m.amount)} {m.unit}/{m.period} (the source's stated maximum)"
        return Dose(clean(m.amount), clean(m.amount), m.unit, m.period, basis, "up_to")

    def _dose(
        self, run: _Run, f: _Facts, rule_id: str, rule: DoseRule
    ) -> tuple[Dose | None, str | None]:
        per, low, high = self._rule_consts[rule_id]
        if rule.kind == "up_to_max":
            return self._dose_up_to(f, rule)
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
            basis = f"{self._rate[rule_id]} {rule.unit}/m2 x {f.bsa_words} = {result} {per}"
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
                f"{self._rate[rule_id]} {rule.unit}/kg/{rule.period} x {f.weight_words}"
                f" = {result} {per}"
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
        if rule.agent == "prednisone" and hi > self._pred_warn:
            self._warn(run, "prednisone_above_75", dose=fmt(hi))
        return Dose(lo, hi, rule.unit, rule.period, basis), None

    def _dose_up_to(self, f: _Facts, rule: DoseRule) -> tuple[Dose | None, str | None]:
        m = self._maxima[rule.maximum or ""]
        per = f"{m.unit}/{m.period}"
        current = f.current.get(rule.agent)
        if current is None:
            return None, f"current dose unknown; the source's maximum is {fmt(m.amount)} {per}"
        basis = (
            f"from the current {fmt(current)} {per} up to the stated maximum {fmt(m.amount)} {per}"
        )
        return Dose(clean(current), clean(m.amount), m.unit, m.period, basis), None

    def _clamp(self, run: _Run, dose: Dose, m: Maximum, agent: str) -> Dose:
        if dose.unit != m.unit or dose.period != m.period or dose.high <= m.amount:
            return dose
        self._warn_max(run, "dose_clamped", m, computed=fmt(dose.high))
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

    # ---- warnings ----------------------------------------------------------------------

    def _warn(self, run: _Run, code: str, **values: str) -> None:
        if code in run.warnings:
            return
        text = self.kb.warnings[code].text.format(**values)
        run.warnings[code] = Warning(code, text, self._warn_sources[code])

    def _warn_max(self, run: _Run, code: str, m: Maximum, **values: str) -> None:
        self._warn(
            run,
            code,
            agent=self.kb.agent(m.agent).display,
            unit=m.unit,
            period=m.period,
            maximum=fmt(m.amount),
            **values,
        )

    def _missing_measure_warnings(self, run: _Run) -> None:
        if run.no_weight:
            self._warn(run, "no_weight", rules=self._rule_labels(run.no_weight))
        if run.no_height:
            self._warn(run, "no_height", rules=self._rule_labels(run.no_height))

    def _rule_labels(self, rule_ids: list[str]) -> str:
        labels = []
        for rid in dict.fromkeys(rule_ids):
            rule = self.kb.dose_rules[rid]
            per = "m2" if rule.kind == "per_m2" else "kg"
            low, high = rule.high if rule.kind == "fixed_to_per_kg" else rule.low, rule.high
            rate = fmt(low or high or Decimal(0))
            if rule.kind != "fixed_to_per_kg" and low != high:
                rate += f"-{fmt(high or Decimal(0))}"
            labels.append(f"{self.kb.agent(rule.agent).display} {rate} {rule.unit}/{per}")
        return "; ".join(labels)


def _replace_stance(rec: Recommendation, stance: Literal["reserved"]) -> Recommendation:
    return Recommendation(
        rec.id,
        rec.rank,
        stance,
        rec.grade,
        rec.grade_meaning,
        rec.agents,
        rec.text,
        rec.cautions,
        rec.sources,
        rec.caution_details,
        rec.step,
    )
