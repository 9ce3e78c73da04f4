"""Assessing a patient: a raw state, or a FHIR record, to its RecommendationSet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from myoguide.domain.engine import Engine
from myoguide.domain.result import RecommendationSet, Warning
from myoguide.domain.state import PatientState, parse_state
from myoguide.knowledge.model import Knowledge

if TYPE_CHECKING:
    # Annotations only: the ports module (protocols of every door) is not on the command's way.
    from myoguide.service.ports import Clock, MappedRecord, RecordReader


# msgspec Structs and a plain class, not dataclasses: defining a dataclass costs the command's
# start (issue 24).
class Chart(msgspec.Struct, frozen=True):
    """A patient state read from a record and validated, with the record's data warnings."""

    state: PatientState
    warnings: tuple[tuple[str, str], ...]  # (code, message)


class Assessment(msgspec.Struct, frozen=True):
    """A validated state and the answer for it."""

    state: PatientState
    result: RecommendationSet
    data_warnings: tuple[tuple[str, str], ...] = ()

    def result_with_data_warnings(self) -> RecommendationSet:
        """Return the answer with the record's data warnings appended as `fhir.<code>`."""
        extra = tuple(Warning(f"fhir.{code}", message) for code, message in self.data_warnings)
        return msgspec.structs.replace(self.result, warnings=self.result.warnings + extra)


class Service:
    """The assessment use cases every door calls: validate, read records, evaluate."""

    __slots__ = ("clock", "engine", "knowledge", "reader", "rxnorm_to_agent")

    def __init__(
        self,
        knowledge: Knowledge,
        engine: Engine,
        reader: RecordReader | None = None,  # None where no door reads FHIR records
        clock: Clock | None = None,  # None where no use case needs today's date
    ) -> None:
        self.knowledge = knowledge
        self.engine = engine
        self.reader = reader
        self.clock = clock
        # Built once: the knowledge does not change while the service lives.
        self.rxnorm_to_agent: Mapping[str, str] = {
            a.rxnorm: a.id for a in knowledge.agents if a.rxnorm
        }

    def parse(self, raw: object) -> PatientState:
        """Validate raw patient-state data; raises InputError naming the field."""
        return parse_state(raw, self.knowledge)

    def assess(self, raw: object) -> Assessment:
        """Validate raw patient-state data and answer it, keeping the validated state."""
        state = parse_state(raw, self.knowledge)
        return Assessment(state, self.engine.recommend(state))

    def recommend(self, raw: object) -> RecommendationSet:
        """Validate raw patient-state data and return its RecommendationSet."""
        return self.engine.recommend(parse_state(raw, self.knowledge))

    def today(self) -> dt.date:
        """Return today's date from the clock."""
        if self.clock is None:
            raise RuntimeError("this service was built without a clock")
        return self.clock.today()

    def map_record(self, bundle: Mapping[str, Any], evaluation_date: dt.date) -> MappedRecord:
        """Map a FHIR Bundle to a raw patient state with data warnings (the mapped record)."""
        if self.reader is None:
            raise RuntimeError("this service was built without a FHIR record reader")
        return self.reader(
            bundle,
            evaluation_date=evaluation_date,
            rxnorm_to_agent=self.rxnorm_to_agent,
            knowledge=self.knowledge,
        )

    def read_chart(self, bundle: Mapping[str, Any], evaluation_date: dt.date) -> Chart:
        """Map a FHIR Bundle to a validated state; raises InputError if it is unusable."""
        mapped = self.map_record(bundle, evaluation_date)
        warnings = tuple((w.code, w.message) for w in mapped.warnings)
        return Chart(self.parse(mapped.state), warnings)

    def assess_chart(self, chart: Chart) -> Assessment:
        """Answer a validated chart, keeping its data warnings beside the answer."""
        return Assessment(chart.state, self.engine.recommend(chart.state), chart.warnings)

    def assess_bundle(
        self, bundle: Mapping[str, Any], evaluation_date: dt.date | None = None
    ) -> RecommendationSet:
        """Answer a FHIR Bundle at a date (default today); data warnings join the answer."""
        when = evaluation_date if evaluation_date is not None else self.today()
        return self.assess_chart(self.read_chart(bundle, when)).result_with_data_warnings()
