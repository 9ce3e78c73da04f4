"""Scope and course: who is in scope; recurrent, resistant or controlled disease."""

from __future__ import annotations

from myoguide.domain.facts import Facts
from myoguide.domain.flares import flare_scenario
from myoguide.domain.ladder import check_alternative_diagnoses, walk
from myoguide.domain.options import add
from myoguide.domain.result import Course
from myoguide.domain.run import Run
from myoguide.domain.units import fmt

IN_SCOPE = frozenset({"dermatomyositis", "polymyositis"})
IBM_NAMES = frozenset({"inclusion_body_myositis", "inclusion body myositis", "ibm", "sibm"})


def evaluate(f: Facts, run: Run) -> tuple[Course, str | None]:
    """Decide scope, course and scenario, offering the options of the rules that apply."""
    p = run.p
    state = f.state
    if state.age_years < p.adult_age:
        run.warn("out_of_scope_child", age=fmt(state.age))
        run.step(
            "scope.adult",
            "thresholds.adult_age_years",
            "out of scope: under 18",
            age_years=state.age_years,
        )
        return "out_of_scope", None
    run.step(
        "scope.adult", "thresholds.adult_age_years", "adult: in scope", age_years=state.age_years
    )
    diagnosis = state.diagnosis.strip().lower()
    if diagnosis not in IN_SCOPE:
        code = "out_of_scope_ibm" if diagnosis in IBM_NAMES else "out_of_scope_diagnosis"
        run.warn(code, diagnosis=state.diagnosis)
        run.step(
            "scope.diagnosis",
            f"warnings.{code}",
            "out of scope: diagnosis",
            diagnosis=state.diagnosis,
        )
        return "out_of_scope", None
    run.step("scope.diagnosis", "documents", f"in scope: {diagnosis}", diagnosis=diagnosis)

    sparing = p.sparing
    resistant_history = "prednisone" in f.inadequate and any(a in f.inadequate for a in sparing)
    ild_refractory = state.ild is not None and state.ild.present and state.ild.refractory
    control, flare = state.disease_control_achieved, state.flare
    if flare is True and control is False:
        run.warn("flare_without_control")
    recurrent = flare is True and control is not False
    run.step(
        "course.classify",
        "scenarios",
        "recurrent" if recurrent else ("resistant" if resistant_history else "not recurrent"),
        disease_control_achieved=control,
        flare=flare,
        inadequate_response=sorted(f.inadequate),
        resistant_history=resistant_history,
        ild_refractory=ild_refractory,
    )

    skin = bool(state.skin_predominant)
    if skin and diagnosis != "dermatomyositis":
        run.warn("skin_predominant_not_dm")
        skin = False

    course: Course
    scenario: str | None
    if ild_refractory:
        course, scenario = "resistant", "ild_refractory"
    elif recurrent:
        course, scenario = "recurrent", None
    elif resistant_history:
        course, scenario = "resistant", "resistant"
    elif control is True:
        course, scenario = "controlled", None
    else:
        run.warn("out_of_scope_initial_therapy")
        run.step(
            "scope.initial_therapy",
            "warnings.out_of_scope_initial_therapy",
            "out of scope: initial therapy",
            disease_control_achieved=control,
        )
        return "out_of_scope", None

    wiring = p.kb.wiring
    if skin:
        add(run, wiring.refractory_rash, 1, f, step="refractory_rash")
        run.step(
            "rash.pointer",
            f"recommendations.{wiring.refractory_rash}",
            "rash is the refractory problem: point to cutaneous DM management, "
            "muscle options not escalated",
            skin_predominant=True,
        )
        if course == "recurrent":
            scenario = flare_scenario(f, run, classify_only=True)
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
        return course, flare_scenario(f, run, classify_only=False)

    check_alternative_diagnoses(state, run)
    rank = 1
    excluded: frozenset[str] = frozenset()
    if ild_refractory:
        if not any(a in f.current or a in f.failed for a in sparing):
            run.warn("ild_without_sparing_trial")
        ild_rec = wiring.ild_refractory
        if "tacrolimus" in f.failed:
            run.step(
                "ild.tacrolimus_first",
                f"recommendations.{ild_rec}",
                "tacrolimus already failed: not offered again; general ladder follows",
                ild_refractory=True,
                tacrolimus_failed=True,
            )
        else:
            add(run, ild_rec, 1, f, step="ild")
            run.step(
                "ild.tacrolimus_first",
                f"recommendations.{ild_rec}",
                "tacrolimus 0.2 mg/kg/day leads, ahead of the general ladder",
                ild_present=True,
                ild_refractory=True,
            )
            rank, excluded = 2, frozenset({"tacrolimus"})
    walk(f, run, rank, excluded)
    return course, scenario
