"""A seeded, reproducible synthetic Bulk Data export (no real person in it).

Most patients have no myositis (a Patient, encounters and vital signs); a few per cent have DM
or PM with problem-list codes (SNOMED CT and/or ICD-10-CM), product-coded medications in several
dose shapes, treatment histories and extensions, drawn from profiles that exercise every flag.
Every clinical code comes from knowledge/data/terminology.yaml. With `errors`, a handful of bad
lines are written on purpose (not JSON, cut short, no patient, unknown type).
"""

from __future__ import annotations

import datetime
import gzip
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import orjson

from myoguide.knowledge.terminology import (
    ObservationCode,
    Product,
    Terminology,
    load_packaged_terminology,
)

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
STATUS_REASON = "http://terminology.hl7.org/CodeSystem/medicationrequest-status-reason"
EXT = "https://myoguide.example/fhir/StructureDefinition/"
MYOSITIS_SHARE = 0.04
PART_LINES = 250_000

# (agent, mg, per) of a current drug; per is "d" or "wk". History: (agent, outcome).
Current = tuple[str, float, str]
History = tuple[str, str]


@dataclass(frozen=True)
class Profile:
    """A kind of DM/PM patient: clinical status, control, drugs now and before."""

    name: str
    status: str
    control: bool | None
    current: tuple[Current, ...]
    history: tuple[History, ...] = ()
    excluded: bool | None = True


PROFILES: tuple[Profile, ...] = (
    Profile("r1_no_sparing", "relapse", True, (("prednisone", 20, "d"),)),
    Profile("r1_on_aza", "relapse", True, (("prednisone", 15, "d"), ("azathioprine", 150, "d"))),
    Profile("r2_on_mtx", "relapse", True, (("prednisone", 5, "d"), ("methotrexate", 15, "wk"))),
    Profile(
        "r2_mtx_above_max", "relapse", True, (("prednisone", 5, "d"), ("methotrexate", 30, "wk"))
    ),
    Profile("r3_on_aza", "relapse", True, (("azathioprine", 100, "d"),)),
    Profile("r4_off_all", "relapse", True, ()),
    Profile("controlled", "remission", True, (("prednisone", 5, "d"), ("azathioprine", 150, "d"))),
    Profile("aza_above_max", "remission", True, (("azathioprine", 250, "d"),)),
    Profile(
        "resistant",
        "active",
        False,
        (("prednisone", 30, "d"), ("methotrexate", 20, "wk")),
        (("prednisone", "inadequate_response"), ("methotrexate", "inadequate_response")),
    ),
    Profile(
        "resistant_not_excluded",
        "active",
        False,
        (("prednisone", 30, "d"), ("methotrexate", 20, "wk")),
        (("prednisone", "inadequate_response"), ("methotrexate", "inadequate_response")),
        excluded=None,
    ),
    Profile(
        "tnf_early",
        "active",
        False,
        (("prednisone", 20, "d"), ("infliximab", 300, "wk")),
        (("prednisone", "inadequate_response"), ("methotrexate", "inadequate_response")),
    ),
    Profile(
        "alkylating_early",
        "active",
        False,
        (("prednisone", 20, "d"), ("cyclophosphamide", 100, "d")),
        (("prednisone", "inadequate_response"), ("azathioprine", "inadequate_response")),
    ),
    Profile(
        "aza_again",
        "relapse",
        True,
        (("prednisone", 5, "d"), ("azathioprine", 100, "d")),
        (("azathioprine", "intolerance"), ("methotrexate", "responded")),
    ),
    Profile(
        "after_rituximab",
        "active",
        False,
        (("prednisone", 20, "d"), ("mycophenolate_mofetil", 2000, "d")),
        (
            ("prednisone", "inadequate_response"),
            ("methotrexate", "inadequate_response"),
            ("rituximab", "inadequate_response"),
        ),
    ),
)


class _Writer:
    """Writes resources of each type to `<Type>.<n>.ndjson[.gz]` parts of PART_LINES lines."""

    def __init__(self, out: Path, gz: bool, part_lines: int) -> None:
        self.out, self.gz, self.part_lines = out, gz, part_lines
        self.files: dict[str, tuple[IO[bytes], int, int]] = {}

    def _open(self, rtype: str, part: int) -> IO[bytes]:
        name = f"{rtype}.{part:03d}.ndjson" + (".gz" if self.gz else "")
        path = self.out / name
        if self.gz:
            return cast(IO[bytes], gzip.open(path, "wb", compresslevel=1))
        return path.open("wb")

    def raw(self, rtype: str, line: bytes) -> None:
        """Write one line (bytes without its end) to the type's current part."""
        fh, part, n = self.files.get(rtype) or (self._open(rtype, 1), 1, 0)
        if n >= self.part_lines:
            fh.close()
            part, n = part + 1, 0
            fh = self._open(rtype, part)
        fh.write(line + b"\n")
        self.files[rtype] = (fh, part, n + 1)

    def write(self, res: dict[str, Any]) -> None:
        """Write one resource to its type's file."""
        self.raw(res["resourceType"], orjson.dumps(res))

    def close(self) -> None:
        """Close every file."""
        for fh, _, _ in self.files.values():
            fh.close()


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


class _Gen:
    """Draws one patient's resources from a seeded random source."""

    def __init__(self, rnd: random.Random, terminology: Terminology, today: datetime.date) -> None:
        self.rnd, self.today = rnd, today
        table = terminology.file
        # Lists in file order, as the draws below index them: the same seed gives the same bytes.
        by_meaning: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for d in table.diagnoses:
            by_meaning.setdefault((d.meaning, d.system), []).append((d.system, d.code, d.display))
        self.dx = by_meaning
        self.products: dict[str, list[Product]] = {
            a.id: list(a.products) for a in table.agents if a.products
        }
        self.ingredients = {
            a.id: (a.ingredient.code, a.ingredient.display)
            for a in table.agents
            if a.ingredient is not None
        }
        self.weight: ObservationCode = table.observations.body_weight[0]
        self.height: ObservationCode = table.observations.body_height[0]
        self.medications: list[dict[str, Any]] = []

    def _date(self, start: int = 2012) -> str:
        first = datetime.date(start, 1, 1).toordinal()
        return datetime.date.fromordinal(
            self.rnd.randint(first, self.today.toordinal())
        ).isoformat()

    def patient(self, pid: str, age: int) -> dict[str, Any]:
        born = self.today.replace(year=self.today.year - age) - datetime.timedelta(
            days=self.rnd.randint(1, 360)
        )
        return {
            "resourceType": "Patient",
            "id": pid,
            "gender": self.rnd.choice(["female", "male", "unknown"]),
            "birthDate": born.isoformat(),
            "name": [{"family": "Synthetic", "given": [f"Person{pid[-6:]}"]}],
        }

    def vitals(self, pid: str, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            kind, value, unit = (
                (self.weight, round(self.rnd.uniform(48, 110), 1), "kg")
                if i % 2 == 0
                else (self.height, round(self.rnd.uniform(150, 195)), "cm")
            )
            out.append(
                {
                    "resourceType": "Observation",
                    "id": f"{pid}-obs-{i}",
                    "status": "final",
                    "code": _concept(LOINC, kind.code, kind.display),
                    "subject": {"reference": f"Patient/{pid}"},
                    "effectiveDateTime": self._date(2020),
                    "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
                }
            )
        return out

    def encounters(self, pid: str, n: int) -> list[dict[str, Any]]:
        return [
            {
                "resourceType": "Encounter",
                "id": f"{pid}-enc-{i}",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": f"Patient/{pid}"},
                "period": {"start": self._date(2015)},
            }
            for i in range(n)
        ]

    def myositis(self, pid: str, meaning: str, profile: Profile) -> list[dict[str, Any]]:
        codings = []
        shape = self.rnd.random()
        # Problem lists carry SNOMED CT, ICD-10-CM or both.
        if shape < 0.8:
            codings.append(self.rnd.choice(self.dx[(meaning, SNOMED)]))
        if shape >= 0.6:
            codings.append(self.rnd.choice(self.dx[(meaning, ICD10CM)]))
        extension = []
        if profile.control is not None:
            extension.append(
                {"url": EXT + "disease-control-achieved", "valueBoolean": profile.control}
            )
        if profile.excluded is not None:
            extension.append(
                {"url": EXT + "alternative-diagnoses-excluded", "valueBoolean": profile.excluded}
            )
        condition = {
            "resourceType": "Condition",
            "id": f"{pid}-myositis",
            "extension": extension,
            "clinicalStatus": _status(CLINICAL, profile.status),
            "verificationStatus": _status(VERIFICATION, "confirmed"),
            "category": [{"coding": [{"code": "problem-list-item"}]}],
            "code": {"coding": [{"system": s, "code": c, "display": d} for s, c, d in codings]},
            "subject": {"reference": f"Patient/{pid}"},
            "recordedDate": self._date(),
        }
        out: list[dict[str, Any]] = [condition]
        for i, (agent, mg, per) in enumerate(profile.current):
            out.append(self.current(pid, i, agent, mg, per))
        for i, (agent, outcome) in enumerate(profile.history):
            out.append(self.past(pid, i, agent, outcome))
        return out

    def _product(self, agent: str) -> Product | None:
        options = self.products.get(agent)
        return self.rnd.choice(options) if options else None

    def _medication_concept(self, agent: str) -> tuple[dict[str, Any], Product | None]:
        product = self._product(agent)
        if product is None:
            code, display = self.ingredients[agent]
            return _concept(RXNORM, code, display), None
        return _concept(RXNORM, product.code, product.display), product

    def current(self, pid: str, i: int, agent: str, mg: float, per: str) -> dict[str, Any]:
        concept, product = self._medication_concept(agent)
        res: dict[str, Any] = {
            "resourceType": self.rnd.choice(["MedicationRequest", "MedicationStatement"]),
            "id": f"{pid}-med-{i}",
            "subject": {"reference": f"Patient/{pid}"},
        }
        res["status"] = "active"
        if res["resourceType"] == "MedicationRequest":
            res["intent"] = "order"
        dose: dict[str, Any] = {"value": mg, "unit": "mg", "system": UCUM, "code": "mg"}
        repeat: dict[str, Any] = {"frequency": 1, "period": 1, "periodUnit": per}
        shape = self.rnd.random()
        if mg >= 1000 and shape < 0.5:
            dose = {"value": mg / 1000, "unit": "g", "system": UCUM, "code": "g"}
        elif per == "wk" and agent == "methotrexate" and shape < 0.4 and mg % 2.5 == 0:
            # Methotrexate 2.5 mg tablets several times a week, as often written.
            dose = {"value": 2.5, "unit": "mg", "system": UCUM, "code": "mg"}
            repeat = {"frequency": int(mg / 2.5), "period": 1, "periodUnit": "wk"}
        elif per == "d" and shape < 0.3 and mg % 2 == 0:
            dose = {**dose, "value": mg / 2}
            repeat = {"frequency": 2, "period": 1, "periodUnit": "d"}
        # Half reference a Medication resource (product code), half carry the concept inline.
        if product is not None and self.rnd.random() < 0.5:
            mid = f"med-{product.code}"
            if mid not in {m["id"] for m in self.medications}:
                self.medications.append({"resourceType": "Medication", "id": mid, "code": concept})
            res["medicationReference"] = {"reference": f"Medication/{mid}"}
        else:
            res["medicationCodeableConcept"] = concept
        dosage = [{"timing": {"repeat": repeat}, "doseAndRate": [{"doseQuantity": dose}]}]
        res["dosageInstruction" if res["resourceType"] == "MedicationRequest" else "dosage"] = (
            dosage
        )
        return res

    def past(self, pid: str, i: int, agent: str, outcome: str) -> dict[str, Any]:
        concept, _ = self._medication_concept(agent)
        res: dict[str, Any] = {
            "resourceType": "MedicationStatement",
            "id": f"{pid}-past-{i}",
            "status": "completed" if outcome == "responded" else "stopped",
            "medicationCodeableConcept": concept,
            "subject": {"reference": f"Patient/{pid}"},
            "effectivePeriod": {"end": self._date(2016)},
        }
        if outcome == "inadequate_response":
            res["statusReason"] = [{"text": "Inadequate response"}]
        elif outcome == "intolerance":
            res["statusReason"] = [_concept(STATUS_REASON, "sintol", "Suspected intolerance")]
        return res

    def other_myositis(self, pid: str) -> dict[str, Any]:
        system, code, display = self.rnd.choice(
            self.dx[("other_myositis", ICD10CM)] + self.dx[("juvenile", ICD10CM)]
        )
        return {
            "resourceType": "Condition",
            "id": f"{pid}-other",
            "clinicalStatus": _status(CLINICAL, "active"),
            "code": {"coding": [{"system": system, "code": code, "display": display}]},
            "subject": {"reference": f"Patient/{pid}"},
            "recordedDate": self._date(),
        }


def synthesize(
    out: Path,
    patients: int,
    *,
    seed: int = 1,
    today: datetime.date = datetime.date(2026, 6, 1),
    gz: bool = False,
    errors: bool = True,
    part_lines: int = PART_LINES,
    progress: Callable[[int], object] | None = None,
) -> dict[str, int]:
    """Write a synthetic export of `patients` patients into `out`; returns counts by kind."""
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    gen = _Gen(rnd, load_packaged_terminology(), today)
    writer = _Writer(out, gz, part_lines)
    counts = {"patients": 0, "myositis": 0, "resources": 0}
    try:
        for n in range(patients):
            pid = f"syn-{seed}-{n:08d}"
            roll = rnd.random()
            resources: list[dict[str, Any]]
            if roll < MYOSITIS_SHARE:
                profile = rnd.choice(PROFILES)
                meaning = rnd.choice(["dermatomyositis", "dermatomyositis", "polymyositis"])
                age = rnd.randint(19, 85) if rnd.random() > 0.03 else rnd.randint(8, 17)
                resources = [gen.patient(pid, age), *gen.myositis(pid, meaning, profile)]
                counts["myositis"] += 1
            else:
                resources = [gen.patient(pid, rnd.randint(0, 95))]
                if roll < MYOSITIS_SHARE + 0.01:
                    resources.append(gen.other_myositis(pid))
            resources += gen.vitals(pid, rnd.randint(1, 6))
            resources += gen.encounters(pid, rnd.randint(1, 8))
            for res in resources:
                writer.write(res)
            counts["patients"] += 1
            counts["resources"] += len(resources)
            if progress and n % 1000 == 999:
                progress(1000)
        for med in gen.medications:
            writer.write(med)
        if errors:
            _write_errors(writer)
    finally:
        writer.close()
    return counts


def _write_errors(writer: _Writer) -> None:
    """Write one bad line of each kind the audit must count (never a real patient's data)."""
    writer.raw("Observation", b"this line is not JSON")
    writer.write({"resourceType": "Observation", "id": "orphan-1", "status": "final"})
    writer.raw("Encounter", orjson.dumps({"resourceType": "Frobnication", "id": "x"}))
    # A resource cut short at the very end of a file.
    writer.raw("Encounter", b'{"resourceType":"Encounter","id":"cut","subject":{"refer')
