"""Medication resources and allergies: the agent, current use or history, dose, outcome."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from myoguide.adapters.fhir.codes import (
    ADMINISTRATIVE_WORDS,
    ALLERGY_VERIFICATION,
    FORM_UNITS,
    INADEQUATE_WORDS,
    INTOLERANCE_CODES,
    INTOLERANCE_WORDS,
    MASS_UNITS,
    MEDADMIN_ROLE,
    MEDDISPENSE_ROLE,
    MEDREQ_ROLE,
    MEDREQ_STATUS_REASON,
    MEDSTATEMENT_ROLE,
    NOT_ORDER_INTENTS,
    PER_DAY,
    PER_WEEK,
    RXNORM,
)
from myoguide.adapters.fhir.courses import note_last_given
from myoguide.adapters.fhir.primitives import (
    DECIMAL_CONTEXT,
    DIGITS,
    SortKey,
    Warn,
    coding_codes,
    effective_time,
    period_dates,
    resource_label,
    shown,
    sort_key,
    status_code,
    to_decimal,
    to_number,
    ucum_code,
    unit_key,
)
from myoguide.knowledge.terminology import Product, Terminology, amount_decimal


class NamedAgent(NamedTuple):
    """The guideline agent a resource names, its Medication resource and RxNorm product if any."""

    agent: str
    medication: dict[str, Any] | None
    product: Product | None


class DoseReading(NamedTuple):
    """A normalised dose {value, unit} (with notes), or None with the warning saying why."""

    dose: dict[str, Any] | None
    code: str
    message: str
    # Whether the record states a dose that could not be read (rather than stating none).
    unreadable: bool = False
    notes: tuple[tuple[str, str], ...] = ()


class Mass(NamedTuple):
    """An amount of drug in mg or g."""

    amount: Decimal
    unit: str
    assumed: str = ""


class Schedule(NamedTuple):
    """How often a dose is taken: frequency per period of period_unit."""

    frequency: Decimal
    period: Decimal
    period_unit: str
    from_text: bool = False


class StopOutcome(NamedTuple):
    """The outcome a stopping reason gives, and why it is unknown when it is (else empty)."""

    outcome: str
    problem: str
    note: str = ""


class Problem(NamedTuple):
    """Why a dose could not be read: warning code and message."""

    code: str
    message: str


class Candidate(NamedTuple):
    """One resource saying an agent is in use: when it was written, its dose reading, its label."""

    key: SortKey
    reading: DoseReading
    label: str


class Tried(NamedTuple):
    """One resource saying an agent was tried: its outcome, why it is unknown, how it was read."""

    outcome: str
    problem: str
    note: str
    label: str
    code: str


class MedicationReader:
    """Sorts medication resources into current drugs (with doses), history and unresolved."""

    __slots__ = (
        "candidates",
        "courses",
        "current",
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
        self.rx = rx
        self.term = term
        self.index = index
        self.warn = warn
        self.today = today
        self.current: dict[str, dict[str, Any]] = {}
        self.candidates: dict[str, list[Candidate]] = {}
        self.tried: dict[str, list[Tried]] = {}
        self.history: list[dict[str, str]] = []
        # Every resource that gave or ordered a course agent, read for `last_given` once the
        # current entries and history are settled.
        self.courses: list[tuple[str, dict[str, Any]]] = []
        self.unresolved: list[str] = []

    def read(self, res: dict[str, Any], i: int) -> None:
        """Turn a medication resource or an allergy into a current drug, history or nothing."""
        kind = res.get("resourceType")
        if kind == "AllergyIntolerance":
            self.read_allergy(res, i)
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
        label = resource_label(res, i)
        if role is None:
            self.warn(
                "medication_status_unclear",
                f"a {shown(agent)} record does not say whether it is being taken, was taken or was "
                "never given; not counted",
                label,
            )
            return
        if role == "not_ordered":
            self.warn(
                "medication_not_ordered",
                f"{shown(agent)} is only proposed, planned or drafted, not ordered; not counted "
                "as in "
                "use or as tried",
                label,
            )
            return
        self.courses.append((agent, res))
        if kind in ("MedicationAdministration", "MedicationDispense"):
            self.add_given(agent, res, label, kind == "MedicationDispense")
            return
        if role == "current":
            timing = self.when_current(res, kind, dosages)
            if timing == "ended":
                self.warn(
                    "medication_ended",
                    f"the {shown(agent)} prescription's dates ended before the evaluation date; "
                    "counted "
                    "as tried, not as in use",
                    label,
                )
                self.tried.setdefault(agent, []).append(
                    Tried("unknown", "no reason for stopping is recorded", "", label, "")
                )
                return
            if timing == "future":
                self.warn(
                    "medication_not_started",
                    f"the {shown(agent)} prescription starts after the evaluation date; not "
                    "counted as "
                    "in use",
                    label,
                )
                return
            if status == "on-hold":
                self.warn(
                    "medication_on_hold",
                    f"{shown(agent)} is on hold (paused, expected to resume); counted as in use",
                    label,
                )
            reading = read_dose(dosages, resolved, self.term, self.today)
            written = res.get("authoredOn") if kind == "MedicationRequest" else None
            if written is None:
                written = res.get("dateAsserted") or effective_time(res)
            self.candidates.setdefault(agent, []).append(
                Candidate(sort_key(written, i), reading, label)
            )
            return
        self.add_history(agent, res, label)

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
            note_last_given(self.current, self.history, agent, res)

    def settle_current(self, agent: str, found: list[Candidate]) -> None:
        """Keep the latest prescription of an agent; renewals are one use with the latest dose."""
        found.sort(key=lambda c: c.key)
        latest = found[-1]
        ties = [c for c in found if c.key.dated and c.key[:2] == latest.key[:2]]
        doses = {repr(c.reading.dose) for c in ties} if len(ties) > 1 else set()
        if len(found) > 1 and (not latest.key.dated or len(doses) > 1):
            # Two prescriptions of one drug with no order between them, and different doses.
            self.warn(
                "medication_duplicate",
                f"{shown(agent)} is prescribed more than once at the same time with different or "
                "undated doses; listed once, without a dose",
                latest.label,
            )
            self.current[agent] = {"agent": agent}
            self.unresolved.append(f"{shown(agent)} (dose not readable)")
            return
        if len(found) > 1:
            self.warn(
                "medication_renewed",
                f"{shown(agent)} was prescribed {len(found)} times (renewals); the latest "
                "prescription's "
                "dose was used",
                latest.label,
            )
        reading, label = latest.reading, latest.label
        for code, message in reading.notes:
            self.warn(code, message, label)
        if reading.dose is None:
            self.warn(
                reading.code, f"{reading.message}; {shown(agent)} listed without a dose", label
            )
            self.current[agent] = {"agent": agent}
            if reading.unreadable:
                self.unresolved.append(f"{shown(agent)} (dose not readable)")
        else:
            self.current[agent] = {"agent": agent, "dose": reading.dose}

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

    def agent(self, res: dict[str, Any], i: int, field: str) -> NamedAgent | None:
        """Return the agent a resource names (by code, else by name), or None after warning."""
        medication: dict[str, Any] | None = None
        concept = res.get(field)
        if not isinstance(concept, dict) and field == "medicationCodeableConcept":
            label = resource_label(res, i)
            ref = res.get("medicationReference")
            target = ref.get("reference") if isinstance(ref, dict) else None
            if not isinstance(target, str):
                self.warn(
                    "medication_missing",
                    "a medication record does not name its drug; listed as unresolved",
                    label,
                )
                self.unresolved.append(f"medication not named ({label})")
                return None
            medication = self.resolve(target, res)
            if medication is None:
                self.warn(
                    "medication_reference_unresolved",
                    "a medication record points to a drug description that is not in the "
                    "record; listed as "
                    "unresolved",
                    label,
                )
                self.unresolved.append(f"medication reference not found ({label})")
                return None
            concept = medication.get("code")
        concepts = [concept]
        if medication is not None:
            ingredients = medication.get("ingredient")
            if isinstance(ingredients, list):
                concepts += [
                    item.get("itemCodeableConcept")
                    for item in ingredients
                    if isinstance(item, dict)
                ]
        codes = coding_codes(concept, RXNORM)
        agents, products = self.by_codes(codes)
        if not agents and len(concepts) > 1:
            for extra in concepts[1:]:
                found = coding_codes(extra, RXNORM)
                codes.extend(found)
                more, _ = self.by_codes(found)
                agents.update(more)
        if len(agents) == 1:
            product = products[0] if len(products) == 1 else None
            return NamedAgent(agents.pop(), medication, product)
        label = resource_label(res, i)  # only a drug not resolved by code is warned about
        if agents:
            named = ", ".join(shown(a) for a in sorted(agents))
            self.warn(
                "medication_ambiguous",
                f"the medication codes name more than one agent ({named}); skipped",
                label,
            )
            self.unresolved.append(f"medication naming {named} ({label})")
            return None
        return self.by_name(concepts, codes, medication, label)

    def by_codes(self, codes: list[str]) -> tuple[set[str], list[Product]]:
        """Return the agents RxNorm codes name, and the products among them."""
        agents: set[str] = set()
        products: list[Product] = []
        for code in codes:
            agent = self.rx.get(code)
            coded = self.term.agent_for_code(code)
            if coded is not None:
                agent = agent or coded.agent
                if coded.product is not None and coded.agent == agent:
                    products.append(coded.product)
            if agent is not None:
                agents.add(agent)
        return agents, products

    def by_name(
        self,
        concepts: list[object],
        codes: list[str],
        medication: dict[str, Any] | None,
        label: str,
    ) -> NamedAgent | None:
        """Identify a drug by its names through the terminology, when its codes give no agent."""
        names = [n for c in concepts for n in concept_names(c)]
        matches = [self.term.agent_for_name(n) for n in names]
        named = {a for m in matches if m.kind == "agent" for a in m.agents}
        near = {a for m in matches if m.kind == "resembles" for a in m.agents}
        if codes:
            # An RxNorm-coded drug whose name is only spelled like an agent (prednisolone,
            # mycophenolic acid) is another drug: a coded name is no misspelling.
            matches = [m for m in matches if m.kind != "near"]
        near |= {a for m in matches if m.kind == "near" for a in m.agents}
        topical = {a for m in matches if m.kind == "topical" for a in m.agents}
        if topical and not named and not near:
            like = ", ".join(shown(a) for a in sorted(topical))
            self.warn(
                "medication_topical",
                f"{like} in a form for the skin or eye is not systemic treatment; left out",
                label,
            )
            return None
        digits = ", ".join(c for c in codes if DIGITS.fullmatch(c))
        if len(named) == 1 and near <= named:
            agent = next(iter(named))
            self.warn(
                "medication_matched_by_name",
                f"{shown(agent)} was identified by its name, not by a drug code this tool knows"
                + (f" (RxNorm {digits})" if digits else ""),
                label,
            )
            return NamedAgent(agent, medication, None)
        if named or near:
            like = ", ".join(shown(a) for a in sorted(named | near))
            self.warn(
                "medication_unresolved",
                f"the medication's name resembles {like} but does not identify it; not counted "
                "as that agent, listed as unresolved",
                label,
            )
            self.unresolved.append(f"medication resembling {like} ({label})")
            return None
        if names:
            return None  # a named drug that is no guideline agent: nothing to say
        if codes:
            self.warn(
                "medication_code_unknown",
                f"a drug coded only as RxNorm {digits or '(code not shown)'}, with no name, "
                "could not "
                "be identified; listed as unresolved",
                label,
            )
            self.unresolved.append(f"RxNorm {digits or 'code'} not identified ({label})")
            return None
        self.warn(
            "medication_not_coded",
            "a medication record has no drug code and no name; listed as unresolved",
            label,
        )
        self.unresolved.append(f"medication without code or name ({label})")
        return None

    def resolve(self, target: str, res: dict[str, Any]) -> dict[str, Any] | None:
        """Find the Medication a reference points to: contained, by fullUrl or by type and id."""
        if target.startswith("#"):
            contained = res.get("contained")
            if isinstance(contained, list):
                for item in contained:
                    if (
                        isinstance(item, dict)
                        and item.get("resourceType") == "Medication"
                        and item.get("id") == target[1:]
                    ):
                        return item
            return None
        found = self.index.get(target)
        if found is None and "Medication/" in target:
            tail = target.rsplit("Medication/", 1)[1].split("/", 1)[0]
            found = self.index.get(f"Medication/{tail}")
        return found

    def add_history(self, agent: str, res: dict[str, Any], label: str) -> None:
        """Note a finished course with the outcome its stopping reason gives."""
        stopped = stop_outcome(res)
        self.tried.setdefault(agent, []).append(
            Tried(stopped.outcome, stopped.problem, stopped.note, label, "")
        )

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


def concept_names(concept: object) -> list[str]:
    """Return the names a CodeableConcept gives: its text and its codings' displays."""
    out: list[str] = []
    if isinstance(concept, dict):
        text = concept.get("text")
        if isinstance(text, str) and text.strip():
            out.append(text)
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                display = coding.get("display") if isinstance(coding, dict) else None
                if isinstance(display, str) and display.strip():
                    out.append(display)
    return out


def read_dose(
    dosages: object, resolved: NamedAgent, term: Terminology, today: datetime.date
) -> DoseReading:
    """Return a normalised dose {value, unit}, or None with a warning code and message."""
    if not isinstance(dosages, list) or not dosages:
        return DoseReading(None, "dose_missing", "no dose is given")
    if len(dosages) == 1:
        return read_line(dosages[0], resolved, term)
    # Lines with one sequence number are taken together; different numbers follow each other.
    groups: dict[object, list[object]] = {}
    for n, dosage in enumerate(dosages):
        seq = dosage.get("sequence") if isinstance(dosage, dict) else None
        groups.setdefault(seq if isinstance(seq, int) else ("line", n), []).append(dosage)
    now = [g for g in groups.values() if line_span(g, today) == "current"]
    if len(now) > 1 and any(isinstance(k, tuple) for k in groups):
        # Without sequence numbers FHIR does not say whether lines follow or add up.
        return DoseReading(
            None,
            "dose_ambiguous",
            "the order has several dosage lines without an order between them",
            True,
        )
    if not now:
        return DoseReading(
            None,
            "dose_ambiguous",
            "none of the dosage lines applies on the evaluation date",
            True,
        )
    readings = [group_dose(g, resolved, term) for g in now]
    notes: tuple[tuple[str, str], ...] = ()
    if len(now) < len(groups):
        notes = (
            (
                "dose_line_by_dates",
                f"the {shown(resolved.agent)} order has several dosage lines; the one whose "
                "dates cover "
                "the evaluation date was used",
            ),
        )
    if len(readings) == 1:
        only = readings[0]
        return only._replace(notes=only.notes + notes)
    notes += tuple(dict.fromkeys(n for r in readings for n in r.notes))
    doses = [r.dose for r in readings]
    if any(d is None for d in doses) or len({d["unit"] for d in doses if d}) != 1:
        return DoseReading(
            None,
            "dose_ambiguous",
            "the order has several dosage lines and which one is taken now is not stated",
            True,
        )
    values = sorted(Decimal(repr(d["value"])) for d in doses if d)
    unit = doses[0]["unit"] if doses[0] else ""
    high = max((d for d in doses if d), key=lambda d: Decimal(repr(d["value"])))
    if values[0] == values[-1]:
        return DoseReading(high, "", "", notes=notes)
    per_mg = Decimal(1000) if unit.startswith("g/") else Decimal(1)
    boundary = term.flare_boundary_mg_per_day  # the knowledge's flare boundary
    if (
        resolved.agent == "prednisone"
        and boundary is not None
        and (
            values[0] * per_mg < boundary < values[-1] * per_mg
            or values[0] * per_mg == boundary
            or values[-1] * per_mg == boundary
        )
    ):
        return DoseReading(
            None,
            "dose_ambiguous",
            f"the dosage lines give {values[0]} to {values[-1]} {unit}, on both sides of "
            "10 mg/day, and which one is taken now is not stated",
            True,
        )
    return DoseReading(
        high,
        "",
        "",
        notes=(
            *notes,
            (
                "dose_lines",
                f"the {shown(resolved.agent)} order has several dosage lines ({values[0]} to "
                f"{values[-1]} {unit}) and which one is taken now is not stated; the answer does "
                "not depend on which, and the highest was used",
            ),
        ),
    )


def line_span(group: list[object], today: datetime.date) -> str:
    """Say whether dosage lines taken together apply on the day: 'current', 'ended', 'future'."""
    spans = []
    for dosage in group:
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        repeat = timing.get("repeat") if isinstance(timing, dict) else None
        spans.append(period_dates(repeat.get("boundsPeriod") if isinstance(repeat, dict) else None))
    if all(end is not None and end < today for _, end in spans):
        return "ended"
    if all(start is not None and start > today for start, _ in spans):
        return "future"
    return "current"


def group_dose(group: list[object], resolved: NamedAgent, term: Terminology) -> DoseReading:
    """Return the dose of dosage lines taken together (their sum), or why it cannot be read."""
    readings = [read_line(d, resolved, term) for d in group]
    if len(readings) == 1:
        return readings[0]
    for reading in readings:
        if reading.dose is None:
            return reading
    units = {r.dose["unit"] for r in readings if r.dose}
    if len(units) != 1:
        return DoseReading(
            None, "dose_unit_unknown", "dosage lines taken together use different units", True
        )
    total = sum((Decimal(repr(r.dose["value"])) for r in readings if r.dose), Decimal(0))
    number = to_number(total)
    notes = tuple(n for r in readings for n in r.notes)
    if number is None:
        return DoseReading(None, "dose_unparseable", "the dose is not a usable number", True)
    return DoseReading({"value": number, "unit": units.pop()}, "", "", notes=notes)


def read_line(dosage: object, resolved: NamedAgent, term: Terminology) -> DoseReading:
    """Return the dose of one dosage line."""
    if not isinstance(dosage, dict):
        return DoseReading(None, "dose_unparseable", "the dose is not readable", True)
    if dosage.get("asNeededBoolean") is True or dosage.get("asNeededCodeableConcept") is not None:
        return DoseReading(
            None, "dose_as_needed", "the dose is taken as needed, not regularly", True
        )
    rates = dosage.get("doseAndRate")
    first = rates[0] if isinstance(rates, list) and rates else None
    quantity = first.get("doseQuantity") if isinstance(first, dict) else None
    dose_range = first.get("doseRange") if isinstance(first, dict) else None
    if not isinstance(quantity, dict) and not isinstance(dose_range, dict):
        text = dosage.get("text")
        if isinstance(text, str) and text.strip():
            # A free-text sig is not parsed: reading numbers out of prose is guessing.
            return DoseReading(
                None, "dose_text_only", "the dose is written as free text only (not read)", True
            )
        return DoseReading(None, "dose_missing", "the dosage states no amount")
    schedule = read_schedule(dosage, term)
    if isinstance(schedule, Problem):
        return DoseReading(None, schedule.code, schedule.message, True)
    notes: tuple[tuple[str, str], ...] = ()
    if schedule.from_text:
        notes = (
            (
                "dose_timing_from_text",
                f"the {shown(resolved.agent)} dose is read as once a week from the written "
                "instructions, not from a coded schedule",
            ),
        )
    if isinstance(quantity, dict):
        total = per_period(quantity, schedule, resolved, term)
        if isinstance(total, Problem):
            return DoseReading(None, total.code, total.message, True)
        dose, assumed = total
        if assumed:
            notes += (
                (
                    "dose_unit_assumed",
                    f"the {shown(resolved.agent)} dose states no unit; it was read as a count of "
                    f"{assumed}s of the prescribed product's strength",
                ),
            )
        return DoseReading(dose, "", "", notes=notes)
    assert isinstance(dose_range, dict)
    ranged = read_range(dose_range, schedule, resolved, term)
    return ranged._replace(notes=notes + ranged.notes)


def read_range(
    dose_range: dict[str, Any], schedule: Schedule, resolved: NamedAgent, term: Terminology
) -> DoseReading:
    """Return a doseRange as its high end, with a warning naming the range."""
    agent = resolved.agent
    high_q, low_q = dose_range.get("high"), dose_range.get("low")
    high_read = per_period(high_q, schedule, resolved, term) if isinstance(high_q, dict) else None
    high = None if high_read is None or isinstance(high_read, Problem) else high_read[0]
    if high is None:
        return DoseReading(
            None, "dose_range_unusable", "the dose range has no readable high end", True
        )
    low_read = per_period(low_q, schedule, resolved, term) if isinstance(low_q, dict) else None
    low = None if low_read is None or isinstance(low_read, Problem) else low_read[0]
    unit = high["unit"]
    if isinstance(low, dict) and low["unit"] == unit:
        span = f"{low['value']} to {high['value']} {unit}"
    else:
        span = f"up to {high['value']} {unit} (low end not readable)"
    message = f"{shown(agent)} is ordered as a dose range, {span}; the high end is used as the dose"
    if agent == "prednisone" and isinstance(low, dict) and low["unit"] == unit:
        per_mg = Decimal(1000) if unit.startswith("g/") else Decimal(1)
        lo = Decimal(repr(low["value"])) * per_mg
        hi = Decimal(repr(high["value"])) * per_mg
        boundary = term.flare_boundary_mg_per_day  # the knowledge's flare boundary
        if lo < hi and boundary is not None and lo <= boundary <= hi:
            message += "; the range spans the 10 mg/day prednisone boundary"
    return DoseReading(high, "", "", notes=(("dose_range", message),))


def read_schedule(dosage: dict[str, Any], term: Terminology) -> Schedule | Problem:
    """Return how often a dose is taken: timing.repeat, a known timing.code, or 'weekly' text."""
    timing = dosage.get("timing")
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    code = timing.get("code") if isinstance(timing, dict) else None
    if isinstance(repeat, dict) and (repeat.get("period") is not None or code is None):
        frequency = to_decimal(repeat.get("frequency", 1))
        period = to_decimal(repeat.get("period"))
        period_unit = repeat.get("periodUnit")
        if period is None and not weekly_text(dosage, code):
            return Problem("dose_timing_unparseable", "the dose schedule states no period")
        if period is None:
            return Schedule(Decimal(1), Decimal(1), "wk", True)
        if frequency is None or frequency <= 0 or period <= 0:
            return Problem("dose_timing_unparseable", "the dose schedule is not readable")
        if not isinstance(period_unit, str) or period_unit not in PER_DAY:
            return Problem(
                "dose_timing_unsupported",
                "the dose schedule is not in hours, days or weeks",
            )
        return Schedule(frequency, period, period_unit)
    if code is not None:
        for found in coding_codes(code, term.file.timing.system):
            known = term.timing_codes.get(found)
            if known is not None:
                return Schedule(
                    Decimal(known.frequency), Decimal(repr(known.period)), known.period_unit
                )
    if weekly_text(dosage, code):
        # QW or "weekly" is no code of the timing code system; written words are read, warned.
        return Schedule(Decimal(1), Decimal(1), "wk", True)
    if code is None:
        return Problem("dose_timing_missing", "the dose states no schedule")
    return Problem(
        "dose_timing_unsupported",
        "the dose schedule is a code this tool does not read",
    )


_WEEKLY = re.compile(r"\b(q\.?\s?1?\s?w(k|eek)?\.?|once\s+(a|per|every)\s+week|weekly)\b", re.I)


def weekly_text(dosage: dict[str, Any], code: object) -> bool:
    """Return whether the written instructions (or the timing code's text) say once a week."""
    texts = [dosage.get("text"), dosage.get("patientInstruction")]
    if isinstance(code, dict):
        texts.append(code.get("text"))  # the words, never a code from the wrong code system
    return any(isinstance(t, str) and _WEEKLY.search(t) is not None for t in texts)


def per_period(
    quantity: dict[str, Any], schedule: Schedule, resolved: NamedAgent, term: Terminology
) -> tuple[dict[str, Any], str] | Problem:
    """Return one dose quantity on a schedule as {value, unit} per day or week (and any form
    assumed for a unitless count)."""
    amount = to_decimal(quantity.get("value"))
    if amount is None or amount < 0:
        return Problem("dose_unparseable", "the dose value is not a non-negative number")
    mass = to_mass(amount, quantity, resolved, term)
    if mass is None:
        return Problem(
            "dose_unit_unknown",
            "the dose unit is not a mass, and no product strength converts it",
        )
    agent = resolved.agent
    # The state wants each agent's dose per its period in the knowledge (term.agent_periods);
    # an agent without one keeps the period its timing is written in.
    period = term.agent_periods.get(agent)
    weekly = period == "week" or (period is None and schedule.period_unit == "wk")
    multiplier, divisor = (PER_WEEK if weekly else PER_DAY)[schedule.period_unit]
    try:
        total = DECIMAL_CONTEXT.divide(
            DECIMAL_CONTEXT.multiply(
                DECIMAL_CONTEXT.multiply(mass.amount, schedule.frequency), Decimal(multiplier)
            ),
            DECIMAL_CONTEXT.multiply(schedule.period, Decimal(divisor)),
        )
    except ArithmeticError:
        total = Decimal("NaN")
    number = to_number(total)
    if number is None:
        return Problem("dose_unparseable", "the dose does not give a usable number")
    return {"value": number, "unit": f"{mass.unit}/{'week' if weekly else 'day'}"}, mass.assumed


def to_mass(
    amount: Decimal, quantity: dict[str, Any], resolved: NamedAgent, term: Terminology
) -> Mass | None:
    """Return a dose quantity in mg or g: a mass unit, or units of a form times its strength."""
    written = ucum_code(quantity)
    ucum = term.ucum(written) if written is not None else None
    if ucum is not None and ucum in MASS_UNITS:
        factor, unit = MASS_UNITS[ucum]
        return Mass(DECIMAL_CONTEXT.multiply(amount, factor), unit)
    form = form_unit(quantity, term)
    product = resolved.product
    assumed = ""
    if written is None and product is not None and product.per in ("tablet", "capsule"):
        # A count with no unit on a tablet or capsule product (as Synthea writes doses).
        form = assumed = product.per
    if form is not None and product is not None and product.per == form:
        try:
            strength = amount_decimal(product.amount)
            return Mass(DECIMAL_CONTEXT.multiply(amount, strength), product.amount.unit, assumed)
        except ArithmeticError:
            return None
    return dose_by_strength(amount, quantity, resolved.medication)


def form_unit(quantity: dict[str, Any], term: Terminology) -> str | None:
    """Return the dose form a quantity counts (tablet, capsule, mL), from its code or unit."""
    for key in ("code", "unit"):
        value = quantity.get(key)
        if isinstance(value, str):
            spelled = value.strip()
            form = FORM_UNITS.get(spelled) or FORM_UNITS.get(spelled.lower())
            if form is None and term.ucum(spelled) == "mL":
                form = "mL"
            if form is not None:
                return form
    return None


def dose_by_strength(
    amount: Decimal, quantity: dict[str, Any], medication: dict[str, Any] | None
) -> Mass | None:
    """Convert a dose in units of a form (tablets) to mg or g by the Medication's one strength."""
    unit = unit_key(quantity)
    if medication is None or unit is None:
        return None
    ingredients = medication.get("ingredient")
    if not isinstance(ingredients, list):
        return None
    strengths = [
        s
        for s in (i.get("strength") for i in ingredients if isinstance(i, dict))
        if isinstance(s, dict)
    ]
    if len(strengths) != 1:
        return None
    numerator, denominator = strengths[0].get("numerator"), strengths[0].get("denominator")
    if not isinstance(numerator, dict) or not isinstance(denominator, dict):
        return None
    mass = ucum_code(numerator)
    per = to_decimal(numerator.get("value"))
    each = to_decimal(denominator.get("value", 1))
    if (
        (mass != "mg" and mass != "g")
        or per is None
        or per < 0
        or each is None
        or each <= 0
        or unit_key(denominator) != unit
    ):
        return None
    try:
        return Mass(DECIMAL_CONTEXT.divide(DECIMAL_CONTEXT.multiply(amount, per), each), mass)
    except ArithmeticError:
        return None


def stop_outcome(res: dict[str, Any]) -> StopOutcome:
    """Return the outcome a stopping reason gives, and why it is unknown when it is.

    Only why a drug was stopped counts; why it was started (the indication) never does.
    """
    concepts: list[dict[str, Any]] = []
    for name in ("statusReason", "statusReasonCodeableConcept"):
        value = res.get(name)
        if isinstance(value, dict):
            concepts.append(value)
        elif isinstance(value, list):
            concepts.extend(v for v in value if isinstance(v, dict))
    if not concepts:
        return StopOutcome("unknown", "no reason for stopping is recorded")
    codes = [c for concept in concepts for c in coding_codes(concept, MEDREQ_STATUS_REASON)]
    if any(code in INTOLERANCE_CODES for code in codes):
        return StopOutcome(
            "intolerance", "", "stopped for a suspected allergy or intolerance (coded reason)"
        )
    blob = " | ".join(name.lower() for concept in concepts for name in concept_names(concept))
    if codes or any(word in blob for word in ADMINISTRATIVE_WORDS):
        return StopOutcome(
            "unknown",
            "the reason it was stopped is practical (not about how it worked or was tolerated)",
        )
    inadequate = any(word in blob for word in INADEQUATE_WORDS)
    intolerance = any(word in blob for word in INTOLERANCE_WORDS)
    if inadequate and intolerance:
        return StopOutcome(
            "unknown", "the stopping reason names both lack of effect and intolerance"
        )
    if inadequate:
        return StopOutcome(
            "inadequate_response", "", "stopped for lack of effect, as the stopping reason words it"
        )
    if intolerance:
        return StopOutcome(
            "intolerance", "", "stopped for intolerance, as the stopping reason words it"
        )
    return StopOutcome(
        "unknown", "the stopping reason names neither lack of effect nor intolerance"
    )
