"""Answering a CDS Hooks call: gather the record, read it, validate, and answer or check orders."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState, dec
from myoguide.domain.units import to_mg_per_day, to_mg_per_week
from myoguide.errors import InputError
from myoguide.service.assess import Assessment, Chart, Service
from myoguide.service.ports import FhirClient

# Search results are followed through at most this many pages per prefetch key (a bound, so a
# huge or looping result cannot hold a request); hitting it is said in the data-quality card.
MAX_PAGES = 10
# Medication/{id} references fetched one by one from the FHIR server, at most this many per call.
MAX_MEDICATION_FETCHES = 25
# Keys without which scope cannot be judged: data unavailable there is a 412, not a card.
ESSENTIAL_KEYS = ("patient", "conditions")
# Keys whose loss may hide a guideline drug: their absence is never read as "no medication".
MEDICATION_KEYS = {
    "medicationRequests": "medication orders",
    "medicationStatements": "medication statements",
    "medicationAdministrations": "medication administrations",
    "allergies": "allergy and intolerance records",
}
KEY_WORDS = {
    "patient": "the Patient",
    "conditions": "the problem list",
    **MEDICATION_KEYS,
    "weight": "body weight",
    "height": "body height",
}
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PATIENT = "{{context.patientId}}"


def prefetch_templates(weight_codes: Iterable[str], height_codes: Iterable[str]) -> dict[str, str]:
    """Return the CDS Hooks prefetch templates: everything the FHIR mapping reads.

    The LOINC codes of body weight and height come from the terminology the composition root
    loaded; the service does not read packaged data itself.
    """

    def codes(wanted: Iterable[str]) -> str:
        return ",".join(f"http://loinc.org|{c}" for c in sorted(wanted))

    def meds(kind: str) -> str:
        # _include brings the Medication a product-coded order points to in the same answer.
        return f"{kind}?patient={_PATIENT}&_include={kind}:medication"

    return {
        "patient": f"Patient/{_PATIENT}",
        "conditions": f"Condition?patient={_PATIENT}",
        "medicationRequests": meds("MedicationRequest"),
        "medicationStatements": meds("MedicationStatement"),
        "medicationAdministrations": meds("MedicationAdministration"),
        "allergies": f"AllergyIntolerance?patient={_PATIENT}",
        # Every code the mapping reads, newest first: the mapping keeps the newest reading.
        "weight": f"Observation?patient={_PATIENT}&code={codes(weight_codes)}&_sort=-date&_count=1",
        "height": f"Observation?patient={_PATIENT}&code={codes(height_codes)}&_sort=-date&_count=1",
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
    # Whether the chart names DM or PM at all (a coded diagnosis, or one that cannot be told).
    myositis: bool = True


@dataclass(frozen=True)
class Gathered:
    """The record a call's prefetch (and fetches) gave, and what could not be had."""

    bundle: dict[str, Any]
    notes: tuple[tuple[str, str], ...] = ()  # (code, message) about the data, for a person
    unavailable: tuple[str, ...] = ()  # prefetch keys whose data is missing or incomplete


@dataclass
class _Fetcher:
    """The FHIR server of one call, if any, with the bearer token it handed over."""

    fhir: FhirClient
    server: str | None
    token: str | None

    def query_of(self, url: str) -> str | None:
        """Return a URL as a query on this server, or None if it points elsewhere."""
        if self.server is None:
            return None
        base = self.server.rstrip("/") + "/"
        if url.startswith(base):
            return url[len(base) :]
        if "://" in url:
            return None  # another host: the token must not travel there
        return url.lstrip("/")

    def read(self, query: str) -> Mapping[str, Any]:
        """Read a query from the server (LookupError if there is no server or no answer)."""
        if self.server is None:
            raise LookupError("no fhirServer was given")
        return self.fhir.read(self.server, query, self.token)


def _is_outcome(value: object) -> bool:
    return isinstance(value, Mapping) and value.get("resourceType") == "OperationOutcome"


def _outcome_is_error(value: Any) -> bool:
    issues = value.get("issue") if isinstance(value, Mapping) else None
    return (
        not isinstance(issues, list)
        or any(isinstance(i, dict) and i.get("severity") in ("error", "fatal") for i in issues)
        or not issues
    )


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None


@dataclass(frozen=True)
class CdsHooks:
    """The CDS Hooks use case; the request is already checked against the hook's shape."""

    service: Service
    fhir: FhirClient
    # The prefetch templates (prefetch_templates of the loaded terminology): what is read.
    templates: Mapping[str, str]

    def answer(self, body: Mapping[str, Any], hook: str) -> HookAnswer:
        """Gather prefetch, read the record and answer it (patient-view) or reduce the orders."""
        orders: list[OrderLine] = []
        if hook != "patient-view":
            orders = self.draft_orders(body["context"], hook)
            if not orders:
                # Nothing the guideline speaks of is ordered: no need to read the chart at all.
                return HookAnswer(myositis=False)
        gathered = self.gather(body)
        mapped = self.service.map_record(gathered.bundle, self.service.today())
        warnings = tuple((w.code, w.message) for w in mapped.warnings) + gathered.notes
        raw = dict(mapped.state)
        myositis = "diagnosis" in raw or any(c == "diagnosis_unresolved" for c, _ in warnings)
        lost = [KEY_WORDS[k] for k in gathered.unavailable if k in MEDICATION_KEYS]
        if lost:
            # Unread medication data may hold a guideline drug: the engine then chooses no
            # scenario that assumes it absent (ADR 0009, unresolved medications).
            unresolved = list(raw.get("unresolved_medications") or [])
            raw["unresolved_medications"] = [*unresolved, *(f"{w} not read" for w in lost)]
        try:
            state = self.service.parse(raw)
        except InputError as exc:
            return HookAnswer(unusable=exc, data_warnings=warnings, myositis=myositis)
        if hook == "patient-view":
            result = self.service.assess_chart(Chart(state, warnings)).result
            return HookAnswer(state=state, result=result, data_warnings=warnings, myositis=myositis)
        return HookAnswer(
            state=state, orders=tuple(orders), data_warnings=warnings, myositis=myositis
        )

    def gather(self, body: Mapping[str, Any]) -> Gathered:
        """Collect prefetched (or fetched) resources into one Bundle (PrefetchMissing if not).

        An OperationOutcome, a page that cannot be read or the page bound makes a key
        unavailable, never empty; the patient and the problem list must be had, or it is 412.
        """
        prefetch = body.get("prefetch") or {}
        server = body.get("fhirServer")
        auth = body.get("fhirAuthorization")
        token = auth.get("access_token") if isinstance(auth, dict) else None
        fetcher = _Fetcher(
            self.fhir,
            server if isinstance(server, str) and server else None,
            token if isinstance(token, str) else None,
        )
        patient_id = body["context"]["patientId"]
        entries: list[dict[str, Any]] = []
        notes: list[tuple[str, str]] = []
        unavailable: list[str] = []
        for key, template in self.templates.items():
            words = KEY_WORDS[key]
            value = prefetch.get(key) if key in prefetch else None
            if key not in prefetch or _is_outcome(value):
                try:
                    value = fetcher.read(template.replace(_PATIENT, patient_id))
                except LookupError as exc:
                    if key not in prefetch:
                        raise PrefetchMissing(
                            f"prefetch '{key}' is absent and could not be fetched: {exc}"
                        ) from None
                    # The client said it could not get this data; neither could we.
            if value is None:
                continue  # the client found nothing for this key
            if _is_outcome(value) or not isinstance(value, Mapping):
                unavailable.append(key)
                notes.append(
                    (
                        "data_unavailable",
                        f"{words} could not be read from the EHR (it answered "
                        "with an error, not with an empty list)",
                    )
                )
                continue
            if value.get("resourceType") != "Bundle":
                entries.append({"resource": dict(value)})
                continue
            complete = self._pages(value, fetcher, entries, words, notes)
            if not complete:
                unavailable.append(key)
        missing = [k for k in ESSENTIAL_KEYS if k in unavailable]
        if missing:
            raise PrefetchMissing(
                f"{', '.join(KEY_WORDS[k] for k in missing)} could not be read from the EHR, "
                "so whether this guideline applies cannot be told"
            )
        self._resolve_medications(entries, fetcher, notes)
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        return Gathered(bundle, tuple(notes), tuple(unavailable))

    def _pages(
        self,
        page: Mapping[str, Any],
        fetcher: _Fetcher,
        entries: list[dict[str, Any]],
        words: str,
        notes: list[tuple[str, str]],
    ) -> bool:
        """Add a searchset's entries, following its next links; return False if incomplete."""
        for n in range(1, MAX_PAGES + 1):
            for entry in page.get("entry") or []:
                if not isinstance(entry, dict):
                    continue
                res = entry.get("resource")
                if _is_outcome(res):
                    # search.mode "outcome": an error means the server left results out.
                    if _outcome_is_error(res):
                        notes.append(
                            ("data_partial", f"the EHR reported an error while listing {words}")
                        )
                        return False
                    continue
                entries.append(entry)
            url = _next_link(page)
            if url is None:
                return True
            if n == MAX_PAGES:
                notes.append(
                    (
                        "page_bound",
                        f"{words} run to more than {MAX_PAGES} pages; the rest was not read",
                    )
                )
                return False
            query = fetcher.query_of(url)
            try:
                if query is None:
                    raise LookupError("the next page is on another server")
                answer = fetcher.read(query)
            except LookupError:
                notes.append(("page_unread", f"a further page of {words} could not be read"))
                return False
            if _is_outcome(answer) or answer.get("resourceType") != "Bundle":
                notes.append(("page_unread", f"a further page of {words} could not be read"))
                return False
            page = answer
        return False  # not reached: the loop returns

    def _resolve_medications(
        self, entries: list[dict[str, Any]], fetcher: _Fetcher, notes: list[tuple[str, str]]
    ) -> None:
        """Fetch the Medications that orders point to and the prefetch did not include."""
        have: set[str] = set()
        wanted: list[str] = []
        for entry in entries:
            res = entry.get("resource")
            if isinstance(res, dict) and res.get("resourceType") == "Medication":
                have.add(f"Medication/{res.get('id')}")
                if isinstance(entry.get("fullUrl"), str):
                    have.add(entry["fullUrl"])
        for entry in entries:
            res = entry.get("resource")
            ref = res.get("medicationReference") if isinstance(res, dict) else None
            target = ref.get("reference") if isinstance(ref, dict) else None
            if not isinstance(target, str) or target.startswith("#") or target in have:
                continue
            query = fetcher.query_of(target) if fetcher.server else None
            if query is None or not query.startswith("Medication/"):
                continue
            rid = query.removeprefix("Medication/")
            if _FHIR_ID.fullmatch(rid) and f"Medication/{rid}" not in have:
                have.add(f"Medication/{rid}")
                wanted.append(rid)
        for n, rid in enumerate(wanted):
            if n == MAX_MEDICATION_FETCHES:
                notes.append(
                    (
                        "medication_fetch_bound",
                        f"more than {MAX_MEDICATION_FETCHES} medications had to be looked up; "
                        "the rest were not",
                    )
                )
                return
            try:
                med = fetcher.read(f"Medication/{rid}")
            except LookupError:
                continue  # the mapping says the reference is unresolved, and counts it
            if med.get("resourceType") == "Medication":
                entries.append({"resource": dict(med)})

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
