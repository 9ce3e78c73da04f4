"""The CDS Hooks use case: what a hook call means, from the record a gatherer brings.

The hook table (HOOKS) names each hook once: its service id, title, description and the
handler that answers it. Discovery, routing and request checks at the door read the table;
the answer (HookAnswer) says what the call came to, and the door only renders it as cards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from myoguide.domain.orders import Draftable, DraftOrder, OrderFinding, draftable, judge_orders
from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState, dec
from myoguide.domain.units import to_mg_per_day, to_mg_per_week
from myoguide.errors import InputError
from myoguide.service.assess import Assessment, Chart, Service
from myoguide.service.ports import (
    ESSENTIAL_PARTS,
    DraftOrderReader,
    Gathered,
    PrefetchMissing,
    RecordGatherer,
)

# The synthetic patient answered before serving (see CdsHooks.self_check).
_SELF_CHECK_BUNDLE: dict[str, Any] = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "self", "birthDate": "1960-01-01"}},
        {
            "resource": {
                "resourceType": "Condition",
                "id": "c",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "396230008"}]},
            }
        },
    ],
}
_SELF_CHECK_FACTS: dict[str, Any] = {
    "disease_control_achieved": False,
    "flare": False,
    "weight": {"value": 70, "unit": "kg"},
    "height": {"value": 170, "unit": "cm"},
    "treatment_history": [
        {"agent": "prednisone", "outcome": "inadequate_response"},
        {"agent": "methotrexate", "outcome": "inadequate_response"},
    ],
}


@dataclass(frozen=True)
class HookAnswer:
    """What a hook call came to: an unusable record, an answer, or judged orders."""

    unusable: InputError | None = None
    state: PatientState | None = None
    result: RecommendationSet | None = None  # patient-view
    # patient-view: the drugs the first choice starts with a dose, which a card may draft.
    drafts: tuple[Draftable, ...] = ()
    # order-select and order-sign: the domain's judgement of the draft orders.
    findings: tuple[OrderFinding, ...] = ()
    data_warnings: tuple[tuple[str, str], ...] = ()
    # Whether the chart names DM or PM at all (a coded diagnosis, or one that cannot be told).
    myositis: bool = True


@dataclass(frozen=True)
class CdsHooks:
    """The CDS Hooks use case; the request is already checked against the hook's shape."""

    service: Service
    gatherer: RecordGatherer
    read_draft: DraftOrderReader

    @property
    def templates(self) -> Mapping[str, str]:
        """Return the prefetch templates the gatherer reads (what discovery asks for)."""
        return self.gatherer.templates

    def answer(self, call: Mapping[str, Any], service_id: str) -> HookAnswer:
        """Answer a call to one of the hook table's services (KeyError if there is none)."""
        return HOOK_BY_ID[service_id].handler(self, call)

    def patient_view(self, call: Mapping[str, Any]) -> HookAnswer:
        """Read the chart and answer it, with the drugs the first choice may draft."""
        read = self._read(call)
        if read.state is None:
            return read
        assessment = self.service.assess_chart(Chart(read.state, read.data_warnings))
        result = assessment.result
        first = [r for r in result.recommendations if r.rank == 1]
        return HookAnswer(
            state=read.state,
            result=result,
            drafts=draftable(first),
            data_warnings=read.data_warnings,
            myositis=read.myositis,
        )

    def order_select(self, call: Mapping[str, Any]) -> HookAnswer:
        """Judge the selected draft orders against the chart."""
        return self._orders(call, selected_only=True)

    def order_sign(self, call: Mapping[str, Any]) -> HookAnswer:
        """Judge every draft order against the chart before signing."""
        return self._orders(call, selected_only=False)

    def _orders(self, call: Mapping[str, Any], *, selected_only: bool) -> HookAnswer:
        orders = self.draft_orders(call["context"], selected_only=selected_only)
        if not orders:
            # Nothing the guideline speaks of is ordered: no need to read the chart at all.
            return HookAnswer(myositis=False)
        read = self._read(call)
        if read.state is None:
            return read
        findings = judge_orders(orders, read.state, self.service.knowledge)
        return HookAnswer(
            state=read.state,
            findings=tuple(findings),
            data_warnings=read.data_warnings,
            myositis=read.myositis,
        )

    def _read(self, call: Mapping[str, Any]) -> HookAnswer:
        """Gather and validate the chart: a state, or why it is unusable (state None)."""
        gathered = self.gatherer.gather(call)
        _refuse_without_essentials(gathered)
        mapped = self.service.map_record(gathered.bundle, self.service.today())
        warnings = tuple((w.code, w.message) for w in mapped.warnings) + gathered.notes
        raw = dict(mapped.state)
        myositis = "diagnosis" in raw or any(c == "diagnosis_unresolved" for c, _ in warnings)
        lost = [u.words for u in gathered.unread if u.part == "medications"]
        if lost:
            # Unread medication data may hold a guideline drug: the engine then chooses no
            # scenario that assumes it absent (ADR 0009, unresolved medications).
            unresolved = list(raw.get("unresolved_medications") or [])
            raw["unresolved_medications"] = [*unresolved, *(f"{w} not read" for w in lost)]
        try:
            state = self.service.parse(raw)
        except InputError as exc:
            return HookAnswer(unusable=exc, data_warnings=warnings, myositis=myositis)
        return HookAnswer(state=state, data_warnings=warnings, myositis=myositis)

    def draft_orders(self, context: Mapping[str, Any], *, selected_only: bool) -> list[DraftOrder]:
        """Reduce the draft MedicationRequests of an order hook to guideline agents and doses."""
        drafts = context.get("draftOrders")
        entries = drafts.get("entry") if isinstance(drafts, dict) else None
        selections = context.get("selections") if selected_only else None
        selected = set(selections) if isinstance(selections, list) else None
        known = self.service.knowledge.agent_id_set
        today = self.service.today()
        out: list[DraftOrder] = []
        for entry in entries or []:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict) or res.get("resourceType") != "MedicationRequest":
                continue
            ref = f"MedicationRequest/{res.get('id', '?')}"
            if selected is not None and ref not in selected:
                continue
            med = self.read_draft(
                res,
                rxnorm_to_agent=self.service.rxnorm_to_agent,
                evaluation_date=today,
                knowledge=self.service.knowledge,
            )
            if med is None or med.get("agent") not in known:
                continue
            per_day, per_week = _per_day_and_week(med.get("dose"))
            out.append(DraftOrder(ref, str(med["agent"]), per_day, per_week))
        return out

    def self_check(self) -> HookAnswer:
        """Answer one synthetic patient through mapping and engine; raise if there is no answer.

        It fails closed before serving if the knowledge cannot answer, and loads every lazy
        import and cache up front so the first real request is not the slow one.
        """
        mapped = self.service.map_record(_SELF_CHECK_BUNDLE, self.service.today())
        state = self.service.parse({**mapped.state, **_SELF_CHECK_FACTS})
        assessment: Assessment = self.service.assess_chart(Chart(state, ()))
        result = assessment.result
        if not result.recommendations:
            raise RuntimeError("self-check: the knowledge gave no recommendation for resistant DM")
        first = [r for r in result.recommendations if r.rank == 1]
        return HookAnswer(state=state, result=result, drafts=draftable(first))


def _refuse_without_essentials(gathered: Gathered) -> None:
    """Raise PrefetchMissing when the patient or the problem list could not be read."""
    missing = [u.words for u in gathered.unread if u.part in ESSENTIAL_PARTS]
    if missing:
        raise PrefetchMissing(
            f"{', '.join(missing)} could not be read from the EHR, "
            "so whether this guideline applies cannot be told"
        )


def _per_day_and_week(dose: object) -> tuple[Decimal | None, Decimal | None]:
    """Return a read dose as mg per day and per week (None where the unit does not give it)."""
    if not isinstance(dose, Mapping):
        return None, None
    value, unit = dec(float(dose["value"])), str(dose["unit"])
    return to_mg_per_day(value, unit), to_mg_per_week(value, unit)


@dataclass(frozen=True)
class Hook:
    """One CDS service: its id, the hook it answers, what discovery says and its handler."""

    id: str
    hook: str
    title: str
    description: str
    handler: Callable[[CdsHooks, Mapping[str, Any]], HookAnswer]


# The hook table: each CDS service named once. Every service prefetches the whole record the
# gatherer reads (an order hook reads it only when a guideline drug is ordered).
HOOKS: tuple[Hook, ...] = (
    Hook(
        "myoguide-patient-view",
        "patient-view",
        "myoguide: recurrent and resistant DM/PM",
        "Options for adults with recurrent or resistant dermatomyositis or polymyositis, "
        "ranked as in the source review, with this patient's doses.",
        CdsHooks.patient_view,
    ),
    Hook(
        "myoguide-order-select",
        "order-select",
        "myoguide: check a DM/PM medication order",
        "Checks selected draft orders against the stated maxima, the order of the resistant "
        "ladder and the review's cautions.",
        CdsHooks.order_select,
    ),
    Hook(
        "myoguide-order-sign",
        "order-sign",
        "myoguide: check DM/PM medication orders before signing",
        "Checks draft orders against the stated maxima, the order of the resistant ladder and "
        "the review's cautions.",
        CdsHooks.order_sign,
    ),
)
HOOK_BY_ID: Mapping[str, Hook] = {h.id: h for h in HOOKS}
