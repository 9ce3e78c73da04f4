"""The schema of the encoded guideline: typed, validated at load, immutable afterwards."""

import weakref
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

Stance = Literal["recommended", "alternative", "reserved", "not_suggested"]
Grade = Literal["1A", "1B", "1C", "2A", "2B", "2C"]
Period = Literal["day", "week", "dose", "course"]
MassUnit = Literal["mg", "g"]
DocumentId = Literal["topic", "review"]
# What a warning asks of the clinician, and what it is about (ADR 0015; guideline.yaml warnings).
WarningLevel = Literal["stop", "check", "note"]
WarningScope = Literal["clinical", "record", "entry", "not_myositis"]
DoseKind = Literal[
    "fixed", "per_kg", "per_m2", "fixed_to_per_kg", "at_least", "up_to_max", "up_to", "unstated"
]
Text = Annotated[str, Meta(min_length=5)]
NonEmpty = Annotated[str, Meta(min_length=1)]


class SourceRef(Struct, frozen=True, forbid_unknown_fields=True):
    """A pointer to where an item comes from: document, section and reference numbers."""

    document: DocumentId
    section: NonEmpty
    references: tuple[Annotated[int, Meta(ge=1)], ...] = ()
    citations: tuple[str, ...] = ()


Sources = Annotated[tuple[SourceRef, ...], Meta(min_length=1)]


class Document(Struct, frozen=True, forbid_unknown_fields=True):
    id: DocumentId
    file: str
    title: str
    role: str


class Reference(Struct, frozen=True, forbid_unknown_fields=True):
    number: Annotated[int, Meta(ge=1)]
    citation: Text


class Citation(Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    citation: Text
    note: str
    outside_source: bool


class Grades(Struct, frozen=True, forbid_unknown_fields=True):
    scheme: str
    strength: dict[str, str]
    quality: dict[str, str]

    def explain(self, grade: str) -> str:
        """Return the plain-words meaning of a grade such as '2C'."""
        return f"{self.strength[grade[0]]} {self.quality[grade[1]]}"


class AgentInfo(Struct, frozen=True, forbid_unknown_fields=True):
    """One agent of the vocabulary: id, display name, RxNorm ingredient and classes."""

    id: str
    display: str
    rxnorm: Annotated[str, Meta(pattern=r"^[0-9]+$")] | None
    classes: tuple[str, ...]
    # The period a current dose of this agent is stated per (input validation and sums).
    dose_period: Literal["day", "week"] | None = None
    # Given as infusions or courses (rituximab, IVIG, cyclophosphamide): `last_given` applies and
    # a step that involves it while in use is never "continue" with the full regimen.
    given_as_course: bool = False


class Range(Struct, frozen=True, forbid_unknown_fields=True):
    min: Decimal
    max: Decimal


class DoseLimit(Struct, frozen=True, forbid_unknown_fields=True):
    """Input validation for a current dose, in mg per the agent's dose period; not advice."""

    refuse_above: Decimal
    warn_above: Decimal | None = None
    # Why the warning level is where it is, and where that figure comes from.
    warn_basis: str | None = None
    sources: tuple[SourceRef, ...] = ()


class InputLimits(Struct, frozen=True, forbid_unknown_fields=True):
    """Values no body or prescription can have (refused) and unusual ones (warned)."""

    age_years: Range
    weight_kg: Range
    height_cm: Range
    dose_mg_per_day_max: Decimal
    weight_kg_usual: Range
    bmi: Range
    bmi_usual: Range
    doses: dict[str, DoseLimit]
    # Glucocorticoids other than prednisone that are refused with advice, not converted: no
    # equivalence to prednisone has been verified for this knowledge (name -> display name).
    unconverted_glucocorticoids: dict[str, str] = {}


class Thresholds(Struct, frozen=True, forbid_unknown_fields=True):
    adult_age_years: Decimal
    prednisone_flare_boundary_mg_per_day: Decimal
    prednisone_weight_based_warning_mg_per_day: Decimal
    alkylating_min_failed_second_line: int
    # From this body mass index up, weight-based doses say the source names no weight basis.
    weight_basis_bmi_at_least: Decimal | None = None


class Maximum(Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    agent: str
    amount: Decimal
    unit: MassUnit
    period: Period
    sources: Sources


class TimingRule(Struct, frozen=True, forbid_unknown_fields=True):
    """How often and how many times a regimen is given (FHIR Timing.repeat)."""

    frequency: int | None = None
    period: Decimal | None = None
    period_unit: Literal["d", "wk", "mo"] | None = None
    count: int | None = None
    count_max: int | None = None


class DoseRule(Struct, frozen=True, forbid_unknown_fields=True):
    """How to compute one regimen's dose for a patient."""

    kind: DoseKind
    agent: str
    unit: MassUnit
    period: Period
    note: str
    sources: Sources
    low: Decimal | None = None
    high: Decimal | None = None
    maximum: str | None = None
    timing: TimingRule | None = None
    # A daily total given in this many doses (the split is shown beside the total).
    split: int | None = None


class Caution(Struct, frozen=True, forbid_unknown_fields=True):
    text: Text
    sources: Sources


class SeverityNotes(Struct, frozen=True, forbid_unknown_fields=True):
    """Where a flare's recorded severity places the prednisone dose, as the source says."""

    mild: Text
    moderate: Text
    # "{high}" is replaced by this patient's upper figure where the rule has one.
    severe: Text
    sources: Sources


class Scenario(Struct, frozen=True, forbid_unknown_fields=True):
    title: str
    summary: str
    sources: Sources


Action = Literal["start", "raise", "restart", "continue", "switch_to"]


class AgentStep(Struct, frozen=True, forbid_unknown_fields=True):
    """An agent a recommendation involves, what the step does with it, and its regimens."""

    agent: str
    regimens: tuple[str, ...] = ()
    max: str | None = None
    action: Action = "start"


class RecommendationTemplate(Struct, frozen=True, forbid_unknown_fields=True):
    stance: Stance
    grade: Grade | None
    text: Annotated[str, Meta(min_length=10)]
    agents: tuple[AgentStep, ...]
    cautions: tuple[str, ...]
    sources: Sources
    # Extra cautions shown only when interstitial lung disease is present.
    cautions_if_ild: tuple[str, ...] = ()
    # True where the step stays available after its agents failed on their own (the combination).
    offered_after_failure: bool = False
    # Wording used instead of `text` when the step has no sparing agent to raise alongside.
    text_alone: str | None = None
    # Plain words for the grade where the generic meaning would mislead (1C "reserve").
    grade_words: str | None = None
    # Agents of the step that are alternatives: one of them is added, not all (AZA or MTX).
    choose_one: tuple[str, ...] = ()
    # For a step that must come first: the words the options waiting on it show in `after`.
    enables: str | None = None


class LadderStep(Struct, frozen=True, forbid_unknown_fields=True):
    step: int
    recommendations: Annotated[tuple[str, ...], Meta(min_length=1)]
    note: str
    recommendations_pm: tuple[str, ...] | None = None


class R1Wiring(Struct, frozen=True, forbid_unknown_fields=True):
    """The recommendations scenario R1 (flare above 10 mg/day) offers."""

    add_sparing_agent: str
    manage_as_resistant: str


class R2Wiring(Struct, frozen=True, forbid_unknown_fields=True):
    """The recommendations scenario R2 (flare below 10 mg/day) offers."""

    raise_prednisone: str
    raise_sparing_agent: dict[str, str]


class R3Wiring(Struct, frozen=True, forbid_unknown_fields=True):
    """The recommendations scenario R3 (flare off prednisone on a sparing agent) offers."""

    restart_prednisone: str
    switch_to: dict[str, str]
    manage_as_resistant: str


class R4Wiring(Struct, frozen=True, forbid_unknown_fields=True):
    """The recommendations scenario R4 (flare off all immunosuppression) offers."""

    restart_prednisone: str
    sparing_agent: str
    # Offered when both sparing agents are closed (failed or not tolerated), as R3 does.
    manage_as_resistant: str


class Wiring(Struct, frozen=True, forbid_unknown_fields=True):
    """Which recommendation each rule of the engine offers; the export reads the same table."""

    sparing_agents: tuple[str, ...]
    flare_above_10mg: R1Wiring
    flare_below_10mg: R2Wiring
    flare_off_prednisone_on_sparing_agent: R3Wiring
    flare_off_immunosuppression: R4Wiring
    ild_refractory: str
    refractory_rash: str
    controlled: str
    # The first step when other diagnoses are recorded as not excluded (before any escalation).
    exclude_alternative_diagnoses: str
    # Cautions an order check shows when one of these agents is ordered (agent -> caution ids).
    order_cautions: dict[str, tuple[str, ...]] = {}

    def scenario_recommendations(self) -> dict[str, tuple[str, ...]]:
        """Return scenario id -> the recommendation ids its rule may offer, in order."""
        r1, r2, r3, r4 = (
            self.flare_above_10mg,
            self.flare_below_10mg,
            self.flare_off_prednisone_on_sparing_agent,
            self.flare_off_immunosuppression,
        )
        r1_ids = (r1.add_sparing_agent, r1.manage_as_resistant)
        r2_ids = (r2.raise_prednisone, *r2.raise_sparing_agent.values())
        return {
            "flare_above_10mg": r1_ids,
            "flare_below_10mg": r2_ids,
            "flare_at_10mg_boundary": (*r2_ids, *r1_ids),
            "flare_off_prednisone_on_sparing_agent": (
                r3.restart_prednisone,
                *r3.switch_to.values(),
                r3.manage_as_resistant,
            ),
            "flare_off_immunosuppression": (
                r4.restart_prednisone,
                r4.sparing_agent,
                r4.manage_as_resistant,
            ),
            "ild_refractory": (self.ild_refractory,),
            "controlled": (self.controlled,),
        }

    def all_ids(self) -> dict[str, str]:
        """Return every recommendation id the wiring names, keyed by its place in the table."""
        out: dict[str, str] = {
            "ild_refractory": self.ild_refractory,
            "refractory_rash": self.refractory_rash,
            "controlled": self.controlled,
            "exclude_alternative_diagnoses": self.exclude_alternative_diagnoses,
        }
        for name in (
            "flare_above_10mg",
            "flare_below_10mg",
            "flare_off_prednisone_on_sparing_agent",
            "flare_off_immunosuppression",
        ):
            for key, value in msgspec.structs.asdict(getattr(self, name)).items():
                if isinstance(value, dict):
                    out.update({f"{name}.{key}.{k}": v for k, v in value.items()})
                else:
                    out[f"{name}.{key}"] = value
        return out


class LiteratureItem(Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    display: str
    text: str
    sources: Sources


class WarningPolicy(Struct, frozen=True, forbid_unknown_fields=True):
    """How every door presents a warning: its level, whether it earns a card, its scope."""

    level: WarningLevel
    card: bool
    scope: WarningScope


# A warning the knowledge does not list (a FHIR reader's data problem): a thing to check.
UNLISTED_WARNING = WarningPolicy(level="check", card=False, scope="record")


class WarningTemplate(Struct, frozen=True, forbid_unknown_fields=True):
    text: str
    policy: WarningPolicy
    sources: tuple[SourceRef, ...] = ()


class LabelSource(Struct, frozen=True, forbid_unknown_fields=True):
    """A regulator's product label a check was read in: product, section, version and address."""

    regulator: Literal["FDA"]
    product: NonEmpty
    section: NonEmpty
    # The label's version or date as seen (an openFDA record's last_updated where no SPL version).
    version: NonEmpty
    url: Annotated[str, Meta(pattern=r"^https://")]
    set_id: str | None = None


class AgentCheck(Struct, frozen=True, forbid_unknown_fields=True):
    """One check before the first dose or while taking an agent, from outside the source review."""

    id: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$")]
    when: Literal["before_first_dose", "while_taking"]
    text: Text
    # The few words a summary line shows (see domain/prescribable.short_line).
    short: Annotated[str, Meta(min_length=3, max_length=40)]
    # Always true: none of these come from the source review; the model refuses false.
    outside_source: Literal[True]
    sources: Annotated[tuple[LabelSource, ...], Meta(min_length=1)]


class GivenAs(Struct, frozen=True, forbid_unknown_fields=True):
    """Which verified products (RxNorm codes of terminology.yaml) a dose of an agent is made of."""

    # Words for the unit group, as a prescriber reads them ("prednisone tablets").
    label: NonEmpty
    unit_word: NonEmpty
    products: Annotated[tuple[Annotated[str, Meta(pattern=r"^[0-9]+$")], ...], Meta(min_length=1)]


class Route(Struct, frozen=True, forbid_unknown_fields=True):
    """A route of administration: a SNOMED CT code of the FHIR route-codes value set."""

    code: Annotated[str, Meta(pattern=r"^[0-9]{6,18}$")]
    display: NonEmpty
    # Where the code was read, with the date it was read (a draft order carries it as coded).
    read_in: NonEmpty


class AgentPrescribing(Struct, frozen=True, forbid_unknown_fields=True):
    """What turns an agent's computed dose into one that can be given, and its checks."""

    checks: tuple[AgentCheck, ...] = ()
    given_as: GivenAs | None = None
    # The route a drafted order of this agent carries (a key of `routes`), and why this one.
    route: str | None = None
    route_basis: str = ""
    # Why an agent has no checks or no products here (a reader must not read silence as safe).
    note: str = ""


class Knowledge(Struct, frozen=True, forbid_unknown_fields=True, weakref=True):
    """The whole encoded guideline; cross-references are checked by `problems`."""

    knowledge_version: Annotated[str, Meta(pattern=r"^\d{4}\.\d{1,2}\.\d+$")]
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
    wiring: Wiring
    # Per scenario id: the severity notes its prednisone option carries.
    severity_notes: dict[str, SeverityNotes]
    literature_only: tuple[LiteratureItem, ...]
    warnings: dict[str, WarningTemplate]
    # Per agent: label checks (outside the source) and the products a dose is given as.
    prescribing: dict[str, AgentPrescribing] = {}
    # Routes of administration drafted orders carry, by the id `prescribing` names them with.
    routes: dict[str, Route] = {}
    # Where this knowledge was read from, set by the loader so errors can name the file.
    origin: str = ""

    def agent(self, agent_id: str) -> AgentInfo:
        """Return the vocabulary entry of an agent id."""
        return _index(self).agents[agent_id]

    def agent_for_rxnorm(self, code: str) -> str | None:
        """Return the agent id of an RxNorm ingredient code, or None."""
        return _index(self).rxnorm.get(code)

    def maximum(self, max_id: str) -> Maximum:
        """Return a stated maximum by id."""
        return _index(self).maxima[max_id]

    @property
    def agent_ids(self) -> tuple[str, ...]:
        """Return the agent vocabulary, in the knowledge's order."""
        return _index(self).ids

    @property
    def agent_id_set(self) -> frozenset[str]:
        """Return the agent vocabulary as a set, for membership tests."""
        return _index(self).id_set

    @property
    def agent_periods(self) -> dict[str, str]:
        """Return each agent's dose period ("day" or "week"), for agents that have one."""
        return {a.id: a.dose_period for a in self.agents if a.dose_period is not None}

    def warning_policy(self, code: str) -> WarningPolicy:
        """Return a warning's presentation policy; a `fhir.` code is read as the code it wraps."""
        found = self.warnings.get(code.removeprefix("fhir."))
        return found.policy if found is not None else UNLISTED_WARNING

    def warnings_in_scope(self, scope: WarningScope) -> frozenset[str]:
        """Return the codes of the knowledge's warnings of one scope."""
        return frozenset(c for c, w in self.warnings.items() if w.policy.scope == scope)

    def agents_in_class(self, cls: str) -> frozenset[str]:
        """Return the ids of the agents in a class such as 'tnf_inhibitor'."""
        return frozenset(a.id for a in self.agents if cls in a.classes)


class _Index(Struct):
    agents: dict[str, AgentInfo]
    rxnorm: dict[str, str]
    maxima: dict[str, Maximum]
    ids: tuple[str, ...]
    id_set: frozenset[str]


_INDEXES: dict[int, _Index] = {}


def _index(k: Knowledge) -> _Index:
    # Lookups are built once per Knowledge object and dropped with it (no object is pinned).
    hit = _INDEXES.get(id(k))
    if hit is None:
        ids = tuple(a.id for a in k.agents)
        hit = _Index(
            {a.id: a for a in k.agents},
            {a.rxnorm: a.id for a in k.agents if a.rxnorm is not None},
            {m.id: m for m in k.maxima},
            ids,
            frozenset(ids),
        )
        _INDEXES[id(k)] = hit
        weakref.finalize(k, _INDEXES.pop, id(k), None)
    return hit


def convert(raw: object) -> Knowledge:
    """Convert parsed YAML into a Knowledge (raises msgspec.ValidationError on bad shape)."""
    return msgspec.convert(raw, Knowledge)
