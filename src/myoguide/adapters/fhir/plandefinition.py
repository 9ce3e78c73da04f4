"""Writes the encoded guideline as a FHIR R4 Bundle in the style of the HL7 CPG IG.

The CPG IG names and the ActivityDefinitions are in activities.py; this module writes the
PlanDefinition's actions and the Bundle.
"""

from __future__ import annotations

import re
from typing import Any

from myoguide.adapters.fhir.activities import (
    CS_DIRECTION,
    CS_GRADE,
    CS_PLAN_TYPE,
    CS_QUALITY,
    CS_RECOMMENDATION,
    CS_STANCE,
    CS_STRENGTH,
    EXT_CAUTION_WHEN,
    EXT_DIRECTION,
    EXT_QUALITY,
    EXT_STRENGTH,
    JSON,
    PLAN_ID,
    PROFILE_PLAN,
    PUBLISHER,
    QUALITY,
    STRENGTH,
    Activities,
    canonical,
    coding,
    common,
    fhir_id,
    other_citation,
    ref_citation,
    source_artifacts,
)
from myoguide.knowledge.model import AgentStep, Knowledge, RecommendationTemplate, Scenario

# How the engine (domain/engine.py) wires scenarios to recommendations; the knowledge holds the
# pieces but not this wiring. The ladder belongs to the resistant scenario; the boundary flare shows
# the options of both neighbouring scenarios (below first, as the engine does); the ILD path runs
# ahead of the ladder.
_LADDER_SCENARIO = "resistant"
_COMBINED_SCENARIOS = {"flare_at_10mg_boundary": ("flare_below_10mg", "flare_above_10mg")}
_BEFORE_LADDER = frozenset({"ild_refractory"})


def plandefinition_bundle(knowledge: Knowledge) -> dict[str, Any]:
    """Return the knowledge as a FHIR R4 collection Bundle: a PlanDefinition and its activities."""
    activities = Activities(knowledge)
    plan = _plan(knowledge, activities)
    resources = [plan, *activities.resources()]
    return {
        "resourceType": "Bundle",
        "id": PLAN_ID,
        "type": "collection",
        "entry": [
            {"fullUrl": canonical(r["resourceType"], r["id"]), "resource": r} for r in resources
        ],
    }


# ---- plan definition --------------------------------------------------------------------------


class _Ids:
    """Hands out unique action ids: a recommendation's key, prefixed by its group when repeated."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def take(self, key: str, prefix: str) -> str:
        """Return `key` as an id, or `prefix-key` when `key` is already in use."""
        value = fhir_id(key)
        return self.reserve(fhir_id(prefix, key) if value in self._used else value)

    def reserve(self, value: str) -> str:
        """Return `value` after checking that no other action has it."""
        if value in self._used:
            raise ValueError(f"duplicate action id {value!r}")
        self._used.add(value)
        return value


def _grade_extensions(k: Knowledge, rec: RecommendationTemplate) -> list[JSON]:
    direction = ("against", "Against") if rec.stance == "not_suggested" else ("for", "For")
    out: list[JSON] = []
    if rec.grade is not None:
        strength, quality = STRENGTH[rec.grade[0]], QUALITY[rec.grade[1]]
        out.append(
            {
                "url": EXT_STRENGTH,
                "valueCodeableConcept": {
                    "coding": [coding(CS_STRENGTH, *strength)],
                    "text": k.grades.strength[rec.grade[0]],
                },
            }
        )
        out.append(
            {
                "url": EXT_QUALITY,
                "valueCodeableConcept": {
                    "coding": [coding(CS_QUALITY, *quality)],
                    "text": k.grades.quality[rec.grade[1]],
                },
            }
        )
    out.append(
        {
            "url": EXT_DIRECTION,
            "valueCodeableConcept": {"coding": [coding(CS_DIRECTION, *direction)]},
        }
    )
    return out


def _caution_artifacts(k: Knowledge, rec: RecommendationTemplate) -> list[JSON]:
    out: list[JSON] = [
        {"type": "documentation", "label": cid, "display": k.cautions[cid].text}
        for cid in rec.cautions
    ]
    out += [
        {
            "extension": [{"url": EXT_CAUTION_WHEN, "valueCode": "ild-present"}],
            "type": "documentation",
            "label": cid,
            "display": k.cautions[cid].text,
        }
        for cid in rec.cautions_if_ild
    ]
    return out


def _agent_leaves(k: Knowledge, acts: Activities, step: AgentStep) -> list[JSON]:
    """Return one action per regimen of an agent step, or one for the bare agent."""
    agent = k.agent(step.agent)
    if not step.regimens:
        return [{"title": agent.display, "definitionCanonical": acts.for_agent(agent.id)}]
    return [
        {
            "title": f"{agent.display}: {k.dose_rules[reg].note}",
            "definitionCanonical": acts.for_rule(reg),
        }
        for reg in step.regimens
    ]


def _choice(action: JSON, leaves: list[JSON]) -> JSON:
    """Put the leaves on `action`: inline when there is one, else as exactly-one alternatives."""
    if len(leaves) == 1:
        action.update(leaves[0])
        return action
    # Regimens of one agent are alternative ways of giving it: one of them is chosen.
    action["groupingBehavior"] = "logical-group"
    action["selectionBehavior"] = "exactly-one"
    action["action"] = [
        {"id": f"{action['id']}-{i}", **leaf} for i, leaf in enumerate(leaves, start=1)
    ]
    return action


def _rec_action(k: Knowledge, acts: Activities, ids: _Ids, rec_id: str, prefix: str) -> JSON:
    rec = k.recommendations[rec_id]
    action_id = ids.take(rec_id, prefix)
    codes = [
        {"coding": [coding(CS_RECOMMENDATION, rec_id)]},
        {"coding": [coding(CS_STANCE, rec.stance)]},
    ]
    if rec.grade is not None:
        codes.append({"coding": [coding(CS_GRADE, rec.grade)]})
    action: JSON = {
        "id": action_id,
        "extension": _grade_extensions(k, rec),
        "description": rec.text,
        "code": codes,
        "documentation": _caution_artifacts(k, rec) + source_artifacts(k, rec.sources),
    }
    if len(rec.agents) == 1:
        leaves = _agent_leaves(k, acts, rec.agents[0])
        if len(leaves) == 1:
            action["definitionCanonical"] = leaves[0]["definitionCanonical"]
        else:
            _choice(action, leaves)
    elif rec.agents:
        # Agents combine as the source's wording says; only alternatives the knowledge marks
        # (choose_one: "azathioprine or methotrexate") get a selection behaviour, exactly one.
        action["groupingBehavior"] = "logical-group"
        steps = [
            _choice({"id": f"{action_id}-{i}"}, _agent_leaves(k, acts, step))
            for i, step in enumerate(rec.agents, start=1)
        ]
        alternatives = [
            sub for sub, step in zip(steps, rec.agents, strict=True) if step.agent in rec.choose_one
        ]
        if alternatives:
            one_of: JSON = {
                "id": f"{action_id}-one-of",
                "groupingBehavior": "logical-group",
                "selectionBehavior": "exactly-one",
                "action": alternatives,
            }
            at = steps.index(alternatives[0])
            steps = [sub for sub in steps if sub not in alternatives]
            steps.insert(at, one_of)
        action["action"] = steps
    return action


def _group(action_id: str, title: str, description: str | None, sources: list[JSON]) -> JSON:
    group: JSON = {"id": action_id, "title": title}
    if description is not None:
        group["description"] = description
    if sources:
        group["documentation"] = sources
    group["groupingBehavior"] = "logical-group"
    return group


def _scenario_group(k: Knowledge, scenario_id: str, scenario: Scenario) -> JSON:
    return _group(
        fhir_id(scenario_id),
        scenario.title,
        scenario.summary,
        source_artifacts(k, scenario.sources),
    )


def _ladder_steps(k: Knowledge, acts: Activities, ids: _Ids, top_id: str) -> list[JSON]:
    steps: list[JSON] = []
    for step in k.ladder:
        step_id = ids.reserve(fhir_id(top_id, "step", str(step.step)))
        group: JSON = {"id": step_id, "prefix": f"Step {step.step}", "description": step.note}
        group["groupingBehavior"] = "logical-group"
        if step.recommendations_pm is None:
            recs = [_rec_action(k, acts, ids, r, step_id) for r in step.recommendations]
            if len(recs) > 1:
                group["selectionBehavior"] = "any"
            group["action"] = recs
        else:
            # The engine uses the PM list for polymyositis and the main list otherwise (DM).
            variants = []
            for suffix, title, rec_ids in (
                ("dm", "Dermatomyositis", step.recommendations),
                ("pm", "Polymyositis", step.recommendations_pm),
            ):
                vid = ids.reserve(fhir_id(step_id, suffix))
                variant: JSON = {"id": vid, "title": title, "groupingBehavior": "logical-group"}
                if len(rec_ids) > 1:
                    variant["selectionBehavior"] = "any"
                variant["action"] = [_rec_action(k, acts, ids, r, vid) for r in rec_ids]
                variants.append(variant)
            group["selectionBehavior"] = "exactly-one"
            group["action"] = variants
        if steps:
            group["relatedAction"] = [{"actionId": steps[-1]["id"], "relationship": "after-end"}]
        steps.append(group)
    return steps


def _top_actions(k: Knowledge, acts: Activities) -> list[JSON]:
    ids = _Ids()
    in_ladder = {r for s in k.ladder for r in (*s.recommendations, *(s.recommendations_pm or ()))}
    free = [r for r in k.recommendations if r not in in_ladder]
    # The same wiring the engine runs says which recommendations each scenario offers.
    wired = k.wiring.scenario_recommendations()
    by_scenario = {
        sid: [r for r in dict.fromkeys(wired.get(sid, ())) if r in free] for sid in k.scenarios
    }
    placed = {r for recs in by_scenario.values() for r in recs}

    top: list[JSON] = []
    ladder_id = fhir_id(_LADDER_SCENARIO)
    for sid, scenario in k.scenarios.items():
        group = _scenario_group(k, sid, scenario)
        ids.reserve(group["id"])
        if sid == _LADDER_SCENARIO:
            group["action"] = _ladder_steps(k, acts, ids, group["id"])
        elif sid in _COMBINED_SCENARIOS:
            parts = []
            for part in _COMBINED_SCENARIOS[sid]:
                sub = _scenario_group(k, part, k.scenarios[part])
                sub["id"] = ids.reserve(fhir_id(group["id"], part))
                sub["selectionBehavior"] = "any"
                sub["action"] = [
                    _rec_action(k, acts, ids, r, group["id"]) for r in by_scenario[part]
                ]
                parts.append(sub)
            group["selectionBehavior"] = "any"
            group["action"] = parts
        else:
            group["selectionBehavior"] = "any"
            group["action"] = [_rec_action(k, acts, ids, r, group["id"]) for r in by_scenario[sid]]
        if sid in _BEFORE_LADDER:
            group["relatedAction"] = [{"actionId": ladder_id, "relationship": "before-start"}]
        if group.get("action"):
            top.append(group)

    # Recommendations outside every scenario (the refractory-rash pointer) are grouped by the
    # section of their first source, so nothing in the knowledge is left out.
    sections: dict[str, list[str]] = {}
    for r in free:
        if r not in placed:
            sections.setdefault(k.recommendations[r].sources[0].section, []).append(r)
    for section, recs in sections.items():
        gid = ids.reserve(fhir_id(re.sub(r"[^A-Za-z0-9]+", "-", section).strip("-").lower()))
        first = k.recommendations[recs[0]]
        group = _group(gid, section, None, source_artifacts(k, first.sources[:1]))
        group["selectionBehavior"] = "any"
        group["action"] = [_rec_action(k, acts, ids, r, gid) for r in recs]
        top.append(group)
    return top


def _plan(k: Knowledge, acts: Activities) -> JSON:
    plan = common(k, "PlanDefinition", PLAN_ID, PROFILE_PLAN)
    actions = _top_actions(k, acts)
    documents: list[JSON] = [
        {"type": "derived-from", "label": d.id, "display": d.title} for d in k.documents
    ]
    citations = [ref_citation(k, r.number) for r in k.references]
    citations += [other_citation(k, c.id) for c in k.citations]
    plan.update(
        {
            "title": k.title,
            "type": {"coding": [coding(CS_PLAN_TYPE, "clinical-protocol", "Clinical Protocol")]},
            "status": "active",
            "experimental": False,
            "publisher": PUBLISHER,
            "description": f"{k.title} (myoguide knowledge {k.knowledge_version}). "
            f"Grades: {k.grades.scheme}",
            "usage": k.disclaimer,
            "relatedArtifact": documents + citations,
            "action": actions,
        }
    )
    return plan
