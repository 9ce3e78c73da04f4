"""The composition root: loads knowledge once and wires the engine behind one service."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from myoguide.domain.engine import Engine
from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState, parse_state
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.model import Knowledge


@dataclass(frozen=True)
class Service:
    """The application service every door calls: validate, then evaluate."""

    knowledge: Knowledge
    engine: Engine

    def parse(self, raw: object) -> PatientState:
        """Validate raw patient-state data; raises InputError naming the field."""
        return parse_state(raw, self.knowledge)

    def recommend(self, raw: object) -> RecommendationSet:
        """Validate raw patient-state data and return its RecommendationSet."""
        return self.engine.recommend(parse_state(raw, self.knowledge))


def build_service(knowledge: Knowledge | None = None) -> Service:
    """Build a Service from the given knowledge, or the packaged guideline."""
    kb = knowledge if knowledge is not None else load_packaged()
    return Service(kb, Engine(kb))


@cache
def default_service() -> Service:
    """Return the process-wide Service on the packaged guideline, built once."""
    return build_service()
