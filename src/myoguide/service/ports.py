"""The ports the use cases are written against: small protocols the adapters implement."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from myoguide.knowledge.model import Knowledge


class Clock(Protocol):
    """The time of day, read at the edge and handed in (UTC)."""

    def today(self) -> dt.date:
        """Return today's date (UTC)."""
        ...

    def now(self) -> dt.datetime:
        """Return the current instant (UTC, timezone-aware)."""
        ...


class DataWarning(Protocol):
    """A data-quality problem met while reading a record."""

    @property
    def code(self) -> str: ...

    @property
    def message(self) -> str: ...


class MappedRecord(Protocol):
    """A patient state derived from a record, with the problems met on the way."""

    @property
    def state(self) -> dict[str, Any]: ...

    @property
    def warnings(self) -> Sequence[DataWarning]: ...


class RecordReader(Protocol):
    """Reads a FHIR R4 Bundle into a raw patient state plus data warnings."""

    def __call__(
        self,
        bundle: Mapping[str, Any],
        *,
        evaluation_date: dt.date,
        rxnorm_to_agent: Mapping[str, str],
        knowledge: Knowledge,
    ) -> MappedRecord:
        """Return the patient state the Bundle describes, with data warnings."""
        ...


class DraftOrderReader(Protocol):
    """Reads one draft MedicationRequest as what it is: the agent and dose it would order."""

    def __call__(
        self,
        resource: Mapping[str, Any],
        *,
        rxnorm_to_agent: Mapping[str, str],
        evaluation_date: dt.date,
        knowledge: Knowledge,
        around: Sequence[object] = (),
    ) -> Mapping[str, Any] | None:
        """Return {agent, dose?} (dose as {value, unit}) or None if it names no one agent.

        around: the other FHIR values of the call (draftOrders, prefetch, the gathered chart)
        where a Medication the draft points to may be.
        """
        ...


# What part of a record a piece of gathered data is: the service decides what its loss means.
RecordPart = Literal["patient", "conditions", "medications", "measurements"]
# Parts without which scope cannot be judged: their loss is a 412, not a card.
ESSENTIAL_PARTS: frozenset[RecordPart] = frozenset({"patient", "conditions"})


class PrefetchMissing(Exception):
    """Prefetch data was absent and could not be fetched from the FHIR server."""


@dataclass(frozen=True)
class Unread:
    """A part of the record whose data is missing or incomplete, and its words for a person."""

    part: RecordPart
    words: str


@dataclass(frozen=True)
class Gathered:
    """The record a call's prefetch (and fetches) gave, and what could not be had."""

    bundle: dict[str, Any]
    notes: tuple[tuple[str, str], ...] = ()  # (code, message) about the data, for a person
    unread: tuple[Unread, ...] = ()  # in the order the prefetch keys are gathered


class RecordGatherer(Protocol):
    """Gathers the record a CDS Hooks call is about: its prefetch, fetched where absent."""

    @property
    def templates(self) -> Mapping[str, str]:
        """Return the prefetch templates it reads (what discovery asks the EHR for)."""
        ...

    def gather(self, call: Mapping[str, Any]) -> Gathered:
        """Return the gathered record; raise PrefetchMissing if a key can be had nowhere."""
        ...


class FhirClient(Protocol):
    """Reads from the EHR's FHIR server when prefetch is absent."""

    def read(self, base_url: str, query: str, access_token: str | None) -> Mapping[str, Any]:
        """Return the JSON resource or Bundle at `base_url/query`; raise LookupError if none."""
        ...


class FeedbackSink(Protocol):
    """Stores CDS Hooks feedback durably."""

    def record_feedback(
        self,
        service_id: str,
        body: object,
        knowledge_version: str,
        received_at: dt.datetime,
        summaries: Mapping[str, str] | None = None,
    ) -> int:
        """Validate and store a feedback body (ValueError names the field); return the count."""
        ...


class CardRegistry(Protocol):
    """The cards issued, by uuid, shared by every worker so feedback finds its card."""

    def remember(self, service_id: str, cards: Mapping[str, str]) -> None:
        """Record issued cards (uuid -> "topic: summary"), stamped with the time issued."""
        ...

    def summaries(self, uuids: Sequence[str]) -> Mapping[str, str]:
        """Return the known "topic: summary" of each uuid issued (unknown ones left out)."""
        ...


class ChartHandoffs(Protocol):
    """Validated states read from an EHR chart, kept a short while under an opaque token."""

    def put(self, state: Mapping[str, Any], warnings: Sequence[tuple[str, str]]) -> str:
        """Keep a state (contract JSON) and its data warnings; return the token for a link."""
        ...

    def take(self, token: str) -> tuple[dict[str, Any], list[tuple[str, str]]] | None:
        """Return the state and warnings kept under a live token, or None (unknown, expired)."""
        ...


class FeedbackReporter(Protocol):
    """Reports stored feedback for a person to read."""

    def report_text(self) -> str:
        """Return acceptance and override rates by card and reason, as text."""
        ...


class ReplayCache(Protocol):
    """Remembers which token ids (`jti`) have been used."""

    def seen(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Return True if (issuer, jti) was already recorded, else record it until expires_at."""
        ...


# ---- what the record store returns, as far as the use cases and pages read it ---------------


class Patient(Protocol):
    """A pseudonymous patient."""

    @property
    def id(self) -> int: ...

    @property
    def label(self) -> str: ...


class Visit(Protocol):
    """A dated snapshot of a patient's validated state."""

    @property
    def id(self) -> int: ...

    @property
    def visit_date(self) -> dt.date: ...

    @property
    def state(self) -> Mapping[str, Any]: ...


class Answer(Protocol):
    """An answer shown, as logged."""

    @property
    def id(self) -> int: ...

    @property
    def patient_id(self) -> int: ...

    @property
    def visit_id(self) -> int | None: ...

    @property
    def input(self) -> Mapping[str, Any]: ...

    @property
    def course(self) -> str: ...

    @property
    def top_recommendation(self) -> str | None: ...

    @property
    def result(self) -> Mapping[str, Any]: ...


class Decision(Protocol):
    """What the clinician decided about an answer."""

    @property
    def decision(self) -> str: ...

    @property
    def chosen_recommendation(self) -> str | None: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def reason_code(self) -> str | None: ...


class AnswerEntry(Protocol):
    """An answer with its decisions."""

    @property
    def answer(self) -> Answer: ...

    @property
    def decisions(self) -> Sequence[Decision]: ...


class VisitEntry(Protocol):
    """A visit with the answers shown at it."""

    @property
    def visit(self) -> Visit: ...

    @property
    def answers(self) -> Sequence[AnswerEntry]: ...


class PatientCourse(Protocol):
    """A patient's whole record: visits, answers and decisions, in order."""

    @property
    def visits(self) -> Sequence[VisitEntry]: ...


class RecordStore(Protocol):
    """Durable patients, visits, the answers shown and the decisions taken."""

    def add_patient(self, label: str) -> Patient:
        """Create a patient under a unique label (ValueError names `label`)."""
        ...

    def linked_patient(self, ehr_iss: str, ehr_link: str, label: str) -> Patient:
        """Return the patient linked to an EHR by a keyed hash of its patient id, made if new."""
        ...

    def list_patients(self) -> Sequence[Patient]:
        """Return a summary of every patient."""
        ...

    def get_patient(self, patient_id: int) -> Patient | None:
        """Return the patient, or None."""
        ...

    def add_visit(self, patient_id: int, visit_date: dt.date, state: Mapping[str, Any]) -> Visit:
        """Store a dated visit with its validated state."""
        ...

    def log_visit_answer(
        self,
        patient_id: int,
        visit_date: dt.date,
        state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: dt.datetime,
    ) -> tuple[int, int]:
        """Store a visit and the answer shown at it in one transaction; return both ids."""
        ...

    def save_visit_answer(
        self,
        patient_id: int,
        visit_date: dt.date,
        state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: dt.datetime,
        save_key: str | None,
    ) -> tuple[int, int, bool]:
        """Store a visit and its answer once per save key; return both ids and whether new."""
        ...

    def get_answer(self, answer_id: int) -> Answer | None:
        """Return the answer with this id, or None."""
        ...

    def log_answer(
        self,
        patient_id: int,
        visit_id: int | None,
        input_state: Mapping[str, Any],
        result: Mapping[str, Any],
        knowledge_version: str,
        shown_at: dt.datetime,
    ) -> int:
        """Log an answer shown; return its id."""
        ...

    def record_decision(
        self,
        answer_id: int,
        decision: str,
        chosen_recommendation: str | None,
        reason: str | None,
        decided_at: dt.datetime,
        *,
        clinician: str | None = None,
        reason_code: str | None = None,
    ) -> int:
        """Record what was decided about an answer, and by whom (LookupError if no answer)."""
        ...

    def timeline(self, patient_id: int) -> PatientCourse:
        """Return the patient's record in order."""
        ...

    def export_patient(self, patient_id: int) -> dict[str, Any]:
        """Return the patient's record as JSON-ready data."""
        ...
