"""The answer being built: recommendations, warnings and trace, and how warnings are worded."""

from __future__ import annotations

from msgspec import Struct, field

from myoguide.domain.prepared import KB, Prepared
from myoguide.domain.prescribable import Tables
from myoguide.domain.result import FactValue, Recommendation, Source, TraceStep, Warning
from myoguide.domain.units import fmt
from myoguide.knowledge.model import Maximum


# A msgspec Struct, not a dataclass: cheaper to define (command start) and to build.
class Run(Struct):
    """The answer being built: recommendations, warnings and trace, in order."""

    p: Prepared
    # Product strengths and label checks: every dose is built with its practical amounts.
    rx: Tables
    recs: list[Recommendation] = field(default_factory=list)
    warnings: dict[str, Warning] = field(default_factory=dict)
    trace: list[TraceStep] = field(default_factory=list)
    no_weight: list[str] = field(default_factory=list)
    no_height: list[str] = field(default_factory=list)
    # Added to every rank offered, when a rule that leads (refractory ILD) takes rank 1.
    rank_offset: int = 0
    # Agents the flare path already offers, kept out of a ladder that follows (tacrolimus for ILD).
    excluded: frozenset[str] = frozenset()
    # Agents a step left out for failing, with why in a clinician's words (one warning at the end).
    left_out: dict[str, str] = field(default_factory=dict)

    def step(self, rule: str, knowledge: str, outcome: str, **facts: FactValue) -> None:
        """Record one rule applied: what it looked at and what it decided."""
        self.trace.append(TraceStep(rule, KB + knowledge, facts, outcome))

    def warn(self, code: str, **values: str) -> None:
        """Add a warning once, worded from the knowledge's template."""
        self.warn_keyed(code, code, None, values)

    def warn_keyed(
        self, code: str, key: str, sources: tuple[Source, ...] | None, values: dict[str, str]
    ) -> None:
        """Add a warning once per key, worded from the knowledge, with its own sources if given."""
        slot = key
        if slot in self.warnings:
            return
        text = self.p.kb.warnings[code].text.format(**values)
        cited = sources if sources is not None else self.p.warn_sources[code]
        self.warnings[slot] = Warning(code, text, cited)

    def warn_max(self, code: str, m: Maximum, **values: str) -> None:
        """Add a warning about a stated maximum, with the maximum's words filled in."""
        self.warn(
            code,
            agent=self.p.kb.agent(m.agent).display,
            unit=m.unit,
            period=m.period,
            maximum=fmt(m.amount),
            **values,
        )
