"""Answering a CDS Hooks call: gather the record, read it, validate, and answer or check orders."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState, dec
from myoguide.domain.units import to_mg_per_day, to_mg_per_week
from myoguide.errors import InputError
from myoguide.service.assess import Assessment, Chart, Service
from myoguide.service.ports import FhirClient

# What the FHIR mapping needs, as CDS Hooks prefetch templates.
PREFETCH: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "weight": "Observation?patient={{context.patientId}}&code=http://loinc.org|29463-7"
    "&_sort=-date&_count=1",
    "height": "Observation?patient={{context.patientId}}&code=http://loinc.org|8302-2"
    "&_sort=-date&_count=1",
}
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


class PrefetchMissing(Exception):
    """Prefetch data was absent and could not be fetched from the FHIR server."""


@dataclass(frozen=True)
class OrderLine:
    """A draft medication order reduced to agent and dose."""

    reference: str
    agent: str
    mg_per_day: Decimal | None
    mg_per_week: Decimal | None


@dataclass(frozen=True)
class HookAnswer:
    """What a hook call came to: an unusable record, an answer, or orders to check."""

    unusable: InputError | None = None
    state: PatientState | None = None
    result: RecommendationSet | None = None  # patient-view
    orders: tuple[OrderLine, ...] = ()  # order-select and order-sign
    data_warnings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CdsHooks:
    """The CDS Hooks use case; the request is already checked against the hook's shape."""

    service: Service
    fhir: FhirClient

    def answer(self, body: Mapping[str, Any], hook: str) -> HookAnswer:
        """Gather prefetch, read the record and answer it (patient-view) or reduce the orders."""
        bundle = self.gather(body)
        try:
            chart = self.service.read_chart(bundle, self.service.today())
        except InputError as exc:
            return HookAnswer(unusable=exc)
        if hook == "patient-view":
            assessment = self.service.assess_chart(chart)
            return HookAnswer(
                state=chart.state, result=assessment.result, data_warnings=chart.warnings
            )
        orders = self.draft_orders(body["context"], hook)
        return HookAnswer(state=chart.state, orders=tuple(orders), data_warnings=chart.warnings)

    def gather(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Collect prefetched (or fetched) resources into one Bundle (PrefetchMissing if not)."""
        prefetch = body.get("prefetch") or {}
        server = body.get("fhirServer")
        auth = body.get("fhirAuthorization")
        token = auth.get("access_token") if isinstance(auth, dict) else None
        patient_id = body["context"]["patientId"]
        entries: list[dict[str, Any]] = []
        for key, template in PREFETCH.items():
            if key in prefetch:
                value = prefetch[key]
            elif isinstance(server, str) and server:
                query = template.replace("{{context.patientId}}", patient_id)
                try:
                    value = self.fhir.read(server, query, token if isinstance(token, str) else None)
                except LookupError as exc:
                    raise PrefetchMissing(
                        f"prefetch '{key}' absent and the FHIR server did not answer: {exc}"
                    ) from None
            else:
                raise PrefetchMissing(
                    f"prefetch '{key}' is absent and no fhirServer was given to ask"
                )
            if value is None:
                continue  # the client found nothing for this key
            if isinstance(value, dict) and value.get("resourceType") == "Bundle":
                entries.extend(e for e in value.get("entry") or [] if isinstance(e, dict))
            elif isinstance(value, dict):
                entries.append({"resource": value})
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}

    def draft_orders(self, context: Mapping[str, Any], hook: str) -> list[OrderLine]:
        """Reduce the draft MedicationRequests of an order hook to agents and doses."""
        drafts = context.get("draftOrders")
        entries = drafts.get("entry") if isinstance(drafts, dict) else None
        selections = context.get("selections") if hook == "order-select" else None
        selected = set(selections) if isinstance(selections, list) else None
        out: list[OrderLine] = []
        for entry in entries or []:
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict) or res.get("resourceType") != "MedicationRequest":
                continue
            ref = f"MedicationRequest/{res.get('id', '?')}"
            if selected is not None and ref not in selected:
                continue
            # One definition of FHIR medication mapping: read the order as if it were active.
            probe = {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": {**res, "status": "active"}}],
            }
            mapped = self.service.map_record(probe, dt.date(2000, 1, 1))
            known = self.service.knowledge.agent_ids
            for med in mapped.state.get("current_medications") or []:
                agent = med.get("agent")
                if agent not in known:
                    continue
                dose = med.get("dose")
                per_day = per_week = None
                if isinstance(dose, dict):
                    value, unit = dec(float(dose["value"])), str(dose["unit"])
                    per_day, per_week = to_mg_per_day(value, unit), to_mg_per_week(value, unit)
                out.append(OrderLine(ref, agent, per_day, per_week))
        return out

    def self_check(self) -> Assessment:
        """Answer one synthetic patient through mapping and engine; raise if there is no answer.

        It fails closed before serving if the knowledge cannot answer, and loads every lazy
        import and cache up front so the first real request is not the slow one.
        """
        mapped = self.service.map_record(_SELF_CHECK_BUNDLE, self.service.today())
        state = self.service.parse({**mapped.state, **_SELF_CHECK_FACTS})
        assessment = self.service.assess_chart(Chart(state, ()))
        if not assessment.result.recommendations:
            raise RuntimeError("self-check: the knowledge gave no recommendation for resistant DM")
        return assessment
