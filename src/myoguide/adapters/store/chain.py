"""The keyed chain over answers and decisions: each row's MAC covers its content and the last.

Format 2 (revision 0006, ADR 0018): HMAC-SHA256 under a key kept outside the database, so
someone who can write the database but not read the key cannot re-seal a rewritten record.
Format 1 (revisions 0004-0005) was plain SHA-256; `link_hash` keeps it for the migration's
check and for comparison in tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The first link's "previous hash": a chain starts from this, never from NULL.
GENESIS = "0" * 64


def _plain(value: Any) -> Any:
    """Return JSON data with integral floats as ints, so every backend's round trip agrees."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def instant(value: datetime) -> str:
    """Return an instant as ISO 8601 UTC text; naive values are UTC (as SQLite returns them)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def _message(prev_hash: str, content: Mapping[str, Any]) -> bytes:
    """Return the bytes a link covers: the previous link and the row's canonical JSON."""
    text = json.dumps(
        _plain(content), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return f"{prev_hash}\n{text}".encode()


def link_hash(prev_hash: str, content: Mapping[str, Any]) -> str:
    """Return format 1's link: the plain SHA-256 of the previous hash and the row's content."""
    return hashlib.sha256(_message(prev_hash, content)).hexdigest()


@dataclass(frozen=True)
class ChainKeys:
    """The chain's MAC keys: the first seals new rows; every one is tried when verifying.

    Rotation puts a new key first and keeps the old ones, so rows sealed before still verify.
    """

    keys: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.keys or any(len(k) < 16 for k in self.keys):
            raise ValueError("chain key: at least one key of 16 bytes or more is needed")

    def seal(self, prev_hash: str, content: Mapping[str, Any]) -> str:
        """Return the HMAC-SHA256 of the previous link and the content under the newest key."""
        return hmac.new(self.keys[0], _message(prev_hash, content), hashlib.sha256).hexdigest()

    def holds(self, prev_hash: str, content: Mapping[str, Any], stored: str) -> bool:
        """Tell whether a stored MAC was made by one of the keys over this link and content."""
        message = _message(prev_hash, content)
        return any(
            hmac.compare_digest(hmac.new(k, message, hashlib.sha256).hexdigest(), stored)
            for k in self.keys
        )


# For tests and library use without configuration only: a published key seals nothing.
# `myoguide serve` and `record verify` always pass the deployment's own key (bootstrap).
UNKEYED = ChainKeys((b"myoguide: no chain key configured",))


def answer_content(
    *,
    patient_id: int,
    visit_id: int | None,
    shown_at: datetime,
    knowledge_version: str,
    input_state: Mapping[str, Any],
    result: Mapping[str, Any],
    course: str,
    scenario: str | None,
    top_recommendation: str | None,
) -> dict[str, Any]:
    """Return what an answer's hash covers (everything but its own id and hashes)."""
    return {
        "patient_id": patient_id,
        "visit_id": visit_id,
        "shown_at": instant(shown_at),
        "knowledge_version": knowledge_version,
        "input": input_state,
        "result": result,
        "course": course,
        "scenario": scenario,
        "top_recommendation": top_recommendation,
    }


def answer_row_content(row: Any) -> dict[str, Any]:
    """Return what the hash of a stored answer row covers (writer and verifier use this one)."""
    return answer_content(
        patient_id=row.patient_id,
        visit_id=row.visit_id,
        shown_at=row.shown_at,
        knowledge_version=row.knowledge_version,
        input_state=row.input,
        result=row.result,
        course=row.course,
        scenario=row.scenario,
        top_recommendation=row.top_recommendation,
    )


# What a decision's link covers is versioned per row (apart from the chain's format above).
# Version 1 (rows written before revision 0008) covers the six fields below; version 2 also
# covers the clinician and the version itself, so a version-2 row cannot pass as version 1,
# nor a version-1 row gain a clinician, without breaking its link.
DECISION_CONTENT_VERSION = 2


def decision_content(
    *,
    answer_id: int,
    answer_hash: str | None,
    decided_at: datetime,
    decision: str,
    chosen_recommendation: str | None,
    reason: str | None,
    clinician: str | None,
    content_version: int,
    reason_code: str | None = None,
) -> dict[str, Any]:
    """Return what a decision's hash covers, including the hash of the answer it is about."""
    content: dict[str, Any] = {
        "answer_id": answer_id,
        "answer_hash": answer_hash,
        "decided_at": instant(decided_at),
        "decision": decision,
        "chosen_recommendation": chosen_recommendation,
        "reason": reason,
    }
    # Covered only when given, so rows written before reason codes keep their hashes.
    if reason_code is not None:
        content["reason_code"] = reason_code
    if content_version == 1:
        if clinician is not None:
            raise ValueError("a version-1 decision carries no clinician")
        return content
    if content_version == 2:
        return {**content, "content_version": 2, "clinician": clinician}
    raise ValueError(f"unknown decision content version {content_version!r}")


def decision_row_content(row: Any, answer_hash: str | None) -> dict[str, Any]:
    """Return what the hash of a stored decision row covers (writer and verifier use this one)."""
    return decision_content(
        answer_id=row.answer_id,
        answer_hash=answer_hash,
        decided_at=row.decided_at,
        decision=row.decision,
        chosen_recommendation=row.chosen_recommendation,
        reason=row.reason,
        clinician=row.clinician,
        content_version=row.content_version,
        reason_code=row.reason_code,
    )


def same_json(a: Any, b: Any) -> bool:
    """Tell whether two JSON values are equal once normalised as the chain normalises them."""
    return bool(_plain(a) == _plain(b))
