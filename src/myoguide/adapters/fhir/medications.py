"""Medication resources and allergies sorted into current use (one dose per agent) and history."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, NamedTuple

from myoguide.adapters.fhir.agents import AgentFinder, NamedAgent
from myoguide.adapters.fhir.codes import (
    ALLERGY_VERIFICATION,
    MEDADMIN_ROLE,
    MEDDISPENSE_ROLE,
    MEDREQ_ROLE,
    MEDSTATEMENT_ROLE,
    NOT_ORDER_INTENTS,
)
from myoguide.adapters.fhir.courses import note_last_given, resource_date
from myoguide.adapters.fhir.doses import DoseReading, Problem, per_administration
from myoguide.adapters.fhir.doses import read_dose as read_dose  # drafts.py reads doses here
from myoguide.adapters.fhir.primitives import (
    SortKey,
    Warn,
    effective_time,
    period_dates,
    record_words,
    resource_label,
    shown,
    sort_key,
    status_code,
)
from myoguide.adapters.fhir.stopping import stop_outcome
from myoguide.adapters.words import unit_words
from myoguide.knowledge.terminology import Terminology


class Candidate(NamedTuple):
    """One resource saying an agent is in use: when it was written, its dose reading, itself."""

    key: SortKey
    reading: DoseReading
    resource: dict[str, Any]

    @property
    def label(self) -> str:
        """Return the resource's label; made only for a warning, which most uses never raise."""
        return resource_label(self.resource, self.key.position)


class Tried(NamedTuple):
    """One resource saying an agent was tried: its outcome, why it is unknown, how it was read."""

    outcome: str
    problem: str
    note: str
    label: str
    code: str


class MedicationReader(AgentFinder):
    """Sorts medication resources into current drugs (with doses), history and unresolved."""

    __slots__ = (
        "candidates",
        "courses",
        "current",
        "given",
        "history",
        "index",
        "rx",
        "term",
        "today",
        "tried",
        "unresolved",
        "warn",
    )

    def __init__(
        self,
        rx: Mapping[str, str],
        term: Terminology,
        index: Mapping[str, dict[str, Any]],
        warn: Warn,
        today: datetime.date,
    ) -> None:
        super().__init__(rx, term, index, warn)
        self.today = today
        self.current: dict[str, dict[str, Any]] = {}
        self.candidates: dict[str, list[Candidate]] = {}
        self.tried: dict[str, list[Tried]] = {}
        self.history: list[dict[str, str]] = []
        # Every resource that gave or ordered a course agent, read for `last_given` once the
        # current entries and history are settled.
        self.courses: list[tuple[str, dict[str, Any]]] = []
        # Course agents' administrations with a readable dose: (when, dose, its date), per agent.
        self.given: dict[str, list[tuple[SortKey, dict[str, Any], str]]] = {}

    def read(self, res: dict[str, Any], i: int) -> None:
        """Turn a medication resource or an allergy into a current drug, history or nothing."""
        kind = res.get("resourceType")
        if kind == "AllergyIntolerance":
            self.read_allergy(res, i)
            return
        if self.quiet and self.known_quiet(res.get("medicationCodeableConcept")):
            # Nothing is said before the drug is named, so a drug known quiet ends here.
            return
        status = res.get("status")
        dosages: object = None
        key = status if isinstance(status, str) else ""
        if kind == "MedicationRequest":
            if res.get("doNotPerform") is True:
                return
            role = MEDREQ_ROLE.get(key)
            intent = res.get("intent")
            if role is not None and isinstance(intent, str) and intent in NOT_ORDER_INTENTS:
                role = "not_ordered" if role != "ignore" else role
            dosages = res.get("dosageInstruction")
        elif kind == "MedicationAdministration":
            role = MEDADMIN_ROLE.get(key)
        elif kind == "MedicationDispense":
            role = MEDDISPENSE_ROLE.get(key)
        else:
            role = MEDSTATEMENT_ROLE.get(key)
            if res.get("taken") == "n":  # the STU3 shape some systems still send
                role = "ignore"
            dosages = res.get("dosage")
        if role == "ignore":
            return
        resolved = self.agent(res, i, "medicationCodeableConcept")
        if resolved is None:
            return
        agent = resolved.agent
        # The label only where it is used: a current order is labelled only if it warns.
        if role is None:
            self.warn(
                "medication_status_unclear",
                f"a {shown(agent)} record does not say whether it is being taken, was taken or was "
                "never given; not counted",
                resource_label(res, i),
            )
            return
        if role == "not_ordered":
            self.warn(
                "medication_not_ordered",
                f"{shown(agent)} is only proposed, planned or drafted, not ordered; not counted "
                "as in "
                "use or as tried",
                resource_label(res, i),
            )
            return
        self.courses.append((agent, res))
        if kind in ("MedicationAdministration", "MedicationDispense"):
            if kind == "MedicationAdministration" and res.get("status") != "stopped":
                self.note_given_dose(res, i, resolved)
            self.add_given(agent, res, resource_label(res, i), kind == "MedicationDispense")
            return
        if role == "current":
            timing = self.when_current(res, kind, dosages)
            if timing == "ended":
                self.warn(
                    "medication_ended",
                    f"the {shown(agent)} prescription's dates ended before the evaluation date; "
                    "counted "
                    "as tried, not as in use",
                    resource_label(res, i),
                )
                self.tried.setdefault(agent, []).append(
                    Tried(
                        "unknown",
                        "no reason for stopping is recorded",
                        "",
                        resource_label(res, i),
                        "",
                    )
                )
                return
            if timing == "future":
                self.warn(
                    "medication_not_started",
                    f"the {shown(agent)} prescription starts after the evaluation date; not "
                    "counted as "
                    "in use",
                    resource_label(res, i),
                )
                return
            if status == "on-hold":
                self.warn(
                    "medication_on_hold",
                    f"{shown(agent)} is on hold (paused, expected to resume); counted as in use",
                    resource_label(res, i),
                )
            reading = read_dose(dosages, resolved, self.term, self.today)
            written = res.get("authoredOn") if kind == "MedicationRequest" else None
            if written is None:
                written = res.get("dateAsserted") or effective_time(res)
            self.candidates.setdefault(agent, []).append(
                Candidate(sort_key(written, i), reading, res)
            )
            return
        self.add_history(agent, res, resource_label(res, i))

    def when_current(self, res: dict[str, Any], kind: object, dosages: object) -> str:
        """Say whether an active prescription is 'current', 'ended' or 'future' on the day."""
        today = self.today
        spans: list[tuple[datetime.date | None, datetime.date | None]] = []
        if kind == "MedicationRequest":
            dispense = res.get("dispenseRequest")
            if isinstance(dispense, dict):
                start, end = period_dates(dispense.get("validityPeriod"))
                if end is not None and end < today:
                    return "ended"
                if start is not None and start > today:
                    return "future"
        else:
            spans.append(period_dates(res.get("effectivePeriod")))
        if isinstance(dosages, list) and dosages:
            for dosage in dosages:
                timing = dosage.get("timing") if isinstance(dosage, dict) else None
                repeat = timing.get("repeat") if isinstance(timing, dict) else None
                bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
                spans.append(period_dates(bounds))
        if (None, None) in spans:
            return "current"  # a span open at both ends is neither ended nor yet to start
        if spans and all(end is not None and end < today for _, end in spans):
            return "ended"
        if spans and all(start is not None and start > today for start, _ in spans):
            return "future"
        return "current"

    def finish(self) -> None:
        """Settle one use per agent (the latest prescription's dose) and one history entry."""
        for agent, found in self.candidates.items():
            self.settle_current(agent, found)
        for agent, entries in self.tried.items():
            self.settle_tried(agent, entries)
        for agent, res in self.courses:
            note_last_given(self.current, self.history, agent, res, self.term.course_agents)

    def settle_current(self, agent: str, found: list[Candidate]) -> None:
        """Keep the latest prescription of an agent; renewals are one use with the latest dose."""
        # Most drugs have one prescription: nothing to order, no renewal or tie to weigh.
        if len(found) > 1 and self.settle_renewals(agent, found):
            return
        latest = found[-1]
        reading = latest.reading
        for code, message in reading.notes:
            self.warn(code, message, latest.label)
        given = (
            max(self.given.get(agent, ()), key=lambda g: g[0], default=None)
            if reading.dose is None
            else None
        )
        if reading.dose is None and given is not None:
            # The order states no readable amount; the latest infusion says what one is.
            _, dose, when = given
            said = "states no dose" if reading.code == "dose_missing" else "has no readable dose"
            on = f" on {when}" if when else ""
            self.warn(
                "dose_from_administration",
                f"the {shown(agent)} order {said}; the latest recorded administration"
                f"{on} ({dose['value']} {unit_words(dose['unit'])}) was used as the dose",
                latest.label,
            )
            self.current[agent] = {"agent": agent, "dose": dose}
        elif reading.dose is None:
            self.warn(
                reading.code,
                f"{reading.message}; {shown(agent)} listed without a dose",
                latest.label,
            )
            self.current[agent] = {"agent": agent}
            if reading.unreadable:
                self.unresolved.append(f"{shown(agent)} (dose not readable)")
        else:
            self.current[agent] = {"agent": agent, "dose": reading.dose}

    def settle_renewals(self, agent: str, found: list[Candidate]) -> bool:
        """Order an agent's prescriptions, latest last; say True if ties leave no dose."""
        found.sort(key=lambda c: c.key)
        latest = found[-1]
        ties = [c for c in found if c.key.dated and c.key[:2] == latest.key[:2]]
        doses = {repr(c.reading.dose) for c in ties} if len(ties) > 1 else set()
        if not latest.key.dated or len(doses) > 1:
            # Two prescriptions of one drug with no order between them, and different doses.
            self.warn(
                "medication_duplicate",
                f"{shown(agent)} is prescribed more than once at the same time with different or "
                "undated doses; listed once, without a dose",
                latest.label,
            )
            self.current[agent] = {"agent": agent}
            self.unresolved.append(f"{shown(agent)} (dose not readable)")
            return True
        self.warn(
            "medication_renewed",
            f"{shown(agent)} was prescribed {len(found)} times (renewals); the latest "
            "prescription's "
            "dose was used",
            latest.label,
        )
        return False

    def settle_tried(self, agent: str, entries: list[Tried]) -> None:
        """Add an agent's history entries: clinical outcomes, or one 'unknown' when none."""
        clinical = [e for e in entries if e.outcome != "unknown"]
        for entry in clinical:
            self.warn("history_outcome_read", f"{shown(agent)}: {entry.note}", entry.label)
            self.add_entry(agent, entry.outcome)
        if clinical or agent in self.current:
            # A finished course of a drug in use now is a renewal or an earlier course: the drug
            # counts as tried already, and an unknown outcome adds nothing.
            return
        first = entries[0]
        code = first.code or "history_outcome_unknown"
        self.warn(
            code,
            f"{shown(agent)} was taken before, but {first.problem}; counted as tried, "
            "outcome unknown",
            first.label,
        )
        self.add_entry(agent, "unknown")

    def add_history(self, agent: str, res: dict[str, Any], label: str) -> None:
        """Note a finished course with the outcome its stopping reason gives."""
        stopped = stop_outcome(res)
        # The note names the record (kind and date), so a card can point the clinician to it;
        # only a known outcome's note is ever shown.
        note = (
            ""
            if stopped.outcome == "unknown"
            else f"{stopped.note}, recorded in {record_words(res)}"
        )
        self.tried.setdefault(agent, []).append(
            Tried(stopped.outcome, stopped.problem, note, label, "")
        )

    def note_given_dose(self, res: dict[str, Any], i: int, resolved: NamedAgent) -> None:
        """Keep a course agent's administered amount (`dosage.dose`), per infusion, if readable.

        It is used only when the order in use states no readable dose; an unreadable one is
        passed over quietly, as the administration's other facts still count.
        """
        if resolved.agent not in self.term.course_agents:
            return
        dosage = res.get("dosage")
        quantity = dosage.get("dose") if isinstance(dosage, dict) else None
        if not isinstance(quantity, dict):
            return
        read = per_administration(quantity, resolved, self.term)
        if isinstance(read, Problem) or read[1]:
            return  # not a mass, or a unitless count: not taken as an infusion's amount
        when = resource_date(res) or ""
        key = sort_key(when or None, i)
        self.given.setdefault(resolved.agent, []).append((key, read[0], when))

    def add_given(self, agent: str, res: dict[str, Any], label: str, dispensed: bool) -> None:
        """Note a given or dispensed drug as tried; how the disease answered is unknown."""
        if res.get("status") == "stopped":
            self.add_history(agent, res, label)
            return
        what = "dispensed" if dispensed else "given"
        self.tried.setdefault(agent, []).append(
            Tried(
                "unknown",
                f"a record that it was {what} does not say whether it continues or how the "
                "disease answered",
                "",
                label,
                "administration_outcome_unknown",
            )
        )

    def read_allergy(self, res: dict[str, Any], i: int) -> None:
        """Add an intolerance to a guideline agent from an AllergyIntolerance."""
        verification = status_code(res.get("verificationStatus"), ALLERGY_VERIFICATION)
        if verification == "refuted" or verification == "entered-in-error":
            return
        resolved = self.agent(res, i, "code")
        if resolved is None:
            return
        category = res.get("category")
        medication = isinstance(category, list) and "medication" in category
        reaction = res.get("reaction")
        if res.get("type") == "intolerance" or (
            medication and isinstance(reaction, list) and bool(reaction)
        ):
            self.add_entry(resolved.agent, "intolerance")
            return
        self.warn(
            "allergy_not_counted",
            f"an allergy record names {shown(resolved.agent)} but is neither of type intolerance "
            "nor a "
            "medication allergy with a reaction; not counted as intolerance",
            resource_label(res, i),
        )
        self.unresolved.append(f"{shown(resolved.agent)} (allergy record not read)")

    def add_entry(self, agent: str, outcome: str) -> None:
        """Add a history entry once."""
        entry = {"agent": agent, "outcome": outcome}
        if entry not in self.history:
            self.history.append(entry)
