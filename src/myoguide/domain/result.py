"""The RecommendationSet of the contract, as immutable values."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from msgspec import Struct, field

Course = Literal["recurrent", "resistant", "controlled", "out_of_scope"]
Stance = Literal["recommended", "alternative", "reserved", "not_suggested"]
Period = Literal["day", "week", "dose", "course"]
FactValue = str | int | float | bool | None | list[str]
# Exact decimals inside; JSON numbers outside (see adapters/jsonio.py and adapters/schemas.py).
Amount = Decimal


class Source(Struct, frozen=True, gc=False):
    """Where a line comes from: the source document, its section and reference numbers."""

    document: str
    section: str
    references: tuple[int, ...]
    citations: tuple[str, ...] = ()


class Timing(Struct, frozen=True, gc=False, omit_defaults=True):
    """How often and how many times, shaped like FHIR Timing.repeat."""

    frequency: int | None = None
    period: Amount | None = None
    period_unit: Literal["d", "wk", "mo"] | None = None
    count: int | None = None
    count_max: int | None = None


class UnitCount(Struct, frozen=True, gc=False):
    """How many of one verified product make up one administration."""

    count: int
    strength: Amount
    unit: Literal["mg", "g"]
    rxnorm: str


class GivenAmount(Struct, frozen=True, gc=False):
    """One amount that can be given with whole units: per administration and in all."""

    amount: Amount
    per_administration: Amount
    units: tuple[UnitCount, ...]


class Practical(Struct, frozen=True, gc=False, omit_defaults=True):
    """The dose as whole units of verified products (ADR 0022); `text` is the line shown.

    `kind` "nearest": one or two amounts nearest a single figure; "range": the inward-rounded
    ends of a range (low end first); "none": no whole-unit amount fits (`text` says why).
    """

    kind: Literal["nearest", "range", "none"]
    text: str
    amounts: tuple[GivenAmount, ...] = ()
    products: str | None = None


class Dose(Struct, frozen=True, gc=False):
    """A dose for this patient; `basis` shows the arithmetic.

    "up_to" limits have low = None, "at_least" floors have high = None; a single figure has
    low = high.
    """

    low: Amount | None
    high: Amount | None
    unit: Literal["mg", "g"]
    period: Period
    basis: str
    qualifier: Literal["at_least", "up_to"] | None = None
    timing: Timing | None = None
    # Whole units of verified products nearest this dose (None: not worked out).
    practical: Practical | None = None


class Regimen(Struct, frozen=True, gc=False):
    """One regimen of an agent, with this patient's dose or why it is missing."""

    id: str
    description: str
    dose: Dose | None
    omitted_reason: str | None
    sources: tuple[Source, ...]


Action = Literal["start", "raise", "restart", "continue", "switch_to"]


class LabelRef(Struct, frozen=True, gc=False, omit_defaults=True):
    """A regulator's label a check was read in."""

    regulator: str
    product: str
    section: str
    version: str
    url: str
    set_id: str | None = None


class Check(Struct, frozen=True, gc=False):
    """A check before the first dose or while taking an agent, from a product label."""

    id: str
    when: Literal["before_first_dose", "while_taking"]
    text: str
    short: str
    outside_source: bool
    sources: tuple[LabelRef, ...]


class AgentOption(Struct, frozen=True, gc=False):
    """A drug a step starts, raises, restarts, continues or switches to."""

    agent: str
    rxnorm: str | None
    display: str
    dose: Dose | None = None
    regimens: tuple[Regimen, ...] = ()
    maximum: str | None = None
    action: Action | None = None
    in_use: bool = False
    notes: tuple[str, ...] = ()
    # Label checks for this agent, all outside the source review (ADR 0022).
    checks: tuple[Check, ...] = ()


class CautionDetail(Struct, frozen=True, gc=False):
    """A caution with its own sources."""

    id: str
    text: str
    sources: tuple[Source, ...]


class Recommendation(Struct, frozen=True, gc=False):
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
    # Agents offered here of which only one is to be added (empty: every agent applies).
    choose_one: tuple[str, ...] = ()
    # The option this one folds beneath (the ladder beneath a flare's "manage as resistant").
    under: str | None = None
    # What must be done first before this option applies (plain words); it is not "recommended"
    # until then.
    after: str | None = None


class Warning(Struct, frozen=True, gc=False):
    """Missing data, a boundary, scope or a clamp."""

    code: str
    message: str
    sources: tuple[Source, ...] = ()


class TraceStep(Struct, frozen=True, gc=False):
    """One rule applied: what it looked at and what it decided."""

    rule: str
    knowledge: str
    facts: dict[str, FactValue]
    outcome: str


class LiteratureNote(Struct, frozen=True, gc=False):
    """An agent reported in the literature without a recommendation."""

    id: str
    display: str
    text: str
    sources: tuple[Source, ...]


class RecommendationSet(Struct, frozen=True, gc=False):
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
    # The flare scenario of R1-R4 when another rule (refractory ILD) leads the answer.
    flare_scenario: str | None = None
    flare_scenario_title: str | None = None
