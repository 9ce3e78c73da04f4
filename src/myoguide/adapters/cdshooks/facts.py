"""What a facts-needed card says: the facts the chart did not give, and what it does say."""

from __future__ import annotations

from myoguide.adapters.words import unit_words
from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState, dec
from myoguide.domain.units import fmt
from myoguide.knowledge.model import Knowledge

_OUTCOME_WORDS = {
    "inadequate_response": "inadequate response",
    "intolerance": "not tolerated",
    "responded": "responded",
    "unknown": "response not recorded",
}


def missing_facts(
    result: RecommendationSet, state: PatientState, knowledge: Knowledge
) -> list[str]:
    """Return, in words, the facts the record did not give that the answer needs."""
    codes = {w.code for w in result.warnings}
    name = {a: knowledge.agent(a).display for a in knowledge.agent_id_set}
    out = []
    if state.disease_control_achieved is None:
        out.append("Was the disease ever brought under control?")
    if state.flare is None:
        out.append("Is it flaring now (active again after control)?")
    unknown = [h.agent for h in state.treatment_history if h.outcome == "unknown" and h.agent]
    if unknown:
        drugs = ", ".join(dict.fromkeys(name.get(a, a) for a in unknown))
        out.append(f"How did the disease respond to {drugs} (tried, response not recorded)?")
    if "status_unknown" in codes:
        sparing = " or ".join(name[a] for a in knowledge.wiring.sparing_agents)
        out.append(f"Was {sparing}, given with a glucocorticoid, tried without enough response?")
    if "prednisone_dose_unknown" in codes:
        out.append("What is the current daily prednisone dose?")
    if state.unresolved_medications:
        out.append(
            "What are the medication records that could not be identified or read ("
            + "; ".join(state.unresolved_medications)
            + ")?"
        )
    return out


def chart_says(state: PatientState, knowledge: Knowledge) -> list[str]:
    """Return, in words, what the chart does say that the answer reads."""
    name = {a: knowledge.agent(a).display for a in knowledge.agent_id_set}
    out = [f"Diagnosis: {state.diagnosis.replace('_', ' ')}; age {fmt(dec(state.age_years))} years"]
    in_use = [
        name.get(m.agent, m.agent)
        + (
            f" {fmt(dec(m.dose.value))} {unit_words(m.dose.unit)}"
            if m.dose
            else " (dose not recorded)"
        )
        for m in state.current_medications
    ]
    out.append("In use: " + ("; ".join(in_use) if in_use else "no guideline drug recorded"))
    tried = [
        " with ".join(name.get(a, a) for a in (h.agents or (h.agent,)) if a)
        + f" ({_OUTCOME_WORDS[h.outcome]})"
        for h in state.treatment_history
    ]
    out.append("Tried before: " + ("; ".join(tried) if tried else "no guideline drug recorded"))
    return out
