"""Writes the encoded guideline as a FHIR R4 Bundle in the style of the HL7 CPG IG."""

# Extension URLs and code systems, confirmed against the CPG IG source (HL7/cqf-recommendations):
# - input/fsh/aliases.fsh: $cqf-strengthOfRecommendation and $cqf-qualityOfEvidence are the core
#   extensions http://hl7.org/fhir/StructureDefinition/cqf-*; $cpg-directionOfRecommendation,
#   $cpg-recommendation-direction, $cpg-knowledgeCapability, $cpg-knowledgeRepresentationLevel.
# - input/fsh/profiles/artifact-profiles/cpg-computable-plandefinition.fsh: the three extensions
#   above sit on PlanDefinition.action.
# - input/fsh/extensions/extension-cpg-direction-of-recommendation.fsh and
#   input/fsh/vocabulary/codesystem-cpg-recommendation-direction.fsh: codes "for" / "against".
# - input/fsh/profiles/activity-profiles/cpg-medicationrequest-activity.fsh: kind MedicationRequest,
#   profile cpg-medicationrequest, intent "proposal", doNotPerform present.
# - input/fsh/profiles/artifact-profiles/structuredefinition-cpg-shareable-plandefinition.fsh and
#   cpg-shareable-activity.fsh: knowledgeCapability 1..* (codes in
#   input/fsh/vocabulary/codesystem-cpg-knowledge-capability.fsh).
# - Strength and quality codings: http://terminology.hl7.org/CodeSystem/recommendation-strength
#   (strong, weak) and http://terminology.hl7.org/CodeSystem/evidence-quality (high, moderate, low),
#   as used with those extensions in the FHIR R4 PlanDefinition examples.

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Protocol

from myoguide.domain.units import clean, fmt
from myoguide.knowledge.model import (
    AgentInfo,
    AgentStep,
    DoseRule,
    Knowledge,
    Maximum,
    RecommendationTemplate,
    Scenario,
    SourceRef,
)

JSON = dict[str, Any]

BASE = "https://myoguide.example/fhir"
PLAN_ID = "myoguide-dm-pm-recurrent-resistant"
PUBLISHER = "myoguide"

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
EXT_STRENGTH = "http://hl7.org/fhir/StructureDefinition/cqf-strengthOfRecommendation"
EXT_QUALITY = "http://hl7.org/fhir/StructureDefinition/cqf-qualityOfEvidence"
EXT_DIRECTION = "http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-directionOfRecommendation"
EXT_CAPABILITY = "http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-knowledgeCapability"
EXT_LEVEL = "http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-knowledgeRepresentationLevel"
CS_STRENGTH = "http://terminology.hl7.org/CodeSystem/recommendation-strength"
CS_QUALITY = "http://terminology.hl7.org/CodeSystem/evidence-quality"
CS_DIRECTION = "http://hl7.org/fhir/uv/cpg/CodeSystem/cpg-recommendation-direction"
CS_PLAN_TYPE = "http://terminology.hl7.org/CodeSystem/plan-definition-type"
PROFILE_PLAN = "http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-computableplandefinition"
PROFILE_ACTIVITY = "http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-medicationrequestactivity"
PROFILE_REQUEST = "http://hl7.org/fhir/uv/cpg/StructureDefinition/cpg-medicationrequest"

# Local vocabulary for what the standard codes cannot carry: the recommendation key, its stance
# and grade, ILD-only cautions and citations from outside the source topic.
CS_RECOMMENDATION = f"{BASE}/CodeSystem/recommendation"
CS_STANCE = f"{BASE}/CodeSystem/recommendation-stance"
CS_GRADE = f"{BASE}/CodeSystem/grade"
EXT_CAUTION_WHEN = f"{BASE}/StructureDefinition/caution-applies-when"
EXT_OUTSIDE_SOURCE = f"{BASE}/StructureDefinition/outside-source"

_STRENGTH = {"1": ("strong", "Strong"), "2": ("weak", "Weak")}
_QUALITY = {
    "A": ("high", "High quality"),
    "B": ("moderate", "Moderate quality"),
    "C": ("low", "Low quality"),
}
_TIME_UNIT = {"day": ("d", "day"), "week": ("wk", "week")}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# How the engine (domain/engine.py) wires scenarios to recommendations; the knowledge holds the
# pieces but not this wiring. The ladder belongs to the resistant scenario; the boundary flare shows
# the options of both neighbouring scenarios (below first, as the engine does); the ILD path runs
# ahead of the ladder.
_LADDER_SCENARIO = "resistant"
_COMBINED_SCENARIOS = {"flare_at_10mg_boundary": ("flare_below_10mg", "flare_above_10mg")}
_BEFORE_LADDER = frozenset({"ild_refractory"})


def plandefinition_bundle(knowledge: Knowledge) -> dict[str, Any]:
    """Return the knowledge as a FHIR R4 collection Bundle: a PlanDefinition and its activities."""
    activities = _Activities(knowledge)
    plan = _plan(knowledge, activities)
    resources = [plan, *activities.resources()]
    return {
        "resourceType": "Bundle",
        "id": PLAN_ID,
        "type": "collection",
        "entry": [
            {"fullUrl": _canonical(r["resourceType"], r["id"]), "resource": r} for r in resources
        ],
    }


def fhir_id(*parts: str) -> str:
    """Return a FHIR id built from key parts (underscores become hyphens), or raise ValueError."""
    value = "-".join(parts).replace("_", "-")
    if not _FHIR_ID.match(value):
        raise ValueError(f"not a valid FHIR id: {value!r}")
    return value


def _canonical(resource_type: str, resource_id: str) -> str:
    return f"{BASE}/{resource_type}/{resource_id}"


def _name(resource_id: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[-.]", resource_id) if p)


def _number(value: Decimal) -> int | float:
    value = clean(value)
    return int(value) if value == value.to_integral_value() else float(value)


def _quantity(value: Decimal, unit: str) -> JSON:
    return {"value": _number(value), "unit": unit, "system": UCUM, "code": unit}


def _coding(system: str, code: str, display: str | None = None) -> JSON:
    coding: JSON = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return coding


def _capabilities() -> list[JSON]:
    return [
        {"url": EXT_CAPABILITY, "valueCode": "shareable"},
        {"url": EXT_CAPABILITY, "valueCode": "computable"},
        {"url": EXT_LEVEL, "valueCode": "structured"},
    ]


def _common(k: Knowledge, resource_type: str, resource_id: str, profile: str) -> JSON:
    return {
        "resourceType": resource_type,
        "id": resource_id,
        "meta": {"profile": [profile]},
        "extension": _capabilities(),
        "url": _canonical(resource_type, resource_id),
        "version": k.knowledge_version,
        "name": _name(resource_id),
    }


# ---- sources and citations --------------------------------------------------------------------


def _ref_citation(k: Knowledge, number: int) -> JSON:
    return {
        "type": "citation",
        "label": f"ref {number}",
        "citation": k.references[number - 1].citation,
    }


def _other_citation(k: Knowledge, citation_id: str) -> JSON:
    c = next(c for c in k.citations if c.id == citation_id)
    return {
        "extension": [{"url": EXT_OUTSIDE_SOURCE, "valueBoolean": c.outside_source}],
        "type": "citation",
        "label": c.id,
        "display": c.note,
        "citation": c.citation,
    }


def _source_artifacts(k: Knowledge, sources: tuple[SourceRef, ...]) -> list[JSON]:
    """Return one derived-from entry per source (document and section), then its citations."""
    out: list[JSON] = []
    numbers: dict[int, None] = {}
    cited: dict[str, None] = {}
    for s in sources:
        display = s.section
        if s.references:
            word = "reference" if len(s.references) == 1 else "references"
            display += f" ({word} {', '.join(str(n) for n in s.references)})"
        if s.citations:
            display += f" (citations {', '.join(s.citations)})"
        out.append({"type": "derived-from", "label": s.document, "display": display})
        numbers.update(dict.fromkeys(s.references))
        cited.update(dict.fromkeys(s.citations))
    out += [_ref_citation(k, n) for n in numbers]
    out += [_other_citation(k, c) for c in cited]
    return out


def _merge_sources(*groups: tuple[SourceRef, ...]) -> tuple[SourceRef, ...]:
    return tuple(dict.fromkeys(s for g in groups for s in g))


# ---- activity definitions ---------------------------------------------------------------------


def _product(agent: AgentInfo) -> JSON:
    # IVIG carries no RxNorm code on purpose: no ingredient code could be verified.
    if agent.rxnorm is None:
        return {"text": agent.display}
    return {"coding": [_coding(RXNORM, agent.rxnorm, agent.display)], "text": agent.display}


def _per(period: str) -> str:
    return f"per {period}"


def _span(low: Decimal, high: Decimal, unit: str) -> str:
    if low == high:
        return f"{fmt(clean(low))} {unit}"
    return f"{fmt(clean(low))} to {fmt(clean(high))} {unit}"


def _max_text(m: Maximum) -> str:
    return f"{fmt(clean(m.amount))} {m.unit} {_per(m.period)}"


def _rate(k: Knowledge, rule: DoseRule) -> str:
    """Return the rule's amount in words, e.g. '2 g/kg per course' or 'up to 200 mg per day'."""
    per = _per(rule.period)
    if rule.kind in ("up_to_max", "up_to"):
        return f"up to {_max_text(k.maximum(rule.maximum or ''))}"
    low, high = rule.low or Decimal(0), rule.high or Decimal(0)
    if rule.kind == "fixed":
        return f"{_span(low, high, rule.unit)} {per}"
    if rule.kind == "per_kg":
        return f"{_span(low, high, rule.unit + '/kg')} {per}"
    if rule.kind == "per_m2":
        return f"{_span(low, high, rule.unit + '/m2')} {per}"
    if rule.kind == "at_least":
        return f"at least {fmt(clean(low))} {rule.unit} {per}"
    # fixed_to_per_kg: a fixed floor up to a weight-based ceiling.
    return f"{fmt(clean(low))} {rule.unit} {per} up to {fmt(clean(high))} {rule.unit}/kg {per}"


def _max_dosage(m: Maximum) -> JSON:
    amount = _quantity(m.amount, m.unit)
    if m.period == "dose":
        return {"maxDosePerAdministration": amount}
    if m.period in _TIME_UNIT:
        code, unit = _TIME_UNIT[m.period]
        return {
            "maxDosePerPeriod": {
                "numerator": amount,
                "denominator": {"value": 1, "unit": unit, "system": UCUM, "code": code},
            }
        }
    return {}  # a per-course maximum has no FHIR element; the text carries it


class TimingLike(Protocol):
    """A schedule with the fields of FHIR Timing.repeat (the knowledge's or a dose's)."""

    @property
    def frequency(self) -> int | None: ...
    @property
    def period(self) -> Decimal | None: ...
    @property
    def period_unit(self) -> str | None: ...
    @property
    def count(self) -> int | None: ...
    @property
    def count_max(self) -> int | None: ...


def timing_repeat(t: TimingLike) -> JSON:
    """Return a schedule as FHIR Timing.repeat, leaving out what it does not say."""
    repeat: JSON = {}
    if t.frequency is not None:
        repeat["frequency"] = t.frequency
    if t.period is not None:
        repeat["period"] = _number(t.period)
    if t.period_unit is not None:
        repeat["periodUnit"] = t.period_unit
    if t.count is not None:
        repeat["count"] = t.count
    if t.count_max is not None:
        repeat["countMax"] = t.count_max
    return repeat


def _rule_dosage(k: Knowledge, rule: DoseRule, rate: str) -> JSON:
    dosage: JSON = {"text": f"{rate}; {rule.note}"}
    # Only per-administration fixed amounts are structured: per-day or per-course amounts are not a
    # dose, and weight- or surface-based amounts are computed for the patient at run time.
    if rule.kind == "fixed" and rule.period == "dose" and rule.low is not None:
        high = rule.high if rule.high is not None else rule.low
        if rule.low == high:
            dose: JSON = {"doseQuantity": _quantity(rule.low, rule.unit)}
        else:
            dose = {
                "doseRange": {
                    "low": _quantity(rule.low, rule.unit),
                    "high": _quantity(high, rule.unit),
                }
            }
        dosage["doseAndRate"] = [dose]
    if rule.timing is not None:
        # The same schedule the engine puts on the patient's dose (FHIR Timing.repeat).
        dosage["timing"] = {"repeat": timing_repeat(rule.timing)}
    if rule.maximum is not None:
        dosage.update(_max_dosage(k.maximum(rule.maximum)))
    return dosage


_RUNTIME = {
    "per_kg": " The patient's dose is computed from body weight at run time.",
    "fixed_to_per_kg": " The weight-based ceiling is computed from body weight at run time.",
    "per_m2": " The patient's dose is computed from body surface area at run time.",
}


class _Activities:
    """The ActivityDefinitions of the bundle: one per dose rule, one per agent named without one."""

    def __init__(self, k: Knowledge) -> None:
        self.k = k
        self._rules = {rid: fhir_id("myoguide-dose", rid) for rid in k.dose_rules}
        self._agents: dict[str, str] = {}

    def for_rule(self, rule_id: str) -> str:
        """Return the canonical URL of a dose rule's ActivityDefinition."""
        return _canonical("ActivityDefinition", self._rules[rule_id])

    def for_agent(self, agent_id: str) -> str:
        """Return the canonical URL of an agent's ActivityDefinition, creating it on first use."""
        rid = self._agents.setdefault(agent_id, fhir_id("myoguide-agent", agent_id))
        return _canonical("ActivityDefinition", rid)

    def resources(self) -> list[JSON]:
        """Return the dose-rule activities in knowledge order, then the agent ones likewise."""
        out = [self._rule_resource(rid, rule) for rid, rule in self.k.dose_rules.items()]
        out += [self._agent_resource(a) for a in self.k.agents if a.id in self._agents]
        return out

    def _base(self, resource_id: str, title: str, description: str) -> JSON:
        r = _common(self.k, "ActivityDefinition", resource_id, PROFILE_ACTIVITY)
        r.update(
            {
                "title": title,
                "status": "active",
                "experimental": False,
                "publisher": PUBLISHER,
                "description": description,
            }
        )
        return r

    def _medication(self, agent: AgentInfo) -> JSON:
        return {
            "kind": "MedicationRequest",
            "profile": PROFILE_REQUEST,
            "intent": "proposal",
            "doNotPerform": False,
            "productCodeableConcept": _product(agent),
        }

    def _rule_resource(self, rule_id: str, rule: DoseRule) -> JSON:
        agent = self.k.agent(rule.agent)
        rate = _rate(self.k, rule)
        r = self._base(
            self._rules[rule_id],
            f"{agent.display}: {rule.note}",
            f"{agent.display}, {rate}." + _RUNTIME.get(rule.kind, ""),
        )
        maxima = (self.k.maximum(rule.maximum).sources,) if rule.maximum is not None else ()
        r["relatedArtifact"] = _source_artifacts(self.k, _merge_sources(rule.sources, *maxima))
        r.update(self._medication(agent))
        r["dosage"] = [_rule_dosage(self.k, rule, rate)]
        return r

    def _agent_resource(self, agent: AgentInfo) -> JSON:
        maxima = [m for m in self.k.maxima if m.agent == agent.id]
        description = f"{agent.display}; no dose rule is encoded for this step."
        if maxima:
            description += " Stated maximum: " + "; ".join(_max_text(m) for m in maxima) + "."
        r = self._base(self._agents[agent.id], agent.display, description)
        sources = _merge_sources(*(m.sources for m in maxima))
        if sources:
            r["relatedArtifact"] = _source_artifacts(self.k, sources)
        r.update(self._medication(agent))
        if maxima:
            r["dosage"] = [
                {"text": f"up to {_max_text(m)} (stated maximum)", **_max_dosage(m)} for m in maxima
            ]
        return r


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
        strength, quality = _STRENGTH[rec.grade[0]], _QUALITY[rec.grade[1]]
        out.append(
            {
                "url": EXT_STRENGTH,
                "valueCodeableConcept": {
                    "coding": [_coding(CS_STRENGTH, *strength)],
                    "text": k.grades.strength[rec.grade[0]],
                },
            }
        )
        out.append(
            {
                "url": EXT_QUALITY,
                "valueCodeableConcept": {
                    "coding": [_coding(CS_QUALITY, *quality)],
                    "text": k.grades.quality[rec.grade[1]],
                },
            }
        )
    out.append(
        {
            "url": EXT_DIRECTION,
            "valueCodeableConcept": {"coding": [_coding(CS_DIRECTION, *direction)]},
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


def _agent_leaves(k: Knowledge, acts: _Activities, step: AgentStep) -> list[JSON]:
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


def _rec_action(k: Knowledge, acts: _Activities, ids: _Ids, rec_id: str, prefix: str) -> JSON:
    rec = k.recommendations[rec_id]
    action_id = ids.take(rec_id, prefix)
    codes = [
        {"coding": [_coding(CS_RECOMMENDATION, rec_id)]},
        {"coding": [_coding(CS_STANCE, rec.stance)]},
    ]
    if rec.grade is not None:
        codes.append({"coding": [_coding(CS_GRADE, rec.grade)]})
    action: JSON = {
        "id": action_id,
        "extension": _grade_extensions(k, rec),
        "description": rec.text,
        "code": codes,
        "documentation": _caution_artifacts(k, rec) + _source_artifacts(k, rec.sources),
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
        _source_artifacts(k, scenario.sources),
    )


def _ladder_steps(k: Knowledge, acts: _Activities, ids: _Ids, top_id: str) -> list[JSON]:
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


def _top_actions(k: Knowledge, acts: _Activities) -> list[JSON]:
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
        group = _group(gid, section, None, _source_artifacts(k, first.sources[:1]))
        group["selectionBehavior"] = "any"
        group["action"] = [_rec_action(k, acts, ids, r, gid) for r in recs]
        top.append(group)
    return top


def _plan(k: Knowledge, acts: _Activities) -> JSON:
    plan = _common(k, "PlanDefinition", PLAN_ID, PROFILE_PLAN)
    actions = _top_actions(k, acts)
    documents: list[JSON] = [
        {"type": "derived-from", "label": d.id, "display": d.title} for d in k.documents
    ]
    citations = [_ref_citation(k, r.number) for r in k.references]
    citations += [_other_citation(k, c.id) for c in k.citations]
    plan.update(
        {
            "title": k.title,
            "type": {"coding": [_coding(CS_PLAN_TYPE, "clinical-protocol", "Clinical Protocol")]},
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
