"""The pure guideline engine: a validated patient state in, a RecommendationSet out.

No I/O, no environment, no clock: the same state and knowledge always give the same answer.
The rules live beside it: classify (scope and course), flares (R1-R4), ladder (resistant
disease), options and doses (what is offered, for this patient).
"""

from __future__ import annotations

from myoguide.domain.classify import evaluate
from myoguide.domain.doses import missing_measure_warnings
from myoguide.domain.facts import derive
from myoguide.domain.prepared import prepare, sources_of
from myoguide.domain.result import RecommendationSet
from myoguide.domain.run import Run
from myoguide.domain.state import PatientState
from myoguide.knowledge.model import Knowledge

__all__ = ["Engine", "sources_of"]


class Engine:
    """Evaluates patient states against one loaded Knowledge."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.kb = knowledge
        # Checks every id the rules rely on (fails closed) and builds the static tables once.
        self._p = prepare(knowledge)

    def recommend(self, state: PatientState) -> RecommendationSet:
        """Return the RecommendationSet for a validated patient state."""
        run = Run(self._p)
        facts = derive(state, self.kb)
        course, scenario = evaluate(facts, run)
        missing_measure_warnings(run)
        recs = tuple(sorted(run.recs, key=lambda r: r.rank))
        scen = self.kb.scenarios.get(scenario) if scenario else None
        shows_ladder = any(r.id in self._p.ladder_ids for r in recs)
        measures: dict[str, str] = {}
        if facts.kg_text:
            measures["weight_kg"] = facts.kg_text
        if facts.height_text:
            measures["height_cm"] = facts.height_text
        if facts.bsa_text:
            measures["bsa_m2"] = facts.bsa_text
        return RecommendationSet(
            knowledge_version=self.kb.knowledge_version,
            course=course,
            scenario=scenario,
            recommendations=recs,
            warnings=tuple(run.warnings.values()),
            trace=tuple(run.trace),
            scenario_title=scen.title if scen else None,
            literature_only=self._p.literature if shows_ladder else (),
            disclaimer=self.kb.disclaimer,
            measures=measures,
        )
