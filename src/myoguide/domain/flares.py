"""Recurrent disease: which of the four flare scenarios applies, and the options of each."""

from __future__ import annotations

from decimal import Decimal

from myoguide.domain.facts import Facts
from myoguide.domain.ladder import check_alternative_diagnoses, walk
from myoguide.domain.options import add
from myoguide.domain.result import FactValue
from myoguide.domain.run import Run
from myoguide.domain.units import fmt


def flare_scenario(f: Facts, run: Run, *, classify_only: bool) -> str | None:
    """Choose the flare scenario from the prednisone dose and AZA/MTX use; offer its options."""
    p = run.p
    sparing = p.sparing
    pred_listed = "prednisone" in f.current
    pred = f.current.get("prednisone")
    if pred_listed and pred is None:
        run.warn("prednisone_dose_unknown")
        run.step(
            "flare.prednisone_dose",
            "warnings.prednisone_dose_unknown",
            "no scenario: prednisone dose missing",
            prednisone_listed=True,
        )
        return None
    sparing_now = [a for a in sparing if a in f.current]
    others_now = sorted(a for a in f.current if a != "prednisone" and a not in sparing)
    facts: dict[str, FactValue] = {
        "prednisone_mg_per_day": fmt(pred) if pred is not None else None,
        "sparing_agents_in_use": sparing_now,
        "other_immunosuppressants_in_use": others_now,
    }
    if pred is not None and pred > 0:
        if pred > p.boundary:
            scenario = "flare_above_10mg"
        elif pred < p.boundary:
            scenario = "flare_below_10mg"
        else:
            scenario = "flare_at_10mg_boundary"
    elif sparing_now:
        scenario = "flare_off_prednisone_on_sparing_agent"
    elif not others_now:
        scenario = "flare_off_immunosuppression"
    else:
        run.warn(
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
        _r1(f, run, sparing_now)
    elif scenario == "flare_below_10mg":
        _r2(f, run, sparing_now)
    elif scenario == "flare_at_10mg_boundary":
        run.warn("prednisone_at_boundary", dose=fmt(pred or Decimal(0)))
        _r2(f, run, sparing_now)
        _r1(f, run, sparing_now)
    elif scenario == "flare_off_prednisone_on_sparing_agent":
        _r3(f, run, sparing_now)
    else:
        _r4(f, run)
    _finish_flare(run)
    return scenario


def _finish_flare(run: Run) -> None:
    # Every flare option carries the reminder that full withdrawal usually fails.
    if not run.recs:
        return
    run.step(
        "flare.maintenance",
        "cautions.withdrawal_often_fails",
        "maintenance therapy expected",
        options=len(run.recs),
    )


def _available_sparing(run: Run, f: Facts) -> list[str]:
    return [a for a in run.p.sparing if a not in f.failed]


def _r1(f: Facts, run: Run, sparing_now: list[str]) -> None:
    w = run.p.kb.wiring.flare_above_10mg
    avail = _available_sparing(run, f)
    if not sparing_now and avail:
        add(
            run,
            w.add_sparing_agent,
            1,
            f,
            step="R1",
            only_agents=frozenset((*avail, "prednisone")),
        )
        outcome = "add " + " or ".join(avail) + ", or manage as resistant"
    elif sparing_now:
        outcome = "sparing agent already in use: manage as resistant"
    else:
        run.warn("both_sparing_failed")
        outcome = "both sparing agents failed: manage as resistant"
    run.step(
        "flare.r1",
        "scenarios.flare_above_10mg",
        outcome,
        sparing_agents_in_use=sparing_now,
        sparing_agents_failed=sorted(set(run.p.sparing) & f.failed),
    )
    add(run, w.manage_as_resistant, 1, f, step="R1")
    check_alternative_diagnoses(f.state, run)
    walk(f, run, 2, frozenset())


def _r2(f: Facts, run: Run, sparing_now: list[str]) -> None:
    kb = run.p.kb
    w = kb.wiring.flare_below_10mg
    add(run, w.raise_prednisone, 1, f, step="R2")
    for agent in sparing_now:
        rec_id = w.raise_sparing_agent[agent]
        maximum = kb.maximum(kb.recommendations[rec_id].agents[0].max or "")
        current = f.current[agent]
        if current is None:
            run.warn("sparing_dose_unknown", agent=kb.agent(agent).display)
            add(run, rec_id, 1, f, step="R2")
            outcome = "current dose unknown: raise offered, maximum shown"
        elif current < maximum.amount:
            add(run, rec_id, 1, f, step="R2")
            outcome = f"below maximum ({fmt(current)} < {fmt(maximum.amount)}): raise offered"
        else:
            if current > maximum.amount:
                run.warn_max("current_above_maximum", maximum, current=fmt(current))
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


def _r3(f: Facts, run: Run, sparing_now: list[str]) -> None:
    sparing = run.p.sparing
    w = run.p.kb.wiring.flare_off_prednisone_on_sparing_agent
    add(run, w.restart_prednisone, 1, f, step="R3")
    both_failed = all(a in f.failed for a in sparing)
    if both_failed:
        run.warn("both_sparing_failed")
        add(run, w.manage_as_resistant, 1, f, step="R3")
        check_alternative_diagnoses(f.state, run)
        walk(f, run, 2, frozenset())
        outcome = "both sparing agents failed: manage as resistant"
    elif len(sparing_now) == 1:
        target = next(a for a in sparing if a != sparing_now[0])
        if target in f.failed:
            outcome = f"switch not offered: {target} already failed"
        else:
            add(run, w.switch_to[target], 1, f, step="R3")
            outcome = f"switch {sparing_now[0]} to {target} offered"
    else:
        outcome = "on both azathioprine and methotrexate: no switch possible"
    run.step(
        "flare.r3",
        "scenarios.flare_off_prednisone_on_sparing_agent",
        outcome,
        sparing_agents_in_use=sparing_now,
        sparing_agents_failed=sorted(set(sparing) & f.failed),
    )


def _r4(f: Facts, run: Run) -> None:
    w = run.p.kb.wiring.flare_off_immunosuppression
    add(run, w.restart_prednisone, 1, f, step="R4")
    avail = _available_sparing(run, f)
    if avail:
        add(run, w.sparing_agent, 1, f, step="R4", only_agents=frozenset(avail))
        outcome = "restart prednisone and resume or start " + " or ".join(avail)
    else:
        run.warn("both_sparing_failed")
        outcome = "restart prednisone; both sparing agents failed"
    run.step(
        "flare.r4",
        "scenarios.flare_off_immunosuppression",
        outcome,
        sparing_agents_failed=sorted(set(run.p.sparing) & f.failed),
    )
