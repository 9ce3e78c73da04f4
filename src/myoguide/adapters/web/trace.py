"""The answer's trace as a clinician reads it: each step in words, never a rule id or field name.

A step's words come from the knowledge it points to where that has words of its own (an option's
heading, a scenario's title, a caution's first clause); the engine's own bookkeeping steps (scope,
history, doses) have short descriptions here, which say what was checked, not what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from myoguide.adapters.web.words import fact_words, rec_heading
from myoguide.domain.result import FactValue, RecommendationSet, TraceStep
from myoguide.knowledge.model import Knowledge

# What the engine's own steps check, by rule id or by the rule's first part.
_STEP_WORDS = {
    "history.read": "Treatment history read",
    "scope.adult": "Adult or not",
    "scope.alive": "Record of a living patient",
    "scope.diagnosis": "Diagnosis within the guideline",
    "scope.initial_therapy": "Initial therapy or later",
    "course.classify": "Course of the disease",
    "flare.scenario": "Which kind of flare",
    "flare.severity": "Severity of the flare",
    "flare.prednisone_dose": "Prednisone dose for the flare",
    "flare.unresolved_medications": "Drugs that could not be identified",
    "doses.weight_basis": "Which body weight doses use",
    "ladder.alkylating_condition": "When alkylating agents open",
    "resistant.alternative_diagnoses": "Other diagnoses excluded or not",
    "scope": "Scope",
    "history": "Treatment history",
    "course": "Last infusion or course",
    "flare": "The flare",
    "dose": "Dose",
    "doses": "Dose",
    "clamp": "Dose kept to its stated maximum",
    "maxima": "Stated maximum dose",
    "ladder": "Resistant disease",
    "resistant": "Resistant disease",
    "caution": "Caution",
    "ild": "Interstitial lung disease",
    "rash": "Rash",
    "option": "Option offered",
}

# The facts a step looked at, in words (the rest: the key with spaces).
_FACT_WORDS = {
    "age_years": "age",
    "alternative_diagnoses_excluded": "other diagnoses excluded",
    "bmi": "body mass index",
    "computed": "computed",
    "conflicting": "recorded as both failed and not tolerated",
    "current": "current",
    "diagnosis": "diagnosis",
    "disease_control_achieved": "control ever reached",
    "failed": "responded inadequately",
    "failed_second_line": "second-line agents failed",
    "flare": "flare now",
    "glucocorticoid_recorded": "a glucocorticoid recorded",
    "grade": "grade",
    "ild_present": "interstitial lung disease",
    "ild_refractory": "lung disease refractory",
    "in_use": "in use",
    "inadequate_response": "responded inadequately",
    "intolerant": "not tolerated",
    "last_given": "last given",
    "maximum": "stated maximum",
    "needed": "needed",
    "options": "options",
    "other_immunosuppressants_in_use": "other immunosuppressants in use",
    "other_options": "other options",
    "outcome_unknown": "outcome not recorded",
    "prednisone_listed": "prednisone listed",
    "prednisone_mg_per_day": "prednisone (mg/day)",
    "rank": "rank",
    "recommendation": "option",
    "recommendations": "options",
    "resistant_history": "resistant before",
    "second_line_agents": "second-line agents",
    "severity": "severity",
    "skin_predominant": "rash the refractory problem",
    "sparing_agents_failed": "sparing agents failed",
    "sparing_agents_in_use": "sparing agents in use",
    "threshold": "threshold",
    "tried_without_failure": "tried without failure",
    "unresolved": "not identified",
}

_ID = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")
_LADDER = re.compile(r"^ladder\[(\d+)\]$")


@dataclass(frozen=True)
class TraceRow:
    """One step of the trace in words: the step, what it looked at and what it decided."""

    step: str
    looked_at: str
    outcome: str


class _Names:
    """Words for the ids a trace carries: options, scenarios, drugs."""

    def __init__(self, kb: Knowledge) -> None:
        self.kb = kb
        self.words: dict[str, str] = {a.id: a.display for a in kb.agents}
        self.words.update((i, s.title) for i, s in kb.scenarios.items())
        self.headings = {i: rec_heading(r.text) for i, r in kb.recommendations.items()}
        self.words.update(self.headings)
        self.cautions = {i: f"Caution: {rec_heading(c.text)}" for i, c in kb.cautions.items()}

    def say(self, text: str) -> str:
        """Return text with every id in it replaced by its words (or its parts, spaced)."""
        if "_" not in text:
            return text  # an id has an underscore: most values and outcomes have none
        return _ID.sub(lambda m: self.words.get(m.group(0), m.group(0).replace("_", " ")), text)

    def value(self, value: FactValue) -> str:
        return self.say(fact_words(value))

    def step(self, step: TraceStep) -> str:
        """Return a step's words: the knowledge's own where the step points to them."""
        pointer = step.knowledge.partition("#")[2]
        kind, _, key = pointer.partition(".")
        own = _STEP_WORDS.get(step.rule)
        if kind == "recommendations" and key in self.headings:
            heading = self.headings[key]
            lead = own or _STEP_WORDS.get(step.rule.split(".")[0], "")
            return f"{lead}: {heading}" if lead and lead != "Option offered" else heading
        if kind == "scenarios" and key in self.kb.scenarios and not own:
            return self.kb.scenarios[key].title
        if kind == "cautions" and key in self.cautions:
            return self.cautions[key]
        ladder = _LADDER.match(pointer)
        if ladder and not own:
            return f"Resistant disease, step {int(ladder.group(1)) + 1}"
        return own or _STEP_WORDS.get(step.rule.split(".")[0], "Step of the answer")


# The words for a knowledge's ids, made once per knowledge (by its identity; it is never changed).
_NAMES: dict[int, tuple[Knowledge, _Names]] = {}


def _names(kb: Knowledge) -> _Names:
    found = _NAMES.get(id(kb))
    if found is None or found[0] is not kb:
        found = (kb, _Names(kb))
        if len(_NAMES) < 8:  # a process loads one knowledge; tests a few
            _NAMES[id(kb)] = found
    return found[1]


def _fact(names: _Names, key: str, value: FactValue) -> str:
    # An option without a grade is ungraded, not of unknown grade.
    return "none" if key == "grade" and value is None else names.value(value)


def trace_rows(result: RecommendationSet, kb: Knowledge) -> list[TraceRow]:
    """Return the answer's trace in words, one row a step."""
    names = _names(kb)
    rows = []
    for step in result.trace:
        facts: Mapping[str, FactValue] = step.facts
        looked = "; ".join(
            f"{_FACT_WORDS.get(k, k.replace('_', ' '))}: {_fact(names, k, v)}"
            for k, v in facts.items()
        )
        rows.append(TraceRow(names.step(step), looked, names.say(step.outcome)))
    return rows
