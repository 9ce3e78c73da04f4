"""The schema of the encoded guideline: typed, validated at load, immutable afterwards."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

Stance = Literal["recommended", "alternative", "reserved", "not_suggested"]
Grade = Literal["1A", "1B", "1C", "2A", "2B", "2C"]
Period = Literal["day", "week", "dose", "course"]
MassUnit = Literal["mg", "g"]
DocumentId = Literal["topic", "review"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceRef(_Frozen):
    """A pointer to where an item comes from: document, section and reference numbers."""

    document: DocumentId
    section: str = Field(min_length=1)
    references: tuple[int, ...] = ()
    citations: tuple[str, ...] = ()


class Document(_Frozen):
    id: DocumentId
    file: str
    title: str
    role: str


class Reference(_Frozen):
    number: int = Field(ge=1)
    citation: str = Field(min_length=10)


class Citation(_Frozen):
    id: str
    citation: str = Field(min_length=10)
    note: str
    outside_source: bool


class Grades(_Frozen):
    scheme: str
    strength: dict[str, str]
    quality: dict[str, str]

    def explain(self, grade: str) -> str:
        """Return the plain-words meaning of a grade such as '2C'."""
        return f"{self.strength[grade[0]]} {self.quality[grade[1]]}"


class AgentInfo(_Frozen):
    id: str
    display: str
    rxnorm: str = Field(pattern=r"^[0-9]+$")
    classes: tuple[str, ...]


class Range(_Frozen):
    min: Decimal
    max: Decimal


class InputLimits(_Frozen):
    age_years: Range
    weight_kg: Range
    height_cm: Range
    dose_mg_per_day_max: Decimal


class Thresholds(_Frozen):
    adult_age_years: Decimal
    prednisone_flare_boundary_mg_per_day: Decimal
    prednisone_weight_based_warning_mg_per_day: Decimal
    alkylating_min_failed_second_line: int


class Maximum(_Frozen):
    id: str
    agent: str
    amount: Decimal
    unit: MassUnit
    period: Period
    sources: tuple[SourceRef, ...] = Field(min_length=1)


DoseKind = Literal["fixed", "per_kg", "per_m2", "fixed_to_per_kg", "at_least", "up_to_max", "up_to"]


class DoseRule(_Frozen):
    """How to compute one regimen's dose for a patient."""

    kind: DoseKind
    agent: str
    low: Decimal | None = None
    high: Decimal | None = None
    maximum: str | None = None
    unit: MassUnit
    period: Period
    note: str
    sources: tuple[SourceRef, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _needs_amounts(self) -> DoseRule:
        if self.kind in ("up_to_max", "up_to"):
            if self.maximum is None:
                raise ValueError(f"a '{self.kind}' rule needs 'maximum'")
        elif self.low is None or self.high is None:
            raise ValueError(f"a '{self.kind}' rule needs 'low' and 'high'")
        elif self.kind not in ("fixed_to_per_kg",) and self.low > self.high:
            raise ValueError("'low' is above 'high'")
        return self


class Caution(_Frozen):
    text: str = Field(min_length=5)
    sources: tuple[SourceRef, ...] = Field(min_length=1)


class Scenario(_Frozen):
    title: str
    summary: str
    sources: tuple[SourceRef, ...] = Field(min_length=1)


class AgentStep(_Frozen):
    agent: str
    regimens: tuple[str, ...] = ()
    max: str | None = None


class RecommendationTemplate(_Frozen):
    stance: Stance
    grade: Grade | None
    text: str = Field(min_length=10)
    agents: tuple[AgentStep, ...]
    cautions: tuple[str, ...]
    sources: tuple[SourceRef, ...] = Field(min_length=1)
    # Extra cautions shown only when interstitial lung disease is present.
    cautions_if_ild: tuple[str, ...] = ()
    # True where the step stays available after its agents failed on their own (the combination).
    offered_after_failure: bool = False


class LadderStep(_Frozen):
    step: int
    recommendations: tuple[str, ...] = Field(min_length=1)
    recommendations_pm: tuple[str, ...] | None = None
    note: str


class LiteratureItem(_Frozen):
    id: str
    display: str
    text: str
    sources: tuple[SourceRef, ...] = Field(min_length=1)


class WarningTemplate(_Frozen):
    text: str
    sources: tuple[SourceRef, ...] = ()


class Knowledge(_Frozen):
    """The whole encoded guideline; cross-references are checked when it is built."""

    knowledge_version: str = Field(pattern=r"^\d{4}\.\d{1,2}\.\d+$")
    title: str
    disclaimer: str
    documents: tuple[Document, ...]
    grades: Grades
    references: tuple[Reference, ...]
    citations: tuple[Citation, ...]
    agents: tuple[AgentInfo, ...]
    input_limits: InputLimits
    thresholds: Thresholds
    maxima: tuple[Maximum, ...]
    dose_rules: dict[str, DoseRule]
    cautions: dict[str, Caution]
    scenarios: dict[str, Scenario]
    recommendations: dict[str, RecommendationTemplate]
    ladder: tuple[LadderStep, ...]
    literature_only: tuple[LiteratureItem, ...]
    warnings: dict[str, WarningTemplate]

    _agent_index: dict[str, AgentInfo] = PrivateAttr(default_factory=dict)
    _rxnorm_index: dict[str, str] = PrivateAttr(default_factory=dict)
    _max_index: dict[str, Maximum] = PrivateAttr(default_factory=dict)

    @field_validator("references")
    @classmethod
    def _numbered_in_order(cls, refs: tuple[Reference, ...]) -> tuple[Reference, ...]:
        numbers = [r.number for r in refs]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError("references must be numbered 1..N in order")
        return refs

    @model_validator(mode="after")
    def _cross_references(self) -> Knowledge:
        errors: list[str] = []
        agent_ids = {a.id for a in self.agents}
        max_ids = {m.id for m in self.maxima}
        citation_ids = {c.id for c in self.citations}
        n_refs = len(self.references)

        def check_sources(where: str, sources: tuple[SourceRef, ...]) -> None:
            for i, s in enumerate(sources):
                errors.extend(
                    f"{where}.sources[{i}]: reference {n} is not in the list (1..{n_refs})"
                    for n in s.references
                    if not 1 <= n <= n_refs
                )
                errors.extend(
                    f"{where}.sources[{i}]: unknown citation '{c}'"
                    for c in s.citations
                    if c not in citation_ids
                )

        for m in self.maxima:
            if m.agent not in agent_ids:
                errors.append(f"maxima.{m.id}: unknown agent '{m.agent}'")
            check_sources(f"maxima.{m.id}", m.sources)
        for rid, rule in self.dose_rules.items():
            if rule.agent not in agent_ids:
                errors.append(f"dose_rules.{rid}: unknown agent '{rule.agent}'")
            if rule.maximum is not None and rule.maximum not in max_ids:
                errors.append(f"dose_rules.{rid}: unknown maximum '{rule.maximum}'")
            check_sources(f"dose_rules.{rid}", rule.sources)
        for cid, caution in self.cautions.items():
            check_sources(f"cautions.{cid}", caution.sources)
        for sid, scen in self.scenarios.items():
            check_sources(f"scenarios.{sid}", scen.sources)
        for rid, rec in self.recommendations.items():
            check_sources(f"recommendations.{rid}", rec.sources)
            for c in (*rec.cautions, *rec.cautions_if_ild):
                if c not in self.cautions:
                    errors.append(f"recommendations.{rid}: unknown caution '{c}'")
            for a in rec.agents:
                if a.agent not in agent_ids:
                    errors.append(f"recommendations.{rid}: unknown agent '{a.agent}'")
                if a.max is not None and a.max not in max_ids:
                    errors.append(f"recommendations.{rid}: unknown maximum '{a.max}'")
                for reg in a.regimens:
                    reg_rule = self.dose_rules.get(reg)
                    if reg_rule is None:
                        errors.append(f"recommendations.{rid}: unknown dose rule '{reg}'")
                    elif reg_rule.agent != a.agent:
                        errors.append(
                            f"recommendations.{rid}: dose rule '{reg}' is for "
                            f"'{reg_rule.agent}', not '{a.agent}'"
                        )
        for i, step in enumerate(self.ladder):
            if step.step != i + 1:
                errors.append(f"ladder[{i}].step: expected {i + 1}, found {step.step}")
            for rid in (*step.recommendations, *(step.recommendations_pm or ())):
                if rid not in self.recommendations:
                    errors.append(f"ladder[{i}]: unknown recommendation '{rid}'")
        for item in self.literature_only:
            check_sources(f"literature_only.{item.id}", item.sources)
        for wid, warning in self.warnings.items():
            check_sources(f"warnings.{wid}", warning.sources)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def model_post_init(self, context: object, /) -> None:
        """Build the lookup indexes once, after validation."""
        self._agent_index = {a.id: a for a in self.agents}
        self._rxnorm_index = {a.rxnorm: a.id for a in self.agents}
        self._max_index = {m.id: m for m in self.maxima}

    def agent(self, agent_id: str) -> AgentInfo:
        """Return the vocabulary entry of an agent id."""
        return self._agent_index[agent_id]

    def agent_for_rxnorm(self, code: str) -> str | None:
        """Return the agent id of an RxNorm ingredient code, or None."""
        return self._rxnorm_index.get(code)

    def maximum(self, max_id: str) -> Maximum:
        """Return a stated maximum by id."""
        return self._max_index[max_id]

    def agents_in_class(self, cls: str) -> frozenset[str]:
        """Return the ids of the agents in a class such as 'tnf_inhibitor'."""
        return frozenset(a.id for a in self.agents if cls in a.classes)
