"""Resistant disease: the alternative-diagnosis check and the ranked ladder walk."""

from __future__ import annotations

import msgspec

from myoguide.domain.facts import Facts
from myoguide.domain.options import add, with_stance
from myoguide.domain.run import Run


def check_alternative_diagnoses(f: Facts, run: Run, rank: int) -> int:
    """Flag or put first the exclusion of other diagnoses; return the rank escalation starts at.

    Unknown is a warning. Recorded as not excluded, excluding them is the first step (at `rank`)
    and every escalation offered is marked as applying only after it (see `exclusion_first`).
    """
    excluded = f.state.alternative_diagnoses_excluded
    if excluded is None:
        run.warn("alternative_diagnoses_unknown")
    elif excluded is False:
        run.warn("alternative_diagnoses_not_excluded")
    run.step(
        "resistant.alternative_diagnoses",
        "warnings.alternative_diagnoses_unknown",
        "confirmed" if excluded else "flagged",
        alternative_diagnoses_excluded=excluded,
    )
    if excluded is not False:
        return rank
    rec_id = run.p.kb.wiring.exclude_alternative_diagnoses
    if any(r.id == rec_id for r in run.recs):
        return rank
    add(run, rec_id, rank, f, step="exclude first")
    run.step(
        "resistant.exclude_first",
        f"recommendations.{rec_id}",
        "other diagnoses recorded as not excluded: excluding them is the first step",
        rank=rank,
    )
    return rank + 1


def exclusion_first(run: Run, escalations: frozenset[str]) -> None:
    """Mark every escalation offered as applying once other diagnoses are excluded."""
    rec_id = run.p.kb.wiring.exclude_alternative_diagnoses
    if not any(r.id == rec_id for r in run.recs):
        return
    after = run.p.kb.recommendations[rec_id].enables
    moved = []
    for i, rec in enumerate(run.recs):
        if rec.id not in escalations:
            continue
        stance = "alternative" if rec.stance == "recommended" else rec.stance
        run.recs[i] = msgspec.structs.replace(rec, after=after, stance=stance)
        moved.append(rec.id)
    run.step(
        "resistant.after_exclusion",
        f"recommendations.{rec_id}",
        "escalations apply once other diagnoses are excluded: none is recommended now",
        recommendations=moved,
    )


def fold_under(run: Run, parents: tuple[str, ...]) -> None:
    """Fold the ladder's steps beneath the flare option that opens it (the last one offered)."""
    offered = {r.id for r in run.recs}
    parent = None
    for candidate in parents:
        if candidate in offered:
            parent = candidate
    if parent is None:
        return
    ladder = run.p.ladder_ids
    for i, rec in enumerate(run.recs):
        if rec.id in ladder:
            run.recs[i] = msgspec.structs.replace(rec, under=parent)


def left_out(f: Facts, run: Run, agents: frozenset[str] | set[str]) -> None:
    """Note, for each agent a step leaves out because it failed, why (said in one warning)."""
    if not agents:
        return  # the common case: nothing of the step failed
    for agent in sorted(agents):
        why = f.why_closed(agent)
        if why and agent not in run.left_out:
            run.left_out[agent] = why


def combination_closed(f: Facts, run: Run) -> str | None:
    """Return why the AZA+MTX combination is closed (failed together, or both at maximum)."""
    if "inadequate_response" in f.combination_outcomes:
        return "recorded as failed together"
    if "intolerance" in f.combination_outcomes:
        return "recorded as not tolerated together"
    at_max = []
    for agent, maximum in run.p.sparing_max:  # each with its first stated maximum, from load
        current = f.current.get(agent)
        if current is None or maximum is None or current < maximum.amount:
            return None
        at_max.append(agent)
    # Both taken together at their stated maxima while the disease is active.
    return "both in use at their stated maxima with active disease" if at_max else None


def walk(f: Facts, run: Run, first_rank: int, excluded: frozenset[str]) -> None:
    """Offer the ladder's steps in the source's order, skipping what already failed."""
    p = run.p
    pm = f.state.diagnosis.strip().lower() == "polymyositis"
    steps = p.ladder_pm if pm else p.ladder_dm
    excluded = excluded | run.excluded
    rank = first_rank
    tnf_index: int | None = None
    emitted_other = 0
    failed = f.failed
    closed = combination_closed(f, run)
    for plan in steps:
        added = 0
        for e in plan.entries:
            agents = e.agents - excluded if excluded else e.agents
            if e.offered_after_failure:
                # A combination stays open after its drugs failed alone, but never holds a drug
                # the patient could not tolerate, and closes once it failed as a combination.
                why = closed or ("holds a drug not tolerated" if e.agents & f.intolerant else None)
                if why is not None:
                    if closed:
                        run.warn("combination_failed", why=closed)
                    else:
                        left_out(f, run, e.agents & f.intolerant)
                    run.step(
                        f"ladder.step{plan.number}.{e.rec_id}",
                        plan.key,
                        f"skipped: the combination {why}",
                        intolerant=sorted(e.agents & f.intolerant),
                    )
                    continue
            elif failed and (gone := agents & failed):  # none failed: the set kept as it is
                left_out(f, run, gone)
                agents = agents - gone
            if e.agents and not agents:
                run.step(
                    f"ladder.step{plan.number}.{e.rec_id}",
                    plan.key,
                    "skipped: every agent responded inadequately before, was not tolerated,"
                    " or is offered above",
                    failed=sorted(e.agents & failed),
                )
                continue
            if e.not_suggested:
                tnf_index = len(run.recs)
            else:
                emitted_other += 1
            if e.alkylating:
                n_failed = len(failed & p.second_line)
                need = p.kb.thresholds.alkylating_min_failed_second_line
                run.step(
                    "ladder.alkylating_condition",
                    "thresholds.alkylating_min_failed_second_line",
                    "condition met" if n_failed >= need else "not yet met: keep in reserve",
                    failed_second_line=n_failed,
                    needed=need,
                )
            only = None if agents == e.agents else frozenset(agents)
            add(run, e.rec_id, rank, f, step=plan.label, only_agents=only)
            added += 1
        if added:
            rank += 1
        else:
            run.step(
                f"ladder.step{plan.number}",
                plan.key,
                "step dropped",
                recommendations=list(plan.ids),
            )
    if tnf_index is not None and emitted_other == 0:
        # The source's advice against TNF inhibitors lifts once every other option failed.
        run.recs[tnf_index] = with_stance(run.recs[tnf_index], "reserved")
        run.step(
            "ladder.tnf_last_resort",
            f"recommendations.{run.recs[tnf_index].id}",
            "every other option failed: TNF inhibitors no longer advised against",
            other_options=0,
        )
    if emitted_other == 0 and tnf_index is None:
        run.warn("all_options_failed")
