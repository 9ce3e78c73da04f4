"""Scope and course: who is in scope; recurrent, resistant or controlled disease."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from myoguide.domain.facts import Facts
from myoguide.domain.flares import choose_scenario, offer
from myoguide.domain.ladder import check_alternative_diagnoses, exclusion_first, fold_under, walk
from myoguide.domain.options import add, course_option
from myoguide.domain.result import AgentOption, Course, FactValue
from myoguide.domain.run import Run
from myoguide.domain.units import fmt

IN_SCOPE = frozenset({"dermatomyositis", "polymyositis"})
IBM_NAMES = frozenset({"inclusion_body_myositis", "inclusion body myositis", "ibm", "sibm"})


def evaluate(f: Facts, run: Run) -> tuple[Course, str | None, str | None]:
    """Decide scope, course and scenario (and the flare scenario under a leading ILD rule)."""
    diagnosis = _in_scope(f, run)
    if diagnosis is None:
        return "out_of_scope", None, None
    p = run.p
    state = f.state

    sparing = p.sparing
    sparing_inadequate = not f.inadequate.isdisjoint(sparing) or (
        "inadequate_response" in f.combination_outcomes
    )
    # AZA and MTX are given with glucocorticoids: their inadequate response is resistance, with
    # prednisone in use or in the history (any outcome); not also listed as failed (contract).
    resistant_history = sparing_inadequate
    ild_refractory = state.ild is not None and state.ild.present and state.ild.refractory
    control, flare = state.disease_control_achieved, state.flare
    skin = bool(state.skin_predominant)
    if skin and diagnosis != "dermatomyositis":
        run.warn("skin_predominant_not_dm")
        skin = False
    glucocorticoid = f.glucocorticoid_recorded()  # read once: in the trace and the warning
    facts = {
        "disease_control_achieved": control,
        "flare": flare,
        "inadequate_response": sorted(f.inadequate),
        "resistant_history": resistant_history,
        "glucocorticoid_recorded": glucocorticoid,
        "ild_refractory": ild_refractory,
    }

    # Control now wins over history: a patient quiet now is not escalated, whatever came before.
    if control is True and flare is not True:
        _controlled_now(f, run, facts, ild_refractory=ild_refractory, skin=skin)
        return "controlled", None, None

    if flare is True and control is False:
        run.warn("flare_without_control")
    recurrent = flare is True and control is not False
    if recurrent:
        if control is None:
            # A flare implies control before it: said, with what the answer assumed.
            run.warn("flare_control_unknown")
        run.step("course.classify", "scenarios", "recurrent", **facts)
        return _finish(run, _recurrent(f, run, ild_refractory, skin))
    if resistant_history or ild_refractory:
        if resistant_history and not glucocorticoid:
            run.warn("no_glucocorticoid_recorded")
        run.step("course.classify", "scenarios", "resistant", **facts)
        return _finish(run, _resistant(f, run, ild_refractory, skin))
    if control is False:
        run.warn("out_of_scope_initial_therapy")
        run.step(
            "scope.initial_therapy",
            "warnings.out_of_scope_initial_therapy",
            "out of scope: initial therapy",
            **facts,
        )
        return "out_of_scope", None, None
    # Neither control nor flare is recorded, and no resistant history: said, not guessed.
    run.warn("status_unknown")
    run.step(
        "course.classify",
        "warnings.status_unknown",
        "control and flare status unknown: no course chosen",
        **facts,
    )
    return "out_of_scope", None, None


def _controlled_now(
    f: Facts, run: Run, facts: Mapping[str, FactValue], *, ild_refractory: bool, skin: bool
) -> None:
    """Answer disease under control: nothing chosen while the flare status is unknown."""
    if f.state.flare is None:
        run.warn("flare_status_unknown")
        run.step(
            "course.classify",
            "warnings.flare_status_unknown",
            "control reached, flare status unknown: nothing chosen",
            **facts,
        )
        return
    if ild_refractory:
        run.warn("ild_refractory_while_controlled")
    run.step(
        "course.classify",
        f"recommendations.{run.p.kb.wiring.controlled}",
        "controlled now: nothing to escalate",
        **facts,
    )
    _controlled(f, run)
    if skin:
        _rash_pointer(f, run)


def _in_scope(f: Facts, run: Run) -> str | None:
    """Return the diagnosis of an adult with DM or PM, or None after saying why not."""
    p = run.p
    state = f.state
    if state.deceased:
        # The contract: a deceased patient is out of scope, with no dose computed.
        run.warn("out_of_scope_deceased")
        run.step("scope.alive", "warnings.out_of_scope_deceased", "out of scope: deceased")
        return None
    if state.age_years < p.adult_age:
        run.warn("out_of_scope_child", age=fmt(state.age))
        run.step(
            "scope.adult",
            "thresholds.adult_age_years",
            "out of scope: under 18",
            age_years=state.age_years,
        )
        return None
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
        return None
    run.step("scope.diagnosis", "documents", f"in scope: {diagnosis}", diagnosis=diagnosis)
    return diagnosis


def _finish(
    run: Run, answer: tuple[Course, str | None, str | None]
) -> tuple[Course, str | None, str | None]:
    """Fold the ladder beneath a flare's "manage as resistant", and put exclusion first."""
    # Both read at load: the flare options in order, and the escalations held back.
    fold_under(run, run.p.flare_parents)
    exclusion_first(run, run.p.escalations)
    return answer


def _controlled(f: Facts, run: Run) -> None:
    """Offer keeping what holds control: the agents in use, continued."""
    add(run, run.p.kb.wiring.controlled, 1, f, step="controlled")
    rec = run.recs[-1]
    kb = run.p.kb
    if f.state.unresolved_medications:
        run.warn("unresolved_medications_ladder", items="; ".join(f.state.unresolved_medications))
    agents = tuple(
        AgentOption(
            a,
            kb.agent(a).rxnorm,
            kb.agent(a).display,
            action="continue",
            in_use=True,
            notes=("In use now: continue it; the slower-taper caution below applies.",),
            checks=run.rx.checks.get(a, ()),
        )
        for a in f.current
        if f.in_use(a)
    )
    # Infusion or course agents say when the last course was, never "continue".
    agents = tuple(course_option(run, f, a) for a in agents)
    run.recs[-1] = msgspec.structs.replace(rec, agents=agents)


def _rash_pointer(f: Facts, run: Run) -> None:
    wiring = run.p.kb.wiring
    add(run, wiring.refractory_rash, 1, f, step="refractory_rash")
    run.step(
        "rash.pointer",
        f"recommendations.{wiring.refractory_rash}",
        "rash is the refractory problem: point to cutaneous DM management",
        skin_predominant=True,
    )


def _ild_leads(f: Facts, run: Run) -> bool:
    """Offer tacrolimus for refractory ILD first, unless it failed; return whether it leads."""
    ild_rec = run.p.kb.wiring.ild_refractory
    if not any(a in f.current or a in f.failed for a in run.p.sparing):
        run.warn("ild_without_sparing_trial")
    # The ILD rule's agents come from its recommendation (tacrolimus in the shipped knowledge).
    agents = frozenset(a.agent for a in run.p.kb.recommendations[ild_rec].agents)
    if agents & f.failed:
        run.step(
            "ild.tacrolimus_first",
            f"recommendations.{ild_rec}",
            "the ILD agent already failed: not offered again; the other options follow",
            ild_refractory=True,
            failed=sorted(agents & f.failed),
        )
        return False
    add(run, ild_rec, 1, f, step="ild")
    run.step(
        "ild.tacrolimus_first",
        f"recommendations.{ild_rec}",
        "tacrolimus 0.2 mg/kg/day leads, ahead of the other options",
        ild_present=True,
        ild_refractory=True,
    )
    run.rank_offset += 1
    run.excluded = agents
    return True


def _recurrent(
    f: Facts, run: Run, ild_refractory: bool, skin: bool
) -> tuple[Course, str | None, str | None]:
    """Offer a flare's options, after refractory ILD's tacrolimus and beside the rash pointer."""
    scenario = choose_scenario(f, run)
    leads = ild_refractory and _ild_leads(f, run)
    if skin:
        _rash_pointer(f, run)
    if scenario is not None:
        offer(scenario, f, run)
    if leads:
        return "recurrent", "ild_refractory", scenario
    return "recurrent", scenario, None


def _resistant(
    f: Facts, run: Run, ild_refractory: bool, skin: bool
) -> tuple[Course, str | None, str | None]:
    """Resistant disease: the rash pointer, or refractory ILD's tacrolimus then the ladder."""
    if f.state.unresolved_medications:
        run.warn("unresolved_medications_ladder", items="; ".join(f.state.unresolved_medications))
    if skin:
        _rash_pointer(f, run)
        return "resistant", "resistant", None
    # Excluding other diagnoses, when due, takes rank 1 and everything else moves down.
    run.rank_offset = check_alternative_diagnoses(f, run, 1) - 1
    leads = ild_refractory and _ild_leads(f, run)
    walk(f, run, 1, frozenset())
    return "resistant", "ild_refractory" if leads else "resistant", None
