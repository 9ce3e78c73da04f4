"""The PlanDefinition writer's parts: CPG IG names, citations, doses and ActivityDefinitions."""

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
from typing import Any

from myoguide.adapters.fhir.codes import RXNORM, UCUM
from myoguide.adapters.fhir.proposals import agent_route, route_concept
from myoguide.adapters.fhir.timing import fhir_number, timing_repeat
from myoguide.domain.units import clean, fmt
from myoguide.knowledge.model import (
    AgentInfo,
    DoseRule,
    Knowledge,
    Maximum,
    SourceRef,
)

JSON = dict[str, Any]

BASE = "https://myoguide.example/fhir"
PLAN_ID = "myoguide-dm-pm-recurrent-resistant"
PUBLISHER = "myoguide"

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

STRENGTH = {"1": ("strong", "Strong"), "2": ("weak", "Weak")}
QUALITY = {
    "A": ("high", "High quality"),
    "B": ("moderate", "Moderate quality"),
    "C": ("low", "Low quality"),
}
_TIME_UNIT = {"day": ("d", "day"), "week": ("wk", "week")}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def fhir_id(*parts: str) -> str:
    """Return a FHIR id built from key parts (underscores become hyphens), or raise ValueError."""
    value = "-".join(parts).replace("_", "-")
    if not _FHIR_ID.match(value):
        raise ValueError(f"not a valid FHIR id: {value!r}")
    return value


def canonical(resource_type: str, resource_id: str) -> str:
    return f"{BASE}/{resource_type}/{resource_id}"


def _name(resource_id: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[-.]", resource_id) if p)


def _quantity(value: Decimal, unit: str) -> JSON:
    return {"value": fhir_number(value), "unit": unit, "system": UCUM, "code": unit}


def coding(system: str, code: str, display: str | None = None) -> JSON:
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


def common(k: Knowledge, resource_type: str, resource_id: str, profile: str) -> JSON:
    return {
        "resourceType": resource_type,
        "id": resource_id,
        "meta": {"profile": [profile]},
        "extension": _capabilities(),
        "url": canonical(resource_type, resource_id),
        "version": k.knowledge_version,
        "name": _name(resource_id),
    }


# ---- sources and citations --------------------------------------------------------------------


def ref_citation(k: Knowledge, number: int) -> JSON:
    return {
        "type": "citation",
        "label": f"ref {number}",
        "citation": k.references[number - 1].citation,
    }


def other_citation(k: Knowledge, citation_id: str) -> JSON:
    c = next(c for c in k.citations if c.id == citation_id)
    return {
        "extension": [{"url": EXT_OUTSIDE_SOURCE, "valueBoolean": c.outside_source}],
        "type": "citation",
        "label": c.id,
        "display": c.note,
        "citation": c.citation,
    }


def source_artifacts(k: Knowledge, sources: tuple[SourceRef, ...]) -> list[JSON]:
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
    out += [ref_citation(k, n) for n in numbers]
    out += [other_citation(k, c) for c in cited]
    return out


def _merge_sources(*groups: tuple[SourceRef, ...]) -> tuple[SourceRef, ...]:
    return tuple(dict.fromkeys(s for g in groups for s in g))


# ---- activity definitions ---------------------------------------------------------------------


def _product(agent: AgentInfo) -> JSON:
    # IVIG carries no RxNorm code on purpose: no ingredient code could be verified.
    if agent.rxnorm is None:
        return {"text": agent.display}
    return {"coding": [coding(RXNORM, agent.rxnorm, agent.display)], "text": agent.display}


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
    route = agent_route(k, rule.agent)
    if route is not None:
        dosage["route"] = route_concept(route)
    return dosage


_RUNTIME = {
    "per_kg": " The patient's dose is computed from body weight at run time.",
    "fixed_to_per_kg": " The weight-based ceiling is computed from body weight at run time.",
    "per_m2": " The patient's dose is computed from body surface area at run time.",
}


class Activities:
    """The ActivityDefinitions of the bundle: one per dose rule, one per agent named without one."""

    def __init__(self, k: Knowledge) -> None:
        self.k = k
        self._rules = {rid: fhir_id("myoguide-dose", rid) for rid in k.dose_rules}
        self._agents: dict[str, str] = {}

    def for_rule(self, rule_id: str) -> str:
        """Return the canonical URL of a dose rule's ActivityDefinition."""
        return canonical("ActivityDefinition", self._rules[rule_id])

    def for_agent(self, agent_id: str) -> str:
        """Return the canonical URL of an agent's ActivityDefinition, creating it on first use."""
        rid = self._agents.setdefault(agent_id, fhir_id("myoguide-agent", agent_id))
        return canonical("ActivityDefinition", rid)

    def resources(self) -> list[JSON]:
        """Return the dose-rule activities in knowledge order, then the agent ones likewise."""
        out = [self._rule_resource(rid, rule) for rid, rule in self.k.dose_rules.items()]
        out += [self._agent_resource(a) for a in self.k.agents if a.id in self._agents]
        return out

    def _base(self, resource_id: str, title: str, description: str) -> JSON:
        r = common(self.k, "ActivityDefinition", resource_id, PROFILE_ACTIVITY)
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
        r["relatedArtifact"] = source_artifacts(self.k, _merge_sources(rule.sources, *maxima))
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
            r["relatedArtifact"] = source_artifacts(self.k, sources)
        r.update(self._medication(agent))
        if maxima:
            r["dosage"] = [
                {"text": f"up to {_max_text(m)} (stated maximum)", **_max_dosage(m)} for m in maxima
            ]
        return r
