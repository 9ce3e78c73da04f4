"""Cross-reference checks of the encoded guideline, run once at load after the shape is valid."""

from __future__ import annotations

from myoguide.knowledge.model import Knowledge, SourceRef


def problems(k: Knowledge) -> list[str]:
    """Return every broken cross-reference or rule in the knowledge, as 'key: message'."""
    errors: list[str] = []
    numbers = [r.number for r in k.references]
    if numbers != list(range(1, len(numbers) + 1)):
        errors.append("references: must be numbered 1..N in order")
    agent_ids = {a.id for a in k.agents}
    max_ids = {m.id for m in k.maxima}
    citation_ids = {c.id for c in k.citations}
    n_refs = len(k.references)

    def check_sources(where: str, sources: tuple[SourceRef, ...]) -> None:
        for i, s in enumerate(sources):
            errors.extend(
                f"{where}.sources[{i}]: reference {n} is not in the list (1..{n_refs})"
                for n in s.references
                if n > n_refs
            )
            errors.extend(
                f"{where}.sources[{i}]: unknown citation '{c}'"
                for c in s.citations
                if c not in citation_ids
            )

    for m in k.maxima:
        if m.agent not in agent_ids:
            errors.append(f"maxima.{m.id}: unknown agent '{m.agent}'")
        check_sources(f"maxima.{m.id}", m.sources)
    for rid, rule in k.dose_rules.items():
        where = f"dose_rules.{rid}"
        if rule.agent not in agent_ids:
            errors.append(f"{where}: unknown agent '{rule.agent}'")
        if rule.kind in ("up_to_max", "up_to"):
            if rule.maximum not in max_ids:
                errors.append(f"{where}.maximum: a '{rule.kind}' rule needs a known maximum")
        elif rule.kind == "unstated":
            pass
        elif rule.low is None or rule.high is None:
            errors.append(f"{where}: a '{rule.kind}' rule needs 'low' and 'high'")
        elif rule.kind != "fixed_to_per_kg" and rule.low > rule.high:
            errors.append(f"{where}: 'low' is above 'high'")
        check_sources(where, rule.sources)
    for cid, caution in k.cautions.items():
        check_sources(f"cautions.{cid}", caution.sources)
    for sid, scen in k.scenarios.items():
        check_sources(f"scenarios.{sid}", scen.sources)
    for rid, rec in k.recommendations.items():
        where = f"recommendations.{rid}"
        check_sources(where, rec.sources)
        errors.extend(
            f"{where}: unknown caution '{c}'"
            for c in (*rec.cautions, *rec.cautions_if_ild)
            if c not in k.cautions
        )
        step_agents = {a.agent for a in rec.agents}
        if rec.choose_one and (
            len(set(rec.choose_one)) < 2 or not set(rec.choose_one) <= step_agents
        ):
            errors.append(f"{where}.choose_one: needs two or more of the step's own agents")
        for a in rec.agents:
            if a.agent not in agent_ids:
                errors.append(f"{where}: unknown agent '{a.agent}'")
            if a.max is not None and a.max not in max_ids:
                errors.append(f"{where}: unknown maximum '{a.max}'")
            for reg in a.regimens:
                reg_rule = k.dose_rules.get(reg)
                if reg_rule is None:
                    errors.append(f"{where}: unknown dose rule '{reg}'")
                elif reg_rule.agent != a.agent:
                    errors.append(
                        f"{where}: dose rule '{reg}' is for '{reg_rule.agent}', not '{a.agent}'"
                    )
    for i, step in enumerate(k.ladder):
        if step.step != i + 1:
            errors.append(f"ladder[{i}].step: expected {i + 1}, found {step.step}")
        errors.extend(
            f"ladder[{i}]: unknown recommendation '{rid}'"
            for rid in (*step.recommendations, *(step.recommendations_pm or ()))
            if rid not in k.recommendations
        )
    for agent, limit in k.input_limits.doses.items():
        if agent not in agent_ids:
            errors.append(f"input_limits.doses.{agent}: unknown agent")
        check_sources(f"input_limits.doses.{agent}", limit.sources)
    for sid, notes in k.severity_notes.items():
        if sid not in k.scenarios:
            errors.append(f"severity_notes.{sid}: unknown scenario")
        check_sources(f"severity_notes.{sid}", notes.sources)
    w = k.wiring
    errors.extend(
        f"wiring.sparing_agents: unknown agent '{a}'"
        for a in w.sparing_agents
        if a not in agent_ids
    )
    for place, rid in w.all_ids().items():
        if rid not in k.recommendations:
            errors.append(f"wiring.{place}: unknown recommendation '{rid}'")
    for agent, ids in w.order_cautions.items():
        if agent not in agent_ids:
            errors.append(f"wiring.order_cautions.{agent}: unknown agent")
        errors.extend(
            f"wiring.order_cautions.{agent}: unknown caution '{c}'"
            for c in ids
            if c not in k.cautions
        )
    for place, table in (
        ("flare_below_10mg.raise_sparing_agent", w.flare_below_10mg.raise_sparing_agent),
        (
            "flare_off_prednisone_on_sparing_agent.switch_to",
            w.flare_off_prednisone_on_sparing_agent.switch_to,
        ),
    ):
        errors.extend(
            f"wiring.{place}: '{a}' is not a sparing agent"
            for a in table
            if a not in w.sparing_agents
        )
    for item in k.literature_only:
        check_sources(f"literature_only.{item.id}", item.sources)
    for wid, warning in k.warnings.items():
        check_sources(f"warnings.{wid}", warning.sources)
        policy = warning.policy
        if policy.card and policy.level == "note":
            errors.append(f"warnings.{wid}.policy: a note cannot earn a card of its own")
        if policy.scope == "not_myositis" and policy.level != "stop":
            errors.append(f"warnings.{wid}.policy: a not_myositis warning must be level stop")
    for agent, rx in k.prescribing.items():
        if agent not in agent_ids:
            errors.append(f"prescribing.{agent}: unknown agent")
        check_ids = [c.id for c in rx.checks]
        errors.extend(
            f"prescribing.{agent}.checks: '{c}' is listed twice"
            for c in sorted({i for i in check_ids if check_ids.count(i) > 1})
        )
        if not rx.checks and not rx.note:
            errors.append(f"prescribing.{agent}: no checks and no note saying why")
        if rx.route is not None and rx.route not in k.routes:
            errors.append(f"prescribing.{agent}.route: '{rx.route}' is not in routes")
        if rx.route is not None and not rx.route_basis:
            errors.append(f"prescribing.{agent}: a route with no route_basis saying why")
    # Every agent with a dose can be drafted as an order, and an order needs its route.
    for agent in sorted({r.agent for r in k.dose_rules.values()}):
        given = k.prescribing.get(agent)
        if given is None or given.route is None:
            errors.append(f"prescribing.{agent}.route: an agent with a dose rule needs a route")
    return errors
