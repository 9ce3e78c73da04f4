"""Medication resources and allergies: the agent, current use or history, dose, outcome."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from myoguide.adapters.fhir.codes import (
    ALLERGY_VERIFICATION,
    FORM_UNITS,
    INADEQUATE_WORDS,
    INTOLERANCE_CODES,
    INTOLERANCE_WORDS,
    MASS_UNITS,
    MEDADMIN_ROLE,
    MEDREQ_ROLE,
    MEDREQ_STATUS_REASON,
    MEDSTATEMENT_ROLE,
    PER_DAY,
    PER_WEEK,
    RXNORM,
)
from myoguide.adapters.fhir.primitives import (
    DECIMAL_CONTEXT,
    DIGITS,
    Warn,
    coding_codes,
    resource_label,
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


class Schedule(NamedTuple):
    """How often a dose is taken: frequency per period of period_unit."""

    frequency: Decimal
    period: Decimal
    period_unit: str


class StopOutcome(NamedTuple):
    """The outcome a stopping reason gives, and why it is unknown when it is (else empty)."""

    outcome: str
    problem: str


class Problem(NamedTuple):
    """Why a dose could not be read: warning code and message."""

    code: str
    message: str


class MedicationReader:
    """Sorts medication resources into current drugs (with doses), history and unresolved."""

    __slots__ = ("current", "history", "index", "rx", "term", "unresolved", "warn")

    def __init__(
        self,
        rx: Mapping[str, str],
        term: Terminology,
        index: Mapping[str, dict[str, Any]],
        warn: Warn,
    ) -> None:
        self.rx = rx
        self.term = term
        self.index = index
        self.warn = warn
        self.current: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, str]] = []
        self.unresolved: list[str] = []

    def read(self, res: dict[str, Any], i: int) -> None:
        """Turn a medication resource or an allergy into a current drug, history or nothing."""
        kind = res.get("resourceType")
        if kind == "AllergyIntolerance":
            self.read_allergy(res, i)
            return
        status = res.get("status")
        dosages: object = None
        if kind == "MedicationRequest":
            if res.get("doNotPerform") is True:
                return
            role = MEDREQ_ROLE.get(status) if isinstance(status, str) else None
            dosages = res.get("dosageInstruction")
        elif kind == "MedicationAdministration":
            role = MEDADMIN_ROLE.get(status) if isinstance(status, str) else None
        else:
            role = MEDSTATEMENT_ROLE.get(status) if isinstance(status, str) else None
            dosages = res.get("dosage")
        if role is None:
            self.warn(
                "medication_status_unclear",
                "the medication's status is missing or says neither current nor past; skipped",
                resource_label(res, i),
            )
            return
        if role == "ignore":
            return
        resolved = self.agent(res, i, "medicationCodeableConcept")
        if resolved is None:
            return
        if kind == "MedicationAdministration":
            self.add_administration(resolved.agent, res, i)
        elif role == "current":
            self.add_current(resolved, dosages, res, i)
        else:
            self.add_history(resolved.agent, res, i)

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
                    "no medicationCodeableConcept or medicationReference; skipped",
                    label,
                )
                self.unresolved.append(f"medication not named ({label})")
                return None
            medication = self.resolve(target, res)
            if medication is None:
                self.warn(
                    "medication_reference_unresolved",
                    "medicationReference does not point to a Medication in the Bundle; skipped",
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
            named = ", ".join(sorted(agents))
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
        shown = ", ".join(c for c in codes if DIGITS.fullmatch(c))
        if len(named) == 1 and near <= named:
            agent = next(iter(named))
            self.warn(
                "medication_matched_by_name",
                f"{agent} was identified by its name, not by an RxNorm code the terminology "
                "knows" + (f" ({shown})" if shown else ""),
                label,
            )
            return NamedAgent(agent, medication, None)
        if named or near:
            like = ", ".join(sorted(named | near))
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
                f"RxNorm code(s) {shown or '(not shown)'} are not agents of this guideline and "
                "the medication has no name; listed as unresolved",
                label,
            )
            self.unresolved.append(f"RxNorm {shown or 'code'} not identified ({label})")
            return None
        self.warn(
            "medication_not_coded",
            "the medication has no RxNorm code and no name; listed as unresolved",
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

    def add_current(
        self, resolved: NamedAgent, dosages: object, res: dict[str, Any], i: int
    ) -> None:
        """Add a current medication, with its dose when one can be worked out."""
        agent = resolved.agent
        existing = self.current.get(agent)
        if existing is not None:
            existing.pop("dose", None)
            label = resource_label(res, i)
            self.warn(
                "medication_duplicate",
                f"{agent} is current in more than one resource; listed once without a dose",
                label,
            )
            self.unresolved.append(f"{agent} (dose not readable)")
            return
        reading = read_dose(dosages, resolved, self.term)
        if reading.dose is not None and not reading.notes:
            self.current[agent] = {"agent": agent, "dose": reading.dose}
            return
        label = resource_label(res, i)
        for code, message in reading.notes:
            self.warn(code, message, label)
        if reading.dose is None:
            self.warn(reading.code, f"{reading.message}; {agent} listed without a dose", label)
            self.current[agent] = {"agent": agent}
            if reading.unreadable:
                self.unresolved.append(f"{agent} (dose not readable)")
        else:
            self.current[agent] = {"agent": agent, "dose": reading.dose}

    def add_history(self, agent: str, res: dict[str, Any], i: int) -> None:
        """Add a treatment history entry with the outcome its stopping reason gives."""
        stopped = stop_outcome(res)
        if stopped.problem:
            self.warn(
                "history_outcome_unknown",
                f"{stopped.problem}; {agent} outcome set to unknown",
                resource_label(res, i),
            )
        self.add_entry(agent, stopped.outcome)

    def add_administration(self, agent: str, res: dict[str, Any], i: int) -> None:
        """Add a given dose as history: the drug was tried; how the disease answered is unknown."""
        if res.get("status") == "stopped":
            self.add_history(agent, res, i)
            return
        self.warn(
            "administration_outcome_unknown",
            f"{agent} was administered; an administration does not say whether it continues or "
            "how the disease answered, so it is history with outcome unknown",
            resource_label(res, i),
        )
        self.add_entry(agent, "unknown")

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
            f"an allergy record names {resolved.agent} but is neither of type intolerance nor a "
            "medication allergy with a reaction; not counted as intolerance",
            resource_label(res, i),
        )
        self.unresolved.append(f"{resolved.agent} (allergy record not read)")

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


def read_dose(dosages: object, resolved: NamedAgent, term: Terminology) -> DoseReading:
    """Return a normalised dose {value, unit}, or None with a warning code and message."""
    if not isinstance(dosages, list) or not dosages:
        return DoseReading(None, "dose_missing", "no dosage is given")
    if len(dosages) > 1:
        return DoseReading(
            None, "dose_ambiguous", "more than one dosage instruction is given", True
        )
    dosage = dosages[0]
    if not isinstance(dosage, dict):
        return DoseReading(None, "dose_unparseable", "the dosage is not an object", True)
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
                None, "dose_text_only", "the dose is given as free text only (not parsed)", True
            )
        return DoseReading(None, "dose_missing", "the dosage has no doseQuantity")
    schedule = read_schedule(dosage.get("timing"), term)
    if isinstance(schedule, Problem):
        return DoseReading(None, schedule.code, schedule.message, True)
    if isinstance(quantity, dict):
        total = per_period(quantity, schedule, resolved, term)
        if isinstance(total, Problem):
            return DoseReading(None, total.code, total.message, True)
        return DoseReading(total, "", "")
    assert isinstance(dose_range, dict)
    return read_range(dose_range, schedule, resolved, term)


def read_range(
    dose_range: dict[str, Any], schedule: Schedule, resolved: NamedAgent, term: Terminology
) -> DoseReading:
    """Return a doseRange as its high end, with a warning naming the range."""
    agent = resolved.agent
    high_q, low_q = dose_range.get("high"), dose_range.get("low")
    high = per_period(high_q, schedule, resolved, term) if isinstance(high_q, dict) else None
    if not isinstance(high, dict):
        return DoseReading(
            None, "dose_range_unusable", "the dose range has no readable high end", True
        )
    low = per_period(low_q, schedule, resolved, term) if isinstance(low_q, dict) else None
    unit = high["unit"]
    if isinstance(low, dict) and low["unit"] == unit:
        span = f"{low['value']} to {high['value']} {unit}"
    else:
        span = f"up to {high['value']} {unit} (low end not readable)"
    message = f"{agent} is ordered as a dose range, {span}; the high end is used as the dose"
    if agent == "prednisone" and isinstance(low, dict) and low["unit"] == unit:
        per_mg = Decimal(1000) if unit.startswith("g/") else Decimal(1)
        lo = Decimal(repr(low["value"])) * per_mg
        hi = Decimal(repr(high["value"])) * per_mg
        boundary = term.flare_boundary_mg_per_day  # the knowledge's flare boundary
        if lo < hi and boundary is not None and lo <= boundary <= hi:
            message += "; the range spans the 10 mg/day prednisone boundary"
    return DoseReading(high, "", "", notes=(("dose_range", message),))


def read_schedule(timing: object, term: Terminology) -> Schedule | Problem:
    """Return how often a dose is taken, from timing.repeat or else a known timing.code."""
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    code = timing.get("code") if isinstance(timing, dict) else None
    if isinstance(repeat, dict) and (repeat.get("period") is not None or code is None):
        frequency = to_decimal(repeat.get("frequency", 1))
        period = to_decimal(repeat.get("period"))
        period_unit = repeat.get("periodUnit")
        if frequency is None or frequency <= 0 or period is None or period <= 0:
            return Problem(
                "dose_timing_unparseable", "timing.repeat lacks a positive frequency and period"
            )
        if not isinstance(period_unit, str) or period_unit not in PER_DAY:
            return Problem("dose_timing_unsupported", "timing.repeat.periodUnit is not h, d or wk")
        return Schedule(frequency, period, period_unit)
    if code is None:
        return Problem("dose_timing_missing", "the dosage has no timing.repeat or timing.code")
    for found in coding_codes(code, term.file.timing.system):
        known = term.timing_codes.get(found)
        if known is not None:
            return Schedule(
                Decimal(known.frequency), Decimal(repr(known.period)), known.period_unit
            )
    return Problem(
        "dose_timing_unsupported",
        "timing.code is not one of the timing abbreviations the terminology lists",
    )


def per_period(
    quantity: dict[str, Any], schedule: Schedule, resolved: NamedAgent, term: Terminology
) -> dict[str, Any] | Problem:
    """Return one dose quantity on a schedule as {value, unit} per day or week."""
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
    return {"value": number, "unit": f"{mass.unit}/{'week' if weekly else 'day'}"}


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
    if form is not None and product is not None and product.per == form:
        try:
            strength = amount_decimal(product.amount)
            return Mass(DECIMAL_CONTEXT.multiply(amount, strength), product.amount.unit)
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
    """Return the outcome a stopping reason gives, and why it is unknown when it is."""
    concepts: list[dict[str, Any]] = []
    for name in ("statusReason", "reasonCode"):
        value = res.get(name)
        if isinstance(value, dict):
            concepts.append(value)
        elif isinstance(value, list):
            concepts.extend(v for v in value if isinstance(v, dict))
        if concepts:
            break
    if not concepts:
        return StopOutcome("unknown", "no reason for stopping is given")
    texts = [name.lower() for concept in concepts for name in concept_names(concept)]
    intolerance = any(
        code in INTOLERANCE_CODES
        for concept in concepts
        for code in coding_codes(concept, MEDREQ_STATUS_REASON)
    )
    blob = " | ".join(texts)
    inadequate = any(word in blob for word in INADEQUATE_WORDS)
    intolerance = intolerance or any(word in blob for word in INTOLERANCE_WORDS)
    if inadequate and intolerance:
        return StopOutcome(
            "unknown", "the stopping reason names both lack of effect and intolerance"
        )
    if inadequate:
        return StopOutcome("inadequate_response", "")
    if intolerance:
        return StopOutcome("intolerance", "")
    return StopOutcome(
        "unknown", "the stopping reason names neither lack of effect nor intolerance"
    )
