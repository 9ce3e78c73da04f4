"""MedicationRequest and MedicationStatement: the agent, current use or history, dose, outcome."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

from myoguide.adapters.fhir.codes import (
    DAILY_AGENTS,
    INADEQUATE_WORDS,
    INTOLERANCE_CODES,
    INTOLERANCE_WORDS,
    MEDREQ_ROLE,
    MEDREQ_STATUS_REASON,
    MEDSTATEMENT_ROLE,
    PER_DAY,
    PER_WEEK,
    RXNORM,
    WEEKLY_AGENTS,
)
from myoguide.adapters.fhir.primitives import (
    DECIMAL_CONTEXT,
    DIGITS,
    Warn,
    coding_codes,
    resource_label,
    to_decimal,
    to_number,
    ucum_code,
    unit_key,
)


class NamedAgent(NamedTuple):
    """The guideline agent a medication resource names, and the Medication resource if any."""

    agent: str
    medication: dict[str, Any] | None


class DoseReading(NamedTuple):
    """A normalised dose {value, unit}, or None with the warning code and message saying why."""

    dose: dict[str, Any] | None
    code: str
    message: str


class Mass(NamedTuple):
    """An amount of drug in mg or g."""

    amount: Decimal
    unit: str


class StopOutcome(NamedTuple):
    """The outcome a stopping reason gives, and why it is unknown when it is (else empty)."""

    outcome: str
    problem: str


class MedicationReader:
    """Sorts medication resources into current drugs (with doses) and treatment history."""

    __slots__ = ("current", "history", "index", "rx", "warn")

    def __init__(
        self, rx: Mapping[str, str], index: Mapping[str, dict[str, Any]], warn: Warn
    ) -> None:
        self.rx = rx
        self.index = index
        self.warn = warn
        self.current: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, str]] = []

    def read(self, res: dict[str, Any], i: int) -> None:
        """Turn a MedicationRequest or MedicationStatement into a current drug or history."""
        status = res.get("status")
        if res.get("resourceType") == "MedicationRequest":
            if res.get("doNotPerform") is True:
                return
            role = MEDREQ_ROLE.get(status) if isinstance(status, str) else None
            dosages = res.get("dosageInstruction")
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
        resolved = self.agent(res, i)
        if resolved is None:
            return
        if role == "current":
            self.add_current(resolved.agent, dosages, resolved.medication, res, i)
        else:
            self.add_history(resolved.agent, res, i)

    def agent(self, res: dict[str, Any], i: int) -> NamedAgent | None:
        """Return the agent a medication resource names, and its Medication resource if any."""
        medication: dict[str, Any] | None = None
        concept = res.get("medicationCodeableConcept")
        if not isinstance(concept, dict):
            ref = res.get("medicationReference")
            target = ref.get("reference") if isinstance(ref, dict) else None
            if not isinstance(target, str):
                self.warn(
                    "medication_missing",
                    "no medicationCodeableConcept or medicationReference; skipped",
                    resource_label(res, i),
                )
                return None
            medication = self.resolve(target, res)
            if medication is None:
                self.warn(
                    "medication_reference_unresolved",
                    "medicationReference does not point to a Medication in the Bundle; skipped",
                    resource_label(res, i),
                )
                return None
            concept = medication.get("code")
        codes = coding_codes(concept, RXNORM)
        agents = {self.rx[c] for c in codes if c in self.rx}
        if not agents and medication is not None:
            ingredients = medication.get("ingredient")
            if isinstance(ingredients, list):
                for ingredient in ingredients:
                    if isinstance(ingredient, dict):
                        found = coding_codes(ingredient.get("itemCodeableConcept"), RXNORM)
                        codes.extend(found)
                        agents.update(self.rx[c] for c in found if c in self.rx)
        if len(agents) == 1:
            return NamedAgent(agents.pop(), medication)
        if agents:
            self.warn(
                "medication_ambiguous",
                f"the medication codes name more than one agent ({', '.join(sorted(agents))}); "
                "skipped",
                resource_label(res, i),
            )
        elif codes:
            shown = ", ".join(c for c in codes if DIGITS.fullmatch(c)) or "(not shown)"
            self.warn(
                "medication_code_unknown",
                f"RxNorm code(s) {shown} are not agents of this guideline; skipped",
                resource_label(res, i),
            )
        else:
            self.warn(
                "medication_not_coded",
                "the medication has no RxNorm code; skipped",
                resource_label(res, i),
            )
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
        self,
        agent: str,
        dosages: object,
        medication: dict[str, Any] | None,
        res: dict[str, Any],
        i: int,
    ) -> None:
        """Add a current medication, with its dose when one can be worked out."""
        existing = self.current.get(agent)
        if existing is not None:
            existing.pop("dose", None)
            self.warn(
                "medication_duplicate",
                f"{agent} is current in more than one resource; listed once without a dose",
                resource_label(res, i),
            )
            return
        reading = read_dose(dosages, agent, medication)
        if reading.dose is None:
            self.warn(
                reading.code,
                f"{reading.message}; {agent} listed without a dose",
                resource_label(res, i),
            )
            self.current[agent] = {"agent": agent}
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
        entry = {"agent": agent, "outcome": stopped.outcome}
        if entry not in self.history:
            self.history.append(entry)


def read_dose(dosages: object, agent: str, medication: dict[str, Any] | None) -> DoseReading:
    """Return a normalised dose {value, unit}, or None with a warning code and message."""
    if not isinstance(dosages, list) or not dosages:
        return DoseReading(None, "dose_missing", "no dosage is given")
    if len(dosages) > 1:
        return DoseReading(None, "dose_ambiguous", "more than one dosage instruction is given")
    dosage = dosages[0]
    if not isinstance(dosage, dict):
        return DoseReading(None, "dose_unparseable", "the dosage is not an object")
    if dosage.get("asNeededBoolean") is True or dosage.get("asNeededCodeableConcept") is not None:
        return DoseReading(None, "dose_as_needed", "the dose is taken as needed, not regularly")
    rates = dosage.get("doseAndRate")
    first = rates[0] if isinstance(rates, list) and rates else None
    quantity = first.get("doseQuantity") if isinstance(first, dict) else None
    if not isinstance(quantity, dict):
        return DoseReading(None, "dose_missing", "the dosage has no doseQuantity")
    amount = to_decimal(quantity.get("value"))
    if amount is None or amount < 0:
        return DoseReading(
            None, "dose_unparseable", "doseQuantity.value is not a non-negative number"
        )
    mass = ucum_code(quantity)
    if mass != "mg" and mass != "g":
        converted = dose_by_strength(amount, quantity, medication)
        if converted is None:
            return DoseReading(
                None,
                "dose_unit_unknown",
                "the dose unit is neither mg nor g, and no single ingredient strength converts it",
            )
        amount, mass = converted
    timing = dosage.get("timing")
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict):
        return DoseReading(None, "dose_timing_missing", "the dosage has no timing.repeat")
    frequency = to_decimal(repeat.get("frequency", 1))
    period = to_decimal(repeat.get("period"))
    period_unit = repeat.get("periodUnit")
    if frequency is None or frequency <= 0 or period is None or period <= 0:
        return DoseReading(
            None,
            "dose_timing_unparseable",
            "timing.repeat lacks a positive frequency and period",
        )
    if not isinstance(period_unit, str) or period_unit not in PER_DAY:
        return DoseReading(
            None, "dose_timing_unsupported", "timing.repeat.periodUnit is not h, d or wk"
        )
    weekly = agent in WEEKLY_AGENTS or (agent not in DAILY_AGENTS and period_unit == "wk")
    multiplier, divisor = (PER_WEEK if weekly else PER_DAY)[period_unit]
    try:
        total = DECIMAL_CONTEXT.divide(
            DECIMAL_CONTEXT.multiply(
                DECIMAL_CONTEXT.multiply(amount, frequency), Decimal(multiplier)
            ),
            DECIMAL_CONTEXT.multiply(period, Decimal(divisor)),
        )
    except ArithmeticError:
        total = Decimal("NaN")
    number = to_number(total)
    if number is None:
        return DoseReading(None, "dose_unparseable", "the dose does not give a usable number")
    return DoseReading({"value": number, "unit": f"{mass}/{'week' if weekly else 'day'}"}, "", "")


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
    texts: list[str] = []
    intolerance = False
    for concept in concepts:
        text = concept.get("text")
        if isinstance(text, str):
            texts.append(text.lower())
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if not isinstance(coding, dict):
                    continue
                code = coding.get("code")
                if (
                    isinstance(code, str)
                    and code in INTOLERANCE_CODES
                    and coding.get("system") == MEDREQ_STATUS_REASON
                ):
                    intolerance = True
                display = coding.get("display")
                if isinstance(display, str):
                    texts.append(display.lower())
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
