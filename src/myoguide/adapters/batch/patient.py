"""The per-patient function both runners apply: a patient's NDJSON lines in, one audit row out.

It maps the lines with the FHIR door's mapping (bundle_to_state), answers with the engine and
keeps the row of domain/audit.py, plus what the batch door adds: the patient id, the diagnosis
and when it was recorded, and the FHIR door's data problems (codes, never text from the record).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from myoguide.adapters.batch.keys import KNOWN_TYPES, SHARED_TYPES, patient_of, reference_id
from myoguide.adapters.batch.terms import Terms, load_terms
from myoguide.adapters.fhir import bundle_to_state
from myoguide.domain.audit import audit_patient, unusable_row
from myoguide.domain.engine import Engine
from myoguide.domain.state import parse_state
from myoguide.errors import InputError
from myoguide.knowledge.flags import Flags, load_packaged_flags
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.model import Knowledge

_IGNORED_STATUS = frozenset({"refuted", "entered-in-error"})
# The Parquet columns, in order; both runners produce exactly these.
COLUMNS = (
    "patient_id",
    "diagnosis",
    "diagnosis_date",
    "course",
    "scenario",
    "first_option",
    "first_option_agents",
    "data_problems",
    "flags",
    "knowledge_version",
    "resources",
)


@dataclass(frozen=True)
class Auditor:
    """What the per-patient function needs, built once per process."""

    knowledge: Knowledge
    engine: Engine
    flags: Flags
    terms: Terms
    evaluation_date: datetime.date


@cache
def auditor(evaluation_date: datetime.date) -> Auditor:
    """Return this process's Auditor for an evaluation date (knowledge loaded once)."""
    kb = load_packaged()
    return Auditor(kb, Engine(kb), load_packaged_flags(kb), load_terms(), evaluation_date)


def parse_line(line: bytes, file_type: str) -> tuple[str, Any]:
    """Classify one NDJSON line: ('patient', (id, resource)), ('shared', resource), ('blank', None)
    or ('problem', kind)."""
    stripped = line.strip()
    if not stripped:
        return "blank", None
    try:
        res = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        # A line the file ends inside of, or one that opens an object it never closes, was cut.
        cut = not line.endswith(b"\n") or (
            stripped.startswith(b"{") and not stripped.endswith(b"}")
        )
        return "problem", "truncated" if cut else "not_json"
    if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
        return "problem", "not_a_resource"
    rt = res["resourceType"]
    if rt not in KNOWN_TYPES:
        return "problem", "unknown_type"
    if rt != file_type and file_type in KNOWN_TYPES:
        return "problem", "type_mismatch"
    if rt in SHARED_TYPES:
        return "shared", res
    pid = patient_of(res)
    if pid is None:
        return "problem", "no_patient"
    return "patient", (pid, res)


def myositis_meaning(res: Mapping[str, Any], terms: Terms) -> str | None:
    """Return the DM/PM meaning of a Condition by the terminology table, or None."""
    if res.get("resourceType") != "Condition":
        return None
    status = res.get("verificationStatus")
    if isinstance(status, dict):
        for c in status.get("coding") or ():
            if isinstance(c, dict) and c.get("code") in _IGNORED_STATUS:
                return None
    code = res.get("code")
    if not isinstance(code, dict):
        return None
    for c in code.get("coding") or ():
        if isinstance(c, dict):
            meaning = terms.in_scope(str(c.get("system")), str(c.get("code")))
            if meaning is not None:
                return meaning
    return None


def medication_refs(res: Mapping[str, Any]) -> list[str]:
    """Return the Medication ids a medication resource references."""
    rid = reference_id(res.get("medicationReference"), "Medication")
    return [rid] if rid else []


def _condition_date(res: Mapping[str, Any]) -> str | None:
    for key in ("recordedDate", "onsetDateTime"):
        value = res.get(key)
        if isinstance(value, str) and len(value) >= 10:
            return value[:10]
    return None


def audit_resources(
    pid: str,
    resources: Iterable[dict[str, Any]],
    medications: Mapping[str, dict[str, Any]],
    aud: Auditor,
) -> dict[str, Any] | None:
    """Return the audit row of one patient from their resources, or None if not DM/PM."""
    entries: list[dict[str, Any]] = []
    meanings: set[str] = set()
    dates: list[str] = []
    needed: set[str] = set()
    for res in resources:
        entries.append({"resource": res})
        meaning = myositis_meaning(res, aud.terms)
        if meaning is not None:
            meanings.add(meaning)
            when = _condition_date(res)
            if when:
                dates.append(when)
        if res.get("resourceType") in ("MedicationRequest", "MedicationStatement"):
            needed.update(medication_refs(res))
    if not meanings:
        return None
    entries += [
        {"fullUrl": f"Medication/{m}", "resource": medications[m]}
        for m in sorted(needed)
        if m in medications
    ]
    # Resources in the order a record was written does not matter to the mapping; a fixed order
    # makes both runners give the same warnings.
    entries.sort(key=lambda e: orjson.dumps(e["resource"], option=orjson.OPT_SORT_KEYS))
    mapped = bundle_to_state(
        {"resourceType": "Bundle", "type": "collection", "entry": entries},
        evaluation_date=aud.evaluation_date,
        rxnorm_to_agent=aud.terms.rxnorm_to_agent,
    )
    problems = tuple(f"fhir.{w.code}" for w in mapped.warnings)
    try:
        state = parse_state(mapped.state, aud.knowledge)
    except InputError as exc:
        row = unusable_row((*problems, f"input.{exc.field}"), aud.knowledge.knowledge_version)
    else:
        result = aud.engine.recommend(state)
        row, _ = audit_patient(state, result, aud.flags, aud.knowledge, problems)
    diagnosis = "+".join(sorted(meanings))
    return {
        "patient_id": pid,
        "diagnosis": diagnosis,
        "diagnosis_date": min(dates) if dates else None,
        "course": row.course,
        "scenario": row.scenario,
        "first_option": row.first_option,
        "first_option_agents": list(row.first_option_agents),
        "data_problems": list(row.data_problems),
        "flags": list(row.flags),
        "knowledge_version": row.knowledge_version,
        "resources": len(entries),
    }


def audit_lines(
    pid: str,
    lines: Iterable[bytes],
    medications: Mapping[str, dict[str, Any]],
    aud: Auditor,
) -> dict[str, Any] | None:
    """Return the audit row of one patient from their NDJSON lines, or None if not DM/PM."""
    return audit_resources(pid, (orjson.loads(x) for x in lines), medications, aud)
