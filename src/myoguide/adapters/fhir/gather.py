"""Gathering a CDS Hooks call's record: prefetch, fetches where absent, paging, Medications.

What the data's absence means (a 412, an unresolved medication) is the service's rule; this
module only says which part of the record could not be had (service.ports.Unread).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from myoguide.adapters.fhir.codes import (
    LOINC,
    MEDADMIN_ROLE,
    MEDICATION_RESOURCES,
    MEDICATION_WORDS,
    MEDREQ_ROLE,
    MEDSTATEMENT_ROLE,
)
from myoguide.adapters.fhir.primitives import effective_time, sort_key
from myoguide.service.ports import (
    ESSENTIAL_PARTS,
    FhirClient,
    Gathered,
    PrefetchMissing,
    RecordPart,
    Unread,
)


@dataclass(frozen=True)
class ReadCaps:
    """What one call's gathering may add up to across every key and page (ADR 0019).

    Sized so that no ordinary chart reaches them (a 1,000-order Synthea chart is about 1,100
    entries and 1.6 MB); reaching one is said in the data-quality card and leaves the key unread.
    """

    entries: int = 20_000
    # Fetched pages, counted as compact JSON (prefetch is bounded by the body limit already).
    bytes: int = 32 * 1024 * 1024
    # A backstop on round trips, for a server that pages empty or near-empty results.
    pages: int = 1_000


# Observations asked for newest first, a few at a time: the reader keeps the latest valid one.
NEWEST_FIRST_COUNT = 5
# Orders and statements per page: a server may send fewer; pages are followed to the caps.
PAGE_COUNT = 200
# Results that are measurements (the reader ignores every other status).
MEASURED = ("final", "amended", "corrected")
# Medication/{id} references fetched one by one from the FHIR server, at most this many per call.
MAX_MEDICATION_FETCHES = 25
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PATIENT = "{{context.patientId}}"


@dataclass(frozen=True)
class PrefetchKey:
    """One prefetch key: the part of the record it holds and its words for a person."""

    part: RecordPart
    words: str
    # Asked for newest first: pages stop once a measurement has been read (see _enough).
    newest_first: bool = False


# Every prefetch key, in the order it is gathered (and asked for in discovery).
PREFETCH_KEYS: Mapping[str, PrefetchKey] = {
    "patient": PrefetchKey("patient", "the Patient"),
    "conditions": PrefetchKey("conditions", "the problem list"),
    **{
        key: PrefetchKey("medications", MEDICATION_WORDS[kind])
        for kind, key in MEDICATION_RESOURCES.items()
    },
    # Intolerances may name a guideline drug: their loss is a medication part's loss.
    "allergies": PrefetchKey("medications", "allergy and intolerance records"),
    "weight": PrefetchKey("measurements", "body weight", newest_first=True),
    "height": PrefetchKey("measurements", "body height", newest_first=True),
}

# The statuses the reader counts, per medication resource: the ones it ignores (cancelled,
# entered-in-error, not-done, not-taken, intended) and drafts (not yet ordered) are not asked
# for; `unknown` is, so the card can say such a record was not counted.
_STATUS_ROLES: Mapping[str, Mapping[str, str]] = {
    "MedicationRequest": MEDREQ_ROLE,
    "MedicationStatement": MEDSTATEMENT_ROLE,
    "MedicationAdministration": MEDADMIN_ROLE,
}
# The date each medication search sorts on, newest first (FHIR R4 search parameters).
_SORT = {
    "MedicationRequest": "-authoredon",
    "MedicationStatement": "-effective",
    "MedicationAdministration": "-effective-time",
}


def _statuses(kind: str) -> str:
    read = [s for s, role in _STATUS_ROLES[kind].items() if role in ("current", "history")]
    return ",".join([*read, "unknown"])


def prefetch_templates(weight_codes: Iterable[str], height_codes: Iterable[str]) -> dict[str, str]:
    """Return the CDS Hooks prefetch templates: everything the FHIR mapping reads.

    The LOINC codes of body weight and height come from the terminology the composition root
    loaded; this module does not read packaged data itself.
    """

    def codes(wanted: Iterable[str]) -> str:
        return ",".join(f"{LOINC}|{c}" for c in sorted(wanted))

    # _include brings the Medication a product-coded order points to in the same answer.
    meds = {
        key: f"{kind}?patient={_PATIENT}&status={_statuses(kind)}&_sort={_SORT[kind]}"
        f"&_count={PAGE_COUNT}&_include={kind}:medication"
        for kind, key in MEDICATION_RESOURCES.items()
    }
    measured = ",".join(MEASURED)

    def newest(wanted: Iterable[str]) -> str:
        # A few, newest first: an invalid newest entry (no value, odd unit) is skipped by the
        # reader for the next one, without reading the whole series.
        return (
            f"Observation?patient={_PATIENT}&code={codes(wanted)}&status={measured}"
            f"&_sort=-date&_count={NEWEST_FIRST_COUNT}"
        )

    return {
        "patient": f"Patient/{_PATIENT}",
        "conditions": f"Condition?patient={_PATIENT}",
        **meds,
        "allergies": f"AllergyIntolerance?patient={_PATIENT}",
        "weight": newest(weight_codes),
        "height": newest(height_codes),
    }


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


def _fetcher(fhir: FhirClient, call: Mapping[str, Any]) -> _Fetcher:
    """Return the call's FHIR server and token (absent or malformed ones count as none)."""
    server = call.get("fhirServer")
    auth = call.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, dict) else None
    return _Fetcher(
        fhir,
        server if isinstance(server, str) and server else None,
        token if isinstance(token, str) else None,
    )


def _plain(value: object) -> object:
    """Return what orjson cannot encode as a dict (a Mapping) or text (anything else)."""
    return dict(value) if isinstance(value, Mapping) else str(value)


@dataclass
class _Budget:
    """What one call has gathered so far, against its caps."""

    caps: ReadCaps
    entries: int = 0
    bytes: int = 0
    pages: int = 0

    def spent(self) -> bool:
        """Tell whether another page may no longer be fetched."""
        caps = self.caps
        return self.entries >= caps.entries or self.bytes >= caps.bytes or self.pages >= caps.pages

    def fetched(self, page: Mapping[str, Any]) -> None:
        """Count a page fetched from the server (its size as compact JSON)."""
        self.pages += 1
        self.bytes += len(orjson.dumps(page, default=_plain))

    def note(self, words: str) -> tuple[str, str]:
        """Return the data-quality note for a key the caps left unread, in plain words."""
        megabytes = self.caps.bytes / (1024 * 1024)
        return (
            "chart_too_large",
            f"the chart is larger than this service reads in one request (at most "
            f"{self.caps.entries:,} entries and {megabytes:g} MB in all); {words} could not "
            "be read in full",
        )


@dataclass(frozen=True)
class FhirGatherer:
    """The RecordGatherer port over a FHIR client: prefetch first, the server where absent."""

    fhir: FhirClient
    # The prefetch templates (prefetch_templates of the loaded terminology): what is read.
    templates: Mapping[str, str]
    # Totals across every key and page of one call.
    caps: ReadCaps = field(default_factory=ReadCaps)

    def gather(self, call: Mapping[str, Any]) -> Gathered:
        """Collect prefetched (or fetched) resources into one Bundle (PrefetchMissing if not).

        An OperationOutcome, a page that cannot be read or the caps make a key unread, never
        empty.
        """
        prefetch = call.get("prefetch") or {}
        fetcher = _fetcher(self.fhir, call)
        patient_id = call["context"]["patientId"]
        entries: list[dict[str, Any]] = []
        notes: list[tuple[str, str]] = []
        unread: list[Unread] = []
        budget = _Budget(self.caps)
        for key, template in self.templates.items():
            part = PREFETCH_KEYS[key]
            value = prefetch.get(key) if key in prefetch else None
            if key not in prefetch or _is_outcome(value):
                if budget.spent():
                    unread.append(Unread(part.part, part.words))
                    notes.append(budget.note(part.words))
                    continue
                try:
                    value = fetcher.read(template.replace(_PATIENT, patient_id))
                    budget.fetched(value)
                except LookupError as exc:
                    if key not in prefetch:
                        raise PrefetchMissing(
                            f"prefetch '{key}' is absent and could not be fetched: {exc}"
                        ) from None
                    # The client said it could not get this data; neither could we.
            if value is None:
                continue  # the client found nothing for this key
            if _is_outcome(value) or not isinstance(value, Mapping):
                unread.append(Unread(part.part, part.words))
                notes.append(
                    (
                        "data_unavailable",
                        f"{part.words} could not be read from the EHR (it answered "
                        "with an error, not with an empty list)",
                    )
                )
                continue
            if value.get("resourceType") != "Bundle":
                entries.append({"resource": dict(value)})
                budget.entries += 1
                continue
            if not _pages(value, fetcher, entries, part, notes, budget):
                unread.append(Unread(part.part, part.words))
        if not any(u.part in ESSENTIAL_PARTS for u in unread):
            # Without an essential part the service refuses the call: nothing to look up.
            _resolve_medications(entries, fetcher, notes)
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        return Gathered(bundle, tuple(notes), tuple(unread))


def _pages(
    page: Mapping[str, Any],
    fetcher: _Fetcher,
    entries: list[dict[str, Any]],
    key: PrefetchKey,
    notes: list[tuple[str, str]],
    budget: _Budget,
) -> bool:
    """Add a searchset's entries, following its next links; return False if incomplete."""
    words = key.words
    first = len(entries)
    seen: set[str] = set()
    while True:
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
            budget.entries += 1
        if budget.entries > budget.caps.entries:
            notes.append(budget.note(words))
            return False
        url = _next_link(page)
        if url is None:
            return True
        if key.newest_first and _enough(entries[first:]):
            # Newest first, and a measurement is in hand: older pages cannot change the answer.
            return True
        if url in seen:
            notes.append(("page_loop", f"the EHR listed the same page of {words} twice"))
            return False
        seen.add(url)
        if budget.spent():
            notes.append(budget.note(words))
            return False
        query = fetcher.query_of(url)
        try:
            if query is None:
                raise LookupError("the next page is on another server")
            answer = fetcher.read(query)
        except LookupError:
            notes.append(("page_unread", f"a further page of {words} could not be read"))
            return False
        budget.fetched(answer)
        if _is_outcome(answer) or answer.get("resourceType") != "Bundle":
            notes.append(("page_unread", f"a further page of {words} could not be read"))
            return False
        page = answer


def _enough(entries: list[dict[str, Any]]) -> bool:
    """Tell whether newest-first results hold a measurement and did come newest first.

    A server that ignored `_sort` would list them in another order: then every page is read,
    so the reader still finds the latest one.
    """
    times: list[float] = []
    measured = False
    for entry in entries:
        res = entry.get("resource")
        if not isinstance(res, dict):
            continue
        key = sort_key(effective_time(res), 0)
        if not key.dated:
            return False
        times.append(key.seconds)
        value = res.get("valueQuantity")
        number = value.get("value") if isinstance(value, dict) else None
        number = None if isinstance(number, bool) else number
        if res.get("status") in MEASURED and isinstance(number, int | float) and number > 0:
            measured = True
    # Two dated entries at least: one alone shows no order (a server may page one at a time).
    return measured and len(times) > 1 and all(a >= b for a, b in itertools.pairwise(times))


def _wanted_medications(entries: list[dict[str, Any]], fetcher: _Fetcher) -> list[str]:
    """Return the ids of Medications that orders point to and the entries do not hold."""
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
    return wanted


def _resolve_medications(
    entries: list[dict[str, Any]], fetcher: _Fetcher, notes: list[tuple[str, str]]
) -> None:
    """Fetch the Medications that orders point to and the prefetch did not include."""
    for n, rid in enumerate(_wanted_medications(entries, fetcher)):
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
