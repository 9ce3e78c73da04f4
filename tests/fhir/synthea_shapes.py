"""Synthea-shaped FHIR R4 resources, for chart fixtures and the big-chart generator.

The shapes copy what Synthea writes (learned from smart-on-fhir/generated-sample-data, R4/SYNTHEA,
commit 25ac808; see tests/fhir/charts/README.md): urn:uuid references, a `meta.tag`, RxNorm
product codes with the display repeated as text, a dosage line with `sequence` 1, a `timing.repeat`,
`asNeededBoolean`, and a `doseQuantity` holding only a value (no unit); weights as LOINC 29463-7 in
kg with `status` final; Conditions with `clinicalStatus`, `verificationStatus`, onset and recorded
dates. The DM/PM additions (the myositis Condition, guideline drugs) are ours.

    python tests/fhir/synthea_shapes.py     rewrite tests/fhir/charts/synthea-*.json
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
TAG = {"tag": [{"system": "https://smarthealthit.org/tags", "code": "synthea-5-2019"}]}
PATIENT_ID = "018f428e-34f6-4707-8009-5ad742f901e7"
SUBJECT = {"reference": f"urn:uuid:{PATIENT_ID}"}
CHARTS = Path(__file__).resolve().parent / "charts"

# RxNorm products used below. Guideline products are in the terminology; the others are the
# non-guideline drugs Synthea prescribes (codes and displays as Synthea writes them).
PREDNISONE_5 = ("312617", "predniSONE 5 MG Oral Tablet")
METHOTREXATE_2_5 = ("105585", "Methotrexate 2.5 MG Oral Tablet")
AZATHIOPRINE_50 = ("197388", "Azathioprine 50 MG Oral Tablet")
OTHERS = [
    ("316672", "Simvistatin 10 MG"),
    ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ("849574", "Naproxen sodium 220 MG Oral Tablet"),
    ("316049", "Hydrochlorothiazide 25 MG"),
    ("562251", "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet"),
    ("1049221", "Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet"),
    ("310965", "Ibuprofen 200 MG Oral Tablet"),
    ("866414", "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet [Toprol]"),
    ("904419", "Alendronic acid 10 MG Oral Tablet"),
    ("2001499", "Vitamin B 12 5 MG/ML Injectable Solution"),
]


def uid(seed: str) -> str:
    """Return a stable uuid for a seed, as Synthea gives every resource one."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def entry(resource: dict[str, Any]) -> dict[str, Any]:
    """Wrap a resource as a Synthea bundle entry (fullUrl urn:uuid, request for transactions)."""
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    """Return a Synthea transaction Bundle."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry(r) for r in resources]}


def patient(birth: str = "1968-04-02", **extra: Any) -> dict[str, Any]:
    """Return a Synthea Patient (names and identifiers trimmed to the shape)."""
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "name": [
            {"use": "official", "family": "Koepp521", "given": ["Abdul218"], "prefix": ["Mr."]}
        ],
        "gender": "male",
        "birthDate": birth,
        "meta": TAG,
    }
    res.update(extra)
    return res


def condition(
    code: str,
    display: str,
    *,
    seed: str,
    clinical: str = "active",
    verification: str = "confirmed",
    onset: str = "2019-06-07T23:37:54+00:00",
    recorded: str | None = None,
    category: str | None = None,
) -> dict[str, Any]:
    """Return a Synthea Condition (SNOMED CT code, clinical and verification status)."""
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": uid(seed),
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical,
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": verification,
                }
            ]
        },
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
        "subject": SUBJECT,
        "encounter": {"reference": f"urn:uuid:{uid(seed + '-enc')}"},
        "onsetDateTime": onset,
        "recordedDate": recorded or onset,
        "meta": TAG,
    }
    if category is not None:
        res["category"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": category,
                    }
                ]
            }
        ]
    return res


def dm(seed: str = "dm", **kw: Any) -> dict[str, Any]:
    """Return the dermatomyositis Condition we add to a Synthea chart."""
    return condition("396230008", "Dermatomyositis (disorder)", seed=seed, **kw)


def dosage(
    value: float | None = 1,
    *,
    frequency: int = 1,
    period: float = 1,
    unit: str = "d",
    sequence: int = 1,
    as_needed: bool = False,
    bounds: tuple[str, str] | None = None,
    quantity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a Synthea dosage line: a count with no unit, on a timing.repeat."""
    line: dict[str, Any] = {
        "sequence": sequence,
        "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": unit}},
        "asNeededBoolean": as_needed,
    }
    if bounds is not None:
        line["timing"]["repeat"]["boundsPeriod"] = {"start": bounds[0], "end": bounds[1]}
    if value is not None or quantity is not None:
        line["doseAndRate"] = [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/dose-rate-type",
                            "code": "ordered",
                            "display": "Ordered",
                        }
                    ]
                },
                "doseQuantity": quantity if quantity is not None else {"value": value},
            }
        ]
    return line


def request(
    product: tuple[str, str],
    *,
    seed: str,
    status: str = "active",
    authored: str = "2026-03-01T09:00:00+00:00",
    lines: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Return a Synthea MedicationRequest for an RxNorm product."""
    code, display = product
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": uid(seed),
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}],
            "text": display,
        },
        "subject": SUBJECT,
        "encounter": {"reference": f"urn:uuid:{uid(seed + '-enc')}"},
        "authoredOn": authored,
        "requester": {"reference": f"urn:uuid:{uid('practitioner')}"},
        "meta": TAG,
    }
    if lines is not None:
        res["dosageInstruction"] = lines
    res.update(extra)
    return res


def weight(value: float, when: str, *, seed: str, status: str = "final", unit: str = "kg") -> dict:
    """Return a Synthea body weight Observation (LOINC 29463-7)."""
    return {
        "resourceType": "Observation",
        "id": uid(seed),
        "status": status,
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "vital-signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}],
            "text": "Body Weight",
        },
        "subject": SUBJECT,
        "effectiveDateTime": when,
        "issued": when,
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
        "meta": TAG,
    }


def big_chart(requests: int = 1000) -> dict[str, Any]:
    """Return a Synthea-shaped chart of about `requests` MedicationRequests.

    Mostly non-guideline drugs renewed over the years (each renewal stops the one before), plus
    prednisone renewed monthly with the latest active, and a stopped methotrexate course.
    """
    resources: list[dict[str, Any]] = [patient(), dm(clinical="relapse")]
    resources.append(weight(81.2, "2026-05-01T09:00:00+00:00", seed="w-big"))
    n = 0
    month = 0
    while n < requests - 30:
        for code, display in OTHERS:
            year, mon = 2010 + month // 12, month % 12 + 1
            resources.append(
                request(
                    (code, display),
                    seed=f"big-{n}",
                    status="stopped",
                    authored=f"{year}-{mon:02d}-15T09:00:00+00:00",
                    lines=[dosage(1, frequency=1, period=1)],
                )
            )
            n += 1
        month += 1
    for k in range(24):
        last = k == 23
        year, mon = 2024 + k // 12, k % 12 + 1
        resources.append(
            request(
                PREDNISONE_5,
                seed=f"big-pred-{k}",
                status="active" if last else "stopped",
                authored=f"{year}-{mon:02d}-02T09:00:00+00:00",
                lines=[dosage(4 if last else 2)],
            )
        )
    resources.append(
        request(
            METHOTREXATE_2_5,
            seed="big-mtx",
            status="stopped",
            authored="2023-01-10T09:00:00+00:00",
            lines=[dosage(6, period=1, unit="wk")],
            statusReason={"text": "Inadequate response after 6 months"},
        )
    )
    return bundle(*resources)


def prednisone(mg_per_day: int) -> dict[str, Any]:
    """Return prednisone in use at a daily dose, as the state lists it."""
    return {"agent": "prednisone", "dose": {"value": mg_per_day, "unit": "mg/day"}}


def reason(text: str) -> dict[str, Any]:
    """Return a stopping reason as plain words."""
    return {"text": text}


def charts() -> dict[str, dict[str, Any]]:
    """Return the Synthea-shaped chart fixtures: name -> fixture document."""
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, about: str, on: str, b: dict[str, Any], state: dict[str, Any]) -> None:
        out[name] = {"about": about, "evaluation_date": on, "bundle": b, "expected_state": state}

    add(
        "synthea-renewals-unitless-tablets",
        "Prednisone 5 mg tablets renewed three times (older ones stopped with no reason), the "
        "dose a bare count as Synthea writes it: one use, the latest dose, 2 x 5 mg; no history.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            request(
                PREDNISONE_5,
                seed="p1",
                status="stopped",
                authored="2025-09-01T09:00:00Z",
                lines=[dosage(4)],
            ),
            request(
                PREDNISONE_5,
                seed="p2",
                status="stopped",
                authored="2025-12-01T09:00:00Z",
                lines=[dosage(3)],
            ),
            request(PREDNISONE_5, seed="p3", authored="2026-03-01T09:00:00Z", lines=[dosage(2)]),
        ),
        {
            "current_medications": [prednisone(10)],
            "treatment_history": None,
            "unresolved_medications": None,
            "disease_control_achieved": True,
            "flare": True,
        },
    )
    add(
        "synthea-proposal-draft-not-in-use",
        "Methotrexate proposed (intent proposal) and azathioprine drafted: neither is in use or "
        "tried.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            request(METHOTREXATE_2_5, seed="mp", intent="proposal", lines=[dosage(6, unit="wk")]),
            request(AZATHIOPRINE_50, seed="ad", status="draft", lines=[dosage(2)]),
            request(PREDNISONE_5, seed="pp", lines=[dosage(1)]),
        ),
        {
            "current_medications": [prednisone(5)],
            "treatment_history": None,
            "unresolved_medications": None,
        },
    )
    add(
        "synthea-active-order-ended",
        "An active azathioprine order whose dosage dates ended months ago, and an active "
        "methotrexate order whose validity period ended: both tried (outcome unknown), not in use.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            request(
                AZATHIOPRINE_50, seed="ae", lines=[dosage(2, bounds=("2025-01-01", "2025-12-31"))]
            ),
            request(
                METHOTREXATE_2_5,
                seed="me",
                lines=[dosage(6, unit="wk")],
                dispenseRequest={"validityPeriod": {"start": "2025-01-01", "end": "2025-07-01"}},
            ),
            request(PREDNISONE_5, seed="pe", lines=[dosage(3)]),
        ),
        {
            "current_medications": [prednisone(15)],
            "treatment_history": [
                {"agent": "azathioprine", "outcome": "unknown"},
                {"agent": "methotrexate", "outcome": "unknown"},
            ],
            "unresolved_medications": None,
        },
    )
    add(
        "synthea-indication-is-not-an-outcome",
        "Rituximab given for 'failed methotrexate' (reasonCode, the indication) and stopped with "
        "no stopping reason; methotrexate stopped because 'Prior authorization failed': neither "
        "is a clinical failure. Azathioprine stopped with the coded reason sintol: intolerance.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            request(
                ("1657867", "rituximab 10 MG/ML Injectable Solution"),
                seed="rtx",
                status="stopped",
                reasonCode=[reason("Dermatomyositis; failed methotrexate")],
            ),
            request(
                METHOTREXATE_2_5,
                seed="mtx",
                status="stopped",
                statusReason=reason("Prior authorization failed"),
            ),
            request(
                AZATHIOPRINE_50,
                seed="aza",
                status="stopped",
                statusReason={
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "medicationrequest-status-reason",
                            "code": "sintol",
                            "display": "Suspected intolerance",
                        }
                    ]
                },
            ),
            request(PREDNISONE_5, seed="pr", lines=[dosage(4)]),
        ),
        {
            "treatment_history": [
                # The order's authoredOn dates the course (issue 18's last_given).
                {"agent": "rituximab", "outcome": "unknown", "last_given": "2026-03-01"},
                {"agent": "methotrexate", "outcome": "unknown"},
                {"agent": "azathioprine", "outcome": "intolerance"},
            ],
        },
    )
    add(
        "synthea-taper-lines-by-dates",
        "A prednisone taper written as two dosage lines (sequence 1 then 2) with their dates: "
        "the line whose dates cover the evaluation date gives the dose.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            request(
                PREDNISONE_5,
                seed="tp",
                lines=[
                    dosage(8, sequence=1, bounds=("2026-04-01", "2026-05-15")),
                    dosage(6, sequence=2, bounds=("2026-05-16", "2026-07-31")),
                ],
            ),
        ),
        {"current_medications": [prednisone(30)]},
    )
    add(
        "synthea-taper-lines-same-side",
        "A prednisone taper of 40 then 30 mg/day with no dates: which line is current does not "
        "change the scenario (both above 10 mg/day), so the highest is used and the answer says "
        "so.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            request(PREDNISONE_5, seed="ts", lines=[dosage(8, sequence=1), dosage(6, sequence=2)]),
        ),
        {
            "current_medications": [prednisone(40)],
            "unresolved_medications": None,
        },
    )
    add(
        "synthea-taper-lines-across-10mg",
        "A prednisone taper of 15 then 5 mg/day with no dates: the scenario depends on which is "
        "current, so no dose is taken and the drug is flagged.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            request(PREDNISONE_5, seed="tx", lines=[dosage(3, sequence=1), dosage(1, sequence=2)]),
        ),
        {
            "current_medications": [{"agent": "prednisone"}],
            "unresolved_medications": ["prednisone (dose not readable)"],
        },
    )
    add(
        "synthea-weekly-from-text",
        "Methotrexate with a WK timing code, and one written only as 'QW' in the instructions: "
        "both weekly; the second with a warning.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            request(
                METHOTREXATE_2_5,
                seed="wq",
                lines=[
                    {
                        "sequence": 1,
                        "text": "6 tablets by mouth QW",
                        "timing": {"code": {"text": "QW"}},
                        "asNeededBoolean": False,
                        "doseAndRate": [{"doseQuantity": {"value": 6}}],
                    }
                ],
            ),
            request(
                PREDNISONE_5,
                seed="wk",
                lines=[
                    {
                        "sequence": 1,
                        "timing": {
                            "code": {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation",
                                        "code": "QD",
                                    }
                                ]
                            }
                        },
                        "asNeededBoolean": False,
                        "doseAndRate": [{"doseQuantity": {"value": 4}}],
                    }
                ],
            ),
        ),
        {
            "current_medications": [
                {"agent": "methotrexate", "dose": {"value": 15, "unit": "mg/week"}},
                {"agent": "prednisone", "dose": {"value": 20, "unit": "mg/day"}},
            ],
            "unresolved_medications": None,
        },
    )
    add(
        "synthea-tacrolimus-forms",
        "Tacrolimus ointment (topical: left out, and said so), and non-guideline drugs Synthea "
        "prescribes (simvastatin, naproxen, metoprolol ER, vitamin B12 injection...): none "
        "blocks the answer.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            {
                **request(("0", ""), seed="tac-top", lines=[dosage(1, frequency=2)]),
                "medicationCodeableConcept": {"text": "TACROLIMUS 0.1 % TOPICAL OINTMENT"},
            },
            *[request(p, seed=f"o{k}", lines=[dosage(1)]) for k, p in enumerate(OTHERS)],
            request(PREDNISONE_5, seed="pt", lines=[dosage(4)]),
        ),
        {
            "current_medications": [prednisone(20)],
            "unresolved_medications": None,
        },
    )
    add(
        "synthea-tacrolimus-er-and-injection",
        "An extended-release tacrolimus product (RxNorm 1664463, a code the terminology does not "
        "know) and an injectable one named only in words: both "
        "are tacrolimus, by name.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            request(
                ("1664463", "24 HR tacrolimus 1 MG Extended Release Oral Tablet"),
                seed="ter",
                status="stopped",
                statusReason=reason("Ineffective"),
            ),
            {
                **request(("0", ""), seed="tin", status="completed"),
                "medicationCodeableConcept": {"text": "tacrolimus 5 MG/ML Injectable Solution"},
            },
            request(PREDNISONE_5, seed="ptac", lines=[dosage(4)]),
        ),
        {
            "treatment_history": [{"agent": "tacrolimus", "outcome": "inadequate_response"}],
            "unresolved_medications": None,
        },
    )
    add(
        "synthea-condition-inactive",
        "A Synthea-shaped dermatomyositis Condition marked inactive: controlled, not flaring.",
        "2026-06-01",
        bundle(
            patient(), dm(clinical="inactive"), request(PREDNISONE_5, seed="ci", lines=[dosage(1)])
        ),
        {"disease_control_achieved": True, "flare": False},
    )
    add(
        "synthea-condition-relapse-after-remission",
        "A problem-list entry in remission (2025) and a newer encounter diagnosis of relapse "
        "(2026), with a refuted polymyositis entry: dermatomyositis, a flare after control.",
        "2026-06-01",
        bundle(
            patient(),
            dm(
                seed="dm-pl",
                clinical="remission",
                onset="2025-02-01T09:00:00+00:00",
                category="problem-list-item",
            ),
            dm(
                seed="dm-ed",
                clinical="relapse",
                onset="2026-05-02T09:00:00+00:00",
                category="encounter-diagnosis",
            ),
            condition(
                "31384009",
                "Polymyositis (disorder)",
                seed="pm-ref",
                verification="refuted",
                onset="2026-05-20T09:00:00+00:00",
            ),
            request(PREDNISONE_5, seed="cr", lines=[dosage(1)]),
        ),
        {"diagnosis": "dermatomyositis", "disease_control_achieved": True, "flare": True},
    )
    add(
        "synthea-condition-plain-active",
        "Synthea's usual dermatomyositis Condition, plain active: control and flare unknown "
        "(asked, never guessed), and no warning about the project's own extensions.",
        "2026-06-01",
        bundle(patient(), dm(), request(PREDNISONE_5, seed="pa", lines=[dosage(1)])),
        {"disease_control_achieved": None, "flare": None, "alternative_diagnoses_excluded": None},
    )
    add(
        "synthea-deceased",
        "A Synthea patient born 1963 who died in 2008 (deceasedDateTime): stated as deceased, "
        "age at death.",
        "2026-06-01",
        bundle(
            patient(birth="1963-10-05", deceasedDateTime="2008-12-14T03:11:33+00:00"),
            dm(clinical="relapse", onset="2005-01-01T09:00:00+00:00"),
            weight(70.1, "2008-06-01T09:00:00+00:00", seed="dw"),
            request(PREDNISONE_5, seed="dp", authored="2008-06-01T09:00:00Z", lines=[dosage(4)]),
        ),
        {"deceased": True, "age_years": 45},
    )
    add(
        "synthea-weights",
        "Weights: the newest entered in error and a preliminary one are skipped; the latest final "
        "one (14 months old) is used with a warning naming its date; height in feet.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            weight(95.0, "2026-05-20T09:00:00+00:00", seed="w3", status="entered-in-error"),
            weight(94.0, "2026-05-10T09:00:00+00:00", seed="w2", status="preliminary"),
            weight(2720, "2025-04-01T09:00:00+00:00", seed="w1", status="amended", unit="[oz_av]"),
            weight(80.0, "2024-04-01T09:00:00+00:00", seed="w0"),
            {
                **weight(5.5, "2025-04-01T09:00:00+00:00", seed="h1", unit="[ft_i]"),
                "code": {
                    "coding": [
                        {"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"}
                    ],
                    "text": "Body Height",
                },
            },
            request(PREDNISONE_5, seed="pw", lines=[dosage(4)]),
        ),
        {"weight": {"value": 170, "unit": "lb"}, "height": {"value": 66, "unit": "in"}},
    )
    add(
        "synthea-statement-dispense-prn",
        "A MedicationStatement on hold (in use), one not taken (STU3 'taken: n', ignored), a "
        "completed MedicationDispense of methotrexate (tried) and an as-needed prednisone order.",
        "2026-06-01",
        bundle(
            patient(),
            dm(clinical="relapse"),
            {
                "resourceType": "MedicationStatement",
                "id": uid("st-hold"),
                "status": "on-hold",
                "medicationCodeableConcept": {
                    "coding": [
                        {
                            "system": RXNORM,
                            "code": AZATHIOPRINE_50[0],
                            "display": AZATHIOPRINE_50[1],
                        }
                    ]
                },
                "subject": SUBJECT,
                "dosage": [dosage(2)],
            },
            {
                "resourceType": "MedicationStatement",
                "id": uid("st-nt"),
                "status": "active",
                "taken": "n",
                "medicationCodeableConcept": {
                    "coding": [
                        {"system": RXNORM, "code": "68149", "display": "mycophenolate mofetil"}
                    ]
                },
                "subject": SUBJECT,
            },
            {
                "resourceType": "MedicationDispense",
                "id": uid("disp"),
                "status": "completed",
                "medicationCodeableConcept": {
                    "coding": [
                        {
                            "system": RXNORM,
                            "code": METHOTREXATE_2_5[0],
                            "display": METHOTREXATE_2_5[1],
                        }
                    ]
                },
                "subject": SUBJECT,
                "whenHandedOver": "2025-10-01T09:00:00+00:00",
            },
            request(PREDNISONE_5, seed="prn", lines=[dosage(1, as_needed=True)]),
        ),
        {
            "current_medications": [
                {"agent": "azathioprine", "dose": {"value": 100, "unit": "mg/day"}},
                {"agent": "prednisone"},
            ],
            "treatment_history": [{"agent": "methotrexate", "outcome": "unknown"}],
            "unresolved_medications": ["prednisone (dose not readable)"],
        },
    )
    return out


def main() -> int:
    """Write the Synthea-shaped fixtures, with the warning codes the mapping gives them."""
    import datetime

    from myoguide.adapters.fhir import bundle_to_state

    for name, doc in charts().items():
        on = datetime.date.fromisoformat(doc["evaluation_date"])
        result = bundle_to_state(doc["bundle"], evaluation_date=on)
        doc["expected_warning_codes"] = sorted({w.code for w in result.warnings})
        path = CHARTS / f"{name}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
