"""What both runners do per patient: find DM/PM patients, make a patient's lines one Bundle, and
turn the service's audit of it into the row, with what the batch door adds (the patient id, the
diagnosis and when it was recorded, and how many resources the record held).

The audit itself (mapping, validation, engine, flags) is the service's use case
(`myoguide.service.audit.Auditor`), handed in by the composition root.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from myoguide.adapters.batch.keys import medication_refs, parse_line
from myoguide.adapters.fhir.codes import MEDICATION_RESOURCE_TYPES
from myoguide.domain.audit import AuditRow, deceased_row, died_by
from myoguide.knowledge.terminology import Meaning, Terminology
from myoguide.service.audit import Auditor

_IGNORED_STATUS = frozenset({"refuted", "entered-in-error"})
# Meanings that put a patient in the audit: DM, PM, and unspecified dermatopolymyositis (the
# mapping then warns that DM and PM cannot be told apart).
IN_SCOPE_MEANINGS: frozenset[Meaning] = frozenset({"dermatomyositis", "polymyositis", "unresolved"})
# An ICD-10-style code: a letter and two digits (the category), then anything.
_ICD10_STYLE = re.compile(r"[A-Z][0-9]{2}")
# The only characters outside ASCII whose str.upper() is a single ASCII letter (dotless i, long
# s; a test checks this against the whole of Unicode): Terminology.diagnosis upper-cases a code,
# so it reads "\u0131" followed by "10" as "I10".
_NON_ASCII_UPPER = {"I": ("\u0131",), "S": ("\u017f",)}


@functools.cache
def schema() -> Any:
    """Return the one definition of the audit rows: their Arrow schema, in column order.

    The Parquet file, the local runner's columns and Spark's StructType are all read from it.
    """
    import pyarrow as pa

    text, texts = pa.string(), pa.list_(pa.string())
    return pa.schema(
        [
            ("patient_id", text),
            ("diagnosis", text),
            ("diagnosis_date", text),
            ("course", text),
            ("scenario", text),
            ("first_option", text),
            ("first_option_agents", texts),
            ("data_problems", texts),
            ("flags", texts),
            ("knowledge_version", text),
            ("resources", pa.int32()),
        ]
    )


def columns() -> tuple[str, ...]:
    """Return the names of the audit row's columns, in order (from the schema)."""
    return tuple(schema().names)


def myositis_meaning(res: Mapping[str, Any], terminology: Terminology) -> str | None:
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
            # str(): a code written as a JSON number (SNOMED CT) is looked up as its digits.
            found = terminology.diagnosis(str(c.get("system")), str(c.get("code")))
            if found is not None and found.meaning in IN_SCOPE_MEANINGS:
                return found.meaning
    return None


def _needles(code: str) -> tuple[str, ...]:
    """Return texts of which every spelling Terminology.diagnosis accepts for a code holds one."""
    key = code.strip().upper()
    if key.isascii() and key.isdigit():
        return (key,)
    if key.isascii() and _ICD10_STYLE.match(key):
        # Dotted or not, in any case, with any whitespace around: the category is always there,
        # its letter in upper or lower case (or a non-ASCII letter that upper-cases to it).
        letter, digits = key[0], key[1:3]
        return tuple(
            v + digits for v in (letter, letter.lower(), *_NON_ASCII_UPPER.get(letter, ()))
        )
    # A code of another shape: no safe needle is known, so every line is parsed.
    return ("",)


def scope_codes(terminology: Terminology) -> tuple[bytes, ...]:
    """Return the bytes of which every Condition line coded in scope holds at least one."""
    return tuple(
        sorted(
            {
                n.encode()
                for d in terminology.file.diagnoses
                if d.meaning in IN_SCOPE_MEANINGS
                for n in _needles(d.code)
            }
        )
    )


def myositis_patient(
    line: bytes, file_type: str, terminology: Terminology, codes: tuple[bytes, ...]
) -> str | None:
    """Return the patient id of a Condition line that puts its patient in the audit, or None."""
    # Necessary, not sufficient: without a backslash escape an in-scope code, however written
    # (dotted or not, any case, padded, a JSON number), holds one of `codes` as its own bytes, so
    # a line holding none cannot be in scope and is not parsed. A line that holds one may still
    # be out of scope (the bytes may sit in a date or an id); parsing it decides.
    if b"\\" not in line and not any(c in line for c in codes):
        return None
    kind, value = parse_line(line, file_type)
    if kind == "patient" and myositis_meaning(value[1], terminology) is not None:
        return str(value[0])
    return None


def _condition_date(res: Mapping[str, Any]) -> str | None:
    for key in ("recordedDate", "onsetDateTime"):
        value = res.get(key)
        if isinstance(value, str) and len(value) >= 10:
            return value[:10]
    return None


def death_date(res: Mapping[str, Any]) -> tuple[bool | None, str | None]:
    """Return a Patient's deceasedBoolean and deceasedDateTime (as written), when present."""
    flag = res.get("deceasedBoolean")
    when = res.get("deceasedDateTime")
    return (flag if isinstance(flag, bool) else None, when if isinstance(when, str) else None)


def patient_row(
    pid: str,
    lines: Iterable[bytes],
    medications: Mapping[str, bytes],
    terminology: Terminology,
    auditor: Auditor,
    evaluation_date: datetime.date,
) -> dict[str, Any] | None:
    """Return one patient's audit row from their NDJSON lines, or None if not DM/PM."""
    resources = [orjson.loads(x) for x in lines]
    meanings: set[str] = set()
    dates: list[str] = []
    needed: set[str] = set()
    for res in resources:
        meaning = myositis_meaning(res, terminology)
        if meaning is not None:
            meanings.add(meaning)
            when = _condition_date(res)
            if when:
                dates.append(when)
        if res.get("resourceType") in MEDICATION_RESOURCE_TYPES:
            needed.update(medication_refs(res))
    if not meanings:
        return None
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    flag, when = death_date(patients[0]) if patients else (None, None)
    if died_by(flag, when, evaluation_date.isoformat()):
        # Counted apart, with no answer: a dead patient's doses are not audited as current care.
        return _row(pid, meanings, dates, deceased_row(auditor.knowledge_version), len(resources))
    entries = [{"resource": res} for res in resources]
    entries += [
        {"fullUrl": f"Medication/{m}", "resource": orjson.loads(medications[m])}
        for m in sorted(needed)
        if m in medications
    ]
    # The order a record was written in does not matter to the mapping; a fixed order (by
    # content) makes both runners hand the service the same Bundle.
    entries.sort(key=lambda e: orjson.dumps(e["resource"], option=orjson.OPT_SORT_KEYS))
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return _row(pid, meanings, dates, auditor.audit(bundle, evaluation_date).row, len(entries))


def _row(
    pid: str, meanings: set[str], dates: list[str], row: AuditRow, resources: int
) -> dict[str, Any]:
    """Return the batch row: the domain's row and what the batch door adds."""
    return {
        "patient_id": pid,
        "diagnosis": "+".join(sorted(meanings)),
        "diagnosis_date": min(dates) if dates else None,
        "course": row.course,
        "scenario": row.scenario,
        "first_option": row.first_option,
        "first_option_agents": list(row.first_option_agents),
        "data_problems": list(row.data_problems),
        "flags": list(row.flags),
        "knowledge_version": row.knowledge_version,
        "resources": resources,
    }
