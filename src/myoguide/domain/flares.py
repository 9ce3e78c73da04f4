"""Recurrent disease: which of the four flare scenarios applies, and the options of each."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from myoguide.domain.facts import Facts
from myoguide.domain.ladder import check_alternative_diagnoses, left_out, walk
from myoguide.domain.options import add
from myoguide.domain.result import FactValue
from myoguide.domain.run import Run
from myoguide.domain.units import fmt


def choose_scenario(f: Facts, run: Run) -> str | None:
    """Return the scenario the prednisone dose and AZA/MTX use select; None if unknowable."""
    p = run.p
    sparing = p.sparing
    if f.state.unresolved_medications:
        run.warn("unresolved_medications", items="; ".join(f.state.unresolved_medications))
        run.step(
            "flare.unresolved_medications",
            "warnings.unresolved_medications",
            "no scenario: a medication in the record could not be identified or read",
            unresolved=list(f.state.unresolved_medications),
        )
        return None
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
    sparing_now = [a for a in sparing if f.in_use(a)]
    others_now = sorted(a for a in f.current if a != "prednisone" and a not in sparing)
    facts: dict[str, FactValue] = {
        "prednisone_mg_per_day": fmt(pred) if pred is not None else None,
        "sparing_agents_in_use": sparing_now,
        "other_immunosuppressants_in_use": others_now,
    }
    second_line = sorted(
        {a for a in f.current if a in p.second_line}
        | {
            h.agent
            for h in f.state.treatment_history
            if h.agent in p.second_line and h.outcome == "responded"
        }
    )
    if second_line:
        # The source's flare scenarios assume control on prednisone with AZA or MTX.
        run.warn(
            "flare_after_second_line_control",
            agents=", ".join(p.kb.agent(a).display for a in second_line),
        )
    if pred is not None and pred > 0:
        if pred > p.boundary:
            scenario = "flare_above_10mg"
        elif pred < p.boundary:
            scenario = "flare_below_10mg"
        else:
            scenario = "flare_at_10mg_boundary"
    elif sparing_now:
        scenario = "flare_off_prednisone_on_sparing_agent"
    else:
        scenario = "flare_off_immunosuppression"
    facts["second_line_agents"] = second_line
    run.step("flare.scenario", f"scenarios.{scenario}", scenario, **facts)
    return scenario


def offer(scenario: str, f: Facts, run: Run) -> None:
    """Offer the options of a flare scenario."""
    sparing_now = [a for a in run.p.sparing if f.in_use(a)]
    if scenario == "flare_above_10mg":
        _r1(f, run, sparing_now)
    elif scenario == "flare_below_10mg":
        _r2(f, run, sparing_now)
    elif scenario == "flare_at_10mg_boundary":
        run.warn("prednisone_at_boundary", dose=fmt(f.current.get("prednisone") or Decimal(0)))
        _r2(f, run, sparing_now)
        _r1(f, run, sparing_now)
    elif scenario == "flare_off_prednisone_on_sparing_agent":
        _r3(f, run, sparing_now)
    else:
        _r4(f, run)
    if run.recs:
        # Every flare option carries the reminder that full withdrawal usually fails.
        run.step(
            "flare.maintenance",
            "cautions.withdrawal_often_fails",
            "maintenance therapy expected",
            options=len(run.recs),
        )


def _available_sparing(run: Run, f: Facts) -> list[str]:
    """Return the sparing agents still open, saying why each closed one is left out."""
    left_out(f, run, set(run.p.sparing) & f.failed)
    return [a for a in run.p.sparing if a not in f.failed]


def _manage_as_resistant(f: Facts, run: Run, rec_id: str, rank: int, step: str) -> None:
    """Offer managing as resistant disease at a rank, after excluding other diagnoses if due."""
    rank = check_alternative_diagnoses(f, run, rank)
    add(run, rec_id, rank, f, step=step)
    walk(f, run, rank + 1, frozenset())


def _r1(f: Facts, run: Run, sparing_now: list[str]) -> None:
    w = run.p.kb.wiring.flare_above_10mg
    avail = _available_sparing(run, f)
    if not sparing_now and avail:
        add(
            run, w.add_sparing_agent, 1, f, step="R1", only_agents=frozenset((*avail, "prednisone"))
        )
        outcome = "add " + " or ".join(avail) + ", or manage as resistant"
    elif sparing_now:
        outcome = "sparing agent already in use: manage as resistant"
    else:
        run.warn("both_sparing_failed")
        outcome = "both sparing agents failed or not tolerated: manage as resistant"
    run.step(
        "flare.r1",
        "scenarios.flare_above_10mg",
        outcome,
        sparing_agents_in_use=sparing_now,
        sparing_agents_failed=sorted(set(run.p.sparing) & f.failed),
    )
    # Managing as resistant is the alternative to adding an agent (same rank) and raises
    # prednisone either way, so it stays; excluding other diagnoses, when due, comes before the
    # ladder beneath it, not before the prednisone raise.
    add(run, w.manage_as_resistant, 1, f, step="R1")
    walk(f, run, check_alternative_diagnoses(f, run, 2), frozenset())


def _r2(f: Facts, run: Run, sparing_now: list[str]) -> None:
    kb = run.p.kb
    w = kb.wiring.flare_below_10mg
    raised: list[str] = []
    for agent in sparing_now:
        rec_id = w.raise_sparing_agent[agent]
        maximum = kb.maximum(kb.recommendations[rec_id].agents[0].max or "")
        current = f.current[agent]
        if current is None:
            words = {"agent": kb.agent(agent).display}
            run.warn_keyed("sparing_dose_unknown", f"sparing_dose_unknown:{agent}", None, words)
            raised.append(rec_id)
            outcome = "current dose unknown: raise offered, maximum shown"
        elif current < maximum.amount:
            raised.append(rec_id)
            outcome = f"below maximum ({fmt(current)} < {fmt(maximum.amount)}): raise offered"
        else:
            if current > maximum.amount:
                run.warn_max("current_above_maximum", maximum, current=fmt(current))
            else:
                run.warn_max("sparing_at_maximum", maximum)
            outcome = f"already at or above maximum {fmt(maximum.amount)}: no raise"
        run.step(
            f"flare.r2.{agent}",
            f"maxima.{maximum.id}",
            outcome,
            current=fmt(current) if current is not None else None,
            maximum=fmt(maximum.amount),
        )
    # The prednisone text mentions raising a sparing agent only when there is one to raise.
    add(run, w.raise_prednisone, 1, f, step="R2", alone=not raised)
    _severity_note(run, f, "flare_below_10mg")
    for rec_id in raised:
        add(run, rec_id, 1, f, step="R2")
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
    left_out(f, run, set(sparing) & f.failed - set(sparing_now))
    first = 2 if f.state.alternative_diagnoses_excluded is False else 1
    if both_failed:
        run.warn("both_sparing_failed")
        _manage_as_resistant(f, run, w.manage_as_resistant, first, "R3")
        outcome = "both sparing agents failed or not tolerated: manage as resistant"
    elif len(sparing_now) == 1:
        current = sparing_now[0]
        target = next(a for a in sparing if a != current)
        if target in f.failed:
            # The other agent failed before and this one no longer holds control either.
            kb = run.p.kb
            run.warn(
                "r3_other_sparing_failed",
                failed=kb.agent(target).display,
                current=kb.agent(current).display,
            )
            _manage_as_resistant(f, run, w.manage_as_resistant, first, "R3")
            outcome = f"switch closed: {target} already failed; manage as resistant offered"
        else:
            add(run, w.switch_to[target], 1, f, step="R3")
            outcome = f"switch {current} to {target} offered"
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
    _severity_note(run, f, "flare_off_immunosuppression")
    avail = _available_sparing(run, f)
    if avail:
        add(run, w.sparing_agent, 1, f, step="R4", only_agents=frozenset(avail))
        outcome = "restart prednisone and resume or start " + " or ".join(avail)
    else:
        # Both closed: no sparing drug to resume or start, so manage as resistant, as R3 does.
        run.warn("both_sparing_failed")
        first = 2 if f.state.alternative_diagnoses_excluded is False else 1
        _manage_as_resistant(f, run, w.manage_as_resistant, first, "R4")
        outcome = (
            "restart prednisone; both sparing agents failed or not tolerated: manage as resistant"
        )
    run.step(
        "flare.r4",
        "scenarios.flare_off_immunosuppression",
        outcome,
        sparing_agents_failed=sorted(set(run.p.sparing) & f.failed),
    )


def _severity_note(run: Run, f: Facts, scenario: str) -> None:
    """Say where in the source's range the recorded severity places the prednisone dose."""
    severity = f.state.severity
    if severity is None or not run.recs:
        return
    notes = run.p.kb.severity_notes[scenario]
    text = {"mild": notes.mild, "moderate": notes.moderate, "severe": notes.severe}[severity]
    rec = run.recs[-1]
    agents = []
    for a in rec.agents:
        if a.agent == "prednisone":
            high = "about 1 mg/kg/day"
            if a.dose is not None and a.dose.high is not None:
                high = f"{fmt(a.dose.high)} mg/day ({high})"
            a = msgspec.structs.replace(a, notes=(*a.notes, text.format(high=high)))
        agents.append(a)
    run.recs[-1] = msgspec.structs.replace(rec, agents=tuple(agents))
    run.step(
        "flare.severity",
        f"severity_notes.{scenario}",
        f"severity {severity}",
        severity=severity,
    )
