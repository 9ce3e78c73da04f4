"""The RecommendationSet of the contract, as immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

Course = Literal["recurrent", "resistant", "controlled", "out_of_scope"]
Stance = Literal["recommended", "alternative", "reserved", "not_suggested"]
Period = Literal["day", "week", "dose", "course"]
FactValue = str | int | float | bool | None | list[str]
# Exact decimals inside; JSON numbers outside (see adapters/jsonio.py and adapters/schemas.py).
Amount = Decimal


@dataclass(frozen=True, slots=True)
class Source:
    """Where a line comes from: the source document, its section and reference numbers."""

    document: str
    section: str
    references: tuple[int, ...]
    citations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Dose:
    """A dose for this patient; `basis` shows the arithmetic."""

    low: Amount
    high: Amount
    unit: Literal["mg", "g"]
    period: Period
    basis: str
    qualifier: Literal["at_least", "up_to"] | None = None


@dataclass(frozen=True, slots=True)
class Regimen:
    """One regimen of an agent, with this patient's dose or why it is missing."""

    id: str
    description: str
    dose: Dose | None
    omitted_reason: str | None
    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class AgentOption:
    """A drug a step starts, raises or switches to."""

    agent: str
    rxnorm: str | None
    display: str
    dose: Dose | None = None
    regimens: tuple[Regimen, ...] = ()
    maximum: str | None = None


@dataclass(frozen=True, slots=True)
class CautionDetail:
    """A caution with its own sources."""

    id: str
    text: str
    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One ranked option."""

    id: str
    rank: int
    stance: Stance
    grade: str | None
    grade_meaning: str | None
    agents: tuple[AgentOption, ...]
    text: str
    cautions: tuple[str, ...]
    sources: tuple[Source, ...]
    caution_details: tuple[CautionDetail, ...] = ()
    step: str | None = None


@dataclass(frozen=True, slots=True)
class Warning:
    """Missing data, a boundary, scope or a clamp."""

    code: str
    message: str
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One rule applied: what it looked at and what it decided."""

    rule: str
    knowledge: str
    facts: dict[str, FactValue]
    outcome: str


@dataclass(frozen=True, slots=True)
class LiteratureNote:
    """An agent reported in the literature without a recommendation."""

    id: str
    display: str
    text: str
    sources: tuple[Source, ...]


@dataclass(frozen=True, slots=True)
class RecommendationSet:
    """The engine's whole answer for one patient state."""

    knowledge_version: str
    course: Course
    scenario: str | None
    recommendations: tuple[Recommendation, ...]
    warnings: tuple[Warning, ...]
    trace: tuple[TraceStep, ...]
    scenario_title: str | None = None
    literature_only: tuple[LiteratureNote, ...] = ()
    disclaimer: str = ""
    measures: dict[str, str] = field(default_factory=dict)
