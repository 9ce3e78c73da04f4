"""Gathering a CDS Hooks call's record: prefetch, fetches where absent, paging, Medications.

What the data's absence means (a 412, an unresolved medication) is the service's rule; this
module only says which part of the record could not be had (service.ports.Unread).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from myoguide.adapters.fhir.codes import LOINC, MEDICATION_RESOURCES
from myoguide.service.ports import (
    ESSENTIAL_PARTS,
    FhirClient,
    Gathered,
    PrefetchMissing,
    RecordPart,
    Unread,
)

# Search results are followed through at most this many pages per prefetch key (a bound, so a
# huge or looping result cannot hold a request); hitting it is said in the data-quality card.
MAX_PAGES = 10
# Medication/{id} references fetched one by one from the FHIR server, at most this many per call.
MAX_MEDICATION_FETCHES = 25
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PATIENT = "{{context.patientId}}"
_MEDICATION_WORDS = {
    "MedicationRequest": "medication orders",
    "MedicationStatement": "medication statements",
    "MedicationAdministration": "medication administrations",
}


@dataclass(frozen=True)
class PrefetchKey:
    """One prefetch key: the part of the record it holds and its words for a person."""

    part: RecordPart
    words: str


# Every prefetch key, in the order it is gathered (and asked for in discovery).
PREFETCH_KEYS: Mapping[str, PrefetchKey] = {
    "patient": PrefetchKey("patient", "the Patient"),
    "conditions": PrefetchKey("conditions", "the problem list"),
    **{
        key: PrefetchKey("medications", _MEDICATION_WORDS[kind])
        for kind, key in MEDICATION_RESOURCES.items()
    },
    # Intolerances may name a guideline drug: their loss is a medication part's loss.
    "allergies": PrefetchKey("medications", "allergy and intolerance records"),
    "weight": PrefetchKey("measurements", "body weight"),
    "height": PrefetchKey("measurements", "body height"),
}


def prefetch_templates(weight_codes: Iterable[str], height_codes: Iterable[str]) -> dict[str, str]:
    """Return the CDS Hooks prefetch templates: everything the FHIR mapping reads.

    The LOINC codes of body weight and height come from the terminology the composition root
    loaded; this module does not read packaged data itself.
    """

    def codes(wanted: Iterable[str]) -> str:
        return ",".join(f"{LOINC}|{c}" for c in sorted(wanted))

    # _include brings the Medication a product-coded order points to in the same answer.
    meds = {
        key: f"{kind}?patient={_PATIENT}&_include={kind}:medication"
        for kind, key in MEDICATION_RESOURCES.items()
    }
    return {
        "patient": f"Patient/{_PATIENT}",
        "conditions": f"Condition?patient={_PATIENT}",
        **meds,
        "allergies": f"AllergyIntolerance?patient={_PATIENT}",
        # Every code the mapping reads, newest first: the mapping keeps the newest reading.
        "weight": f"Observation?patient={_PATIENT}&code={codes(weight_codes)}&_sort=-date&_count=1",
        "height": f"Observation?patient={_PATIENT}&code={codes(height_codes)}&_sort=-date&_count=1",
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


@dataclass(frozen=True)
class FhirGatherer:
    """The RecordGatherer port over a FHIR client: prefetch first, the server where absent."""

    fhir: FhirClient
    # The prefetch templates (prefetch_templates of the loaded terminology): what is read.
    templates: Mapping[str, str]

    def gather(self, call: Mapping[str, Any]) -> Gathered:
        """Collect prefetched (or fetched) resources into one Bundle (PrefetchMissing if not).

        An OperationOutcome, a page that cannot be read or the page bound makes a key
        unread, never empty.
        """
        prefetch = call.get("prefetch") or {}
        fetcher = _fetcher(self.fhir, call)
        patient_id = call["context"]["patientId"]
        entries: list[dict[str, Any]] = []
        notes: list[tuple[str, str]] = []
        unread: list[Unread] = []
        for key, template in self.templates.items():
            part = PREFETCH_KEYS[key]
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
                continue
            if not _pages(value, fetcher, entries, part.words, notes):
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
                ("page_bound", f"{words} run to more than {MAX_PAGES} pages; the rest was not read")
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
