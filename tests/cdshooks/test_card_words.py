"""Every card text over every chart fixture and vignette bundle is in a clinician's words.

No URL other than the app's own, no snake_case id, no FHIR element name, no `Type/id` reference
(issue 17 item 8). Patient-view cards and the order-sign cards of a few drafts are scanned.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from casecheck import SHARED_EXAMPLES, VIGNETTES, load_cases
from myoguide.adapters.cdshooks.cards import (
    order_cards,
    patient_view_cards,
    unusable_cards,
    unusable_words,
)
from myoguide.adapters.fhir.drafts import read_draft_order
from myoguide.bootstrap import read_fhir
from myoguide.domain.engine import Engine
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.terminology import load_packaged_terminology
from myoguide.service import CdsHooks, Gathered, Service

FHIR = Path(__file__).resolve().parents[1] / "fhir"
BASE = "https://myoguide.test"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
KB = load_packaged()
TERMINOLOGY = load_packaged_terminology()

URL = re.compile(r"https?://[^\s)\],;]+")
SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")
CAMEL = re.compile(r"\b[a-z]+[A-Z][A-Za-z]*\b")  # clinicalStatus, doseQuantity, fullUrl
TYPE_ID = re.compile(r"\b[A-Z][a-z]+[A-Z][A-Za-z]*/|\b(Patient|Condition|Observation|Medication)/")
BUNDLE_PATH = re.compile(r"Bundle\.entry|\[\d+\]\.")


class _Clock:
    def __init__(self, day: dt.date) -> None:
        self.day = day

    def today(self) -> dt.date:
        return self.day

    def now(self) -> dt.datetime:
        return dt.datetime.combine(self.day, dt.time(12), dt.UTC)


class _Gatherer:
    templates: ClassVar[dict[str, str]] = {}

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.bundle = bundle

    def gather(self, call: Any) -> Gathered:
        return Gathered(self.bundle, (), ())


def _inverse() -> ModuleType:
    name = "state_to_bundle"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FHIR / "state_to_bundle.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _records() -> Iterator[tuple[str, dt.date, dict[str, Any]]]:
    for folder in ("charts", "bundles"):
        for path in sorted((FHIR / folder).glob("*.json")):
            doc = json.loads(path.read_text())
            yield (
                f"{folder}/{path.stem}",
                dt.date.fromisoformat(doc["evaluation_date"]),
                doc["bundle"],
            )
    inverse = _inverse()
    day = dt.date(2026, 6, 1)
    for kind, folder in (("example", SHARED_EXAMPLES), ("vignette", VIGNETTES)):
        for name, case in load_cases(folder):
            if case["expect"]["exit"] != 0 or "raw_input" in case:
                continue
            yield f"{kind}/{name}", day, inverse.state_to_bundle(case["input"], day)


def _draft(rid: str, code: str, value: float, per: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code}]},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": per}},
                "doseAndRate": [{"doseQuantity": {"value": value, "unit": "mg"}}],
            }
        ],
    }


# Over the maximum, an unreadable dose, a re-order and a ladder jump: most kinds of finding.
DRAFTS = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {"resource": _draft("mr-mtx", "6851", 30, "wk")},
        {"resource": {**_draft("mr-aza", "1256", 1, "d"), "dosageInstruction": []}},
        {"resource": _draft("mr-ifx", "191831", 300, "d")},
    ],
}


def _texts(card: dict[str, Any]) -> Iterator[str]:
    yield card["summary"]
    yield card.get("detail", "")
    for s in card.get("suggestions", []):
        yield s["label"]
        for action in s.get("actions", []):
            yield action.get("description", "")
    for link in card.get("links", []):
        yield link["label"]  # the url itself is the app's own link


def _bad_words(text: str) -> list[str]:
    found = [u for u in URL.findall(text) if not u.startswith(BASE)]
    text = URL.sub(" ", text)  # the app's own links (guideline anchors) are not words
    found += SNAKE.findall(text) + CAMEL.findall(text)
    found += [m.group(0) for m in TYPE_ID.finditer(text)]
    found += BUNDLE_PATH.findall(text)
    return found


RECORDS = list(_records())


@pytest.mark.parametrize(("name", "day", "bundle"), RECORDS, ids=[r[0] for r in RECORDS])
def test_no_card_text_carries_urls_ids_or_field_names(
    name: str, day: dt.date, bundle: dict[str, Any]
) -> None:
    service = Service(KB, Engine(KB, TERMINOLOGY), reader=read_fhir, clock=_Clock(day))
    cds = CdsHooks(service, _Gatherer(bundle), read_draft_order)
    cards: list[dict[str, Any]] = []
    pv = cds.answer({"context": {"patientId": "p"}}, "myoguide-patient-view")
    if pv.unusable is not None:
        cards += unusable_cards(
            unusable_words(pv.unusable),
            pv.data_warnings,
            version=KB.knowledge_version,
            disclaimer=KB.disclaimer,
            base_url=BASE,
        )
    elif pv.result is not None:
        cards += patient_view_cards(
            pv.result,
            KB,
            patient_id="p",
            base_url=BASE,
            data_warnings=pv.data_warnings,
            chart_token="tok",
            drafts=pv.drafts,
            state=pv.state,
        )
    signed = cds.answer(
        {"context": {"patientId": "p", "draftOrders": DRAFTS}}, "myoguide-order-sign"
    )
    cards += order_cards(signed.findings, KB, disclaimer=KB.disclaimer, base_url=BASE)
    bad = {w for card in cards for text in _texts(card) for w in _bad_words(text)}
    assert not bad, f"{name}: {sorted(bad)}"


def test_the_scan_catches_each_kind_it_looks_for() -> None:
    text = (
        "read from (MedicationRequest/mr-7) and Patient/p1: alternative_diagnoses_excluded, "
        f"clinicalStatus, http://example.org/x, Bundle.entry[3]; [page]({BASE}/guideline#rec-a_b)"
    )
    assert sorted(_bad_words(text)) == sorted(
        [
            "http://example.org/x",
            "alternative_diagnoses_excluded",
            "clinicalStatus",
            "MedicationRequest/",
            "Patient/",
            "Bundle.entry",
        ]
    )


def test_what_the_chart_says_names_an_infusion_dose_in_words() -> None:
    """A course agent's dose reads "g per infusion" on the card, never the unit code "g/dose"."""
    from myoguide.adapters.cdshooks.facts import chart_says
    from myoguide.bootstrap import default_service

    service = default_service()
    state = service.parse(
        {
            "age_years": 50,
            "diagnosis": "dermatomyositis",
            "current_medications": [
                {"agent": "rituximab", "dose": {"value": 1, "unit": "g/dose"}},
            ],
        }
    )
    lines = chart_says(state, service.knowledge)
    in_use = next(line for line in lines if line.startswith("In use: "))
    assert in_use == "In use: Rituximab 1 g per infusion"
