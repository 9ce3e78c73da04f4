"""CDS Hooks 2.0 feedback: parse the POSTed body, store each item durably, report outcomes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Engine, func, select

from myoguide.adapters.store.checks import has_nul
from myoguide.adapters.store.db import make_sessions, write_session
from myoguide.adapters.store.tables import DECISIONS, OUTCOMES, DecisionModel, FeedbackRecord

Outcome = Literal["accepted", "overridden"]
UNKNOWN_SUMMARY = "(summary not recorded)"
COMMENT_ONLY = "(comment only)"
# Column widths in tables.py; checked here so SQLite and PostgreSQL refuse the same input.
MAX_SERVICE_ID, MAX_KNOWLEDGE_VERSION, MAX_SYSTEM, MAX_CODE = 200, 64, 500, 200


@dataclass(frozen=True)
class OverrideReason:
    """Why a card was overridden: a coded reason, a free-text comment, or both."""

    system: str | None
    code: str | None
    display: str | None
    comment: str | None


@dataclass(frozen=True)
class FeedbackItem:
    """One validated entry of a CDS Hooks feedback body, with its JSON kept as received."""

    card: str
    outcome: Outcome
    accepted_suggestions: tuple[str, ...]
    override_reason: OverrideReason | None
    outcome_timestamp: datetime
    raw: Mapping[str, Any] = field(hash=False, repr=False)


@dataclass(frozen=True)
class ReasonCount:
    """How many overrides of one card gave one reason."""

    system: str | None
    code: str | None
    display: str | None
    count: int


@dataclass(frozen=True)
class FeedbackRow:
    """Outcome counts for one card summary of one service."""

    service_id: str
    card_summary: str | None
    accepted: int
    overridden: int
    override_reasons: tuple[ReasonCount, ...]

    @property
    def total(self) -> int:
        """Return the number of feedback items counted."""
        return self.accepted + self.overridden

    @property
    def acceptance_rate(self) -> float:
        """Return the share of items that were accepted, between 0 and 1."""
        return self.accepted / self.total if self.total else 0.0

    @property
    def override_rate(self) -> float:
        """Return the share of items that were overridden, between 0 and 1."""
        return self.overridden / self.total if self.total else 0.0


@dataclass(frozen=True)
class FeedbackReport:
    """Feedback outcome counts per service and card summary, ordered by both."""

    rows: tuple[FeedbackRow, ...]
    # Decisions recorded on the clinician's pages, beside the cards' feedback.
    page_decisions: tuple[PageDecisionCount, ...] = ()

    @property
    def total(self) -> int:
        """Return the number of feedback items in the report."""
        return sum(row.total for row in self.rows)


@dataclass(frozen=True)
class PageDecisionCount:
    """How many decisions on the pages were of one kind and gave one coded reason."""

    decision: str
    reason_code: str | None
    count: int


# The pages' decisions and reason codes as the report reads them.
DECISION_WORDS = {
    "accepted": "accepted an option",
    "chose_other": "chose another option",
    "declined": "none of the options",
}
REASON_WORDS = {
    "patient_preference": "patient preference",
    "contraindication": "contraindication",
    "cost_or_access": "cost or access",
    "already_tried": "already tried",
    "clinical_judgment": "clinical judgment",
    "other": "other",
}


# ---- parsing -------------------------------------------------------------------------------


def _string(value: object, where: str, max_len: int | None = None) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be a string")
    if not value.strip():
        raise ValueError(f"{where}: must not be empty")
    if max_len is not None and len(value) > max_len:
        raise ValueError(f"{where}: must be at most {max_len} characters")
    return value


def _optional_string(value: object, where: str) -> str | None:
    return None if value is None else _string(value, where)


def _uuid(value: object, where: str) -> str:
    text = _string(value, where)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError(f"{where}: must be a UUID") from None


def _instant(value: object, where: str) -> datetime:
    text = _string(value, where)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{where}: must be an ISO 8601 instant, e.g. 2024-05-01T09:30:00Z"
        ) from None
    if "T" not in text.upper() or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{where}: must be an ISO 8601 instant with a time and UTC offset")
    return moment


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where}: must be a JSON object")
    return value


def _override_reason(value: object, where: str) -> OverrideReason:
    obj = _object(value, where)
    reason, comment = obj.get("reason"), obj.get("userComment")
    if reason is None and comment is None:
        raise ValueError(f"{where}: must have a reason, a userComment, or both")
    system = code = display = None
    if reason is not None:
        coding = _object(reason, f"{where}.reason")
        system = _string(coding.get("system"), f"{where}.reason.system", MAX_SYSTEM)
        code = _string(coding.get("code"), f"{where}.reason.code", MAX_CODE)
        display = _optional_string(coding.get("display"), f"{where}.reason.display")
    text = None
    if comment is not None:
        if not isinstance(comment, str):
            raise ValueError(f"{where}.userComment: must be a string")
        text = comment
    return OverrideReason(system, code, display, text)


def _suggestions(value: object, where: str, outcome: Outcome) -> tuple[str, ...]:
    if value is None:
        if outcome == "accepted":
            raise ValueError(f"{where}: is required when outcome is accepted")
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{where}: must be an array")
    if outcome == "accepted" and not value:
        raise ValueError(f"{where}: must name at least one suggestion when outcome is accepted")
    return tuple(
        _uuid(_object(item, f"{where}[{i}]").get("id"), f"{where}[{i}].id")
        for i, item in enumerate(value)
    )


def _item(value: object, where: str) -> FeedbackItem:
    obj = _object(value, where)
    card = _uuid(obj.get("card"), f"{where}.card")
    value_outcome = obj.get("outcome")
    if value_outcome not in OUTCOMES:
        raise ValueError(f"{where}.outcome: must be accepted or overridden")
    outcome = cast(Outcome, value_outcome)
    suggestions = _suggestions(
        obj.get("acceptedSuggestions"), f"{where}.acceptedSuggestions", outcome
    )
    reason_value = obj.get("overrideReason")
    reason = (
        None if reason_value is None else _override_reason(reason_value, f"{where}.overrideReason")
    )
    moment = _instant(obj.get("outcomeTimestamp"), f"{where}.outcomeTimestamp")
    try:
        # A copy that is certainly plain JSON; PostgreSQL refuses NaN and Infinity.
        raw = json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: is not plain JSON ({exc})") from None
    if has_nul(raw):
        # PostgreSQL text and JSONB cannot hold U+0000.
        raise ValueError(f"{where}: must not contain NUL (U+0000) characters")
    return FeedbackItem(card, outcome, suggestions, reason, moment, raw)


def parse_feedback(body: object) -> list[FeedbackItem]:
    """Validate a CDS Hooks feedback request body; raises ValueError naming the bad field."""
    obj = _object(body, "body")
    if "feedback" not in obj:
        raise ValueError("feedback: is required")
    entries = obj["feedback"]
    if not isinstance(entries, list):
        raise ValueError("feedback: must be an array")
    return [_item(entry, f"feedback[{i}]") for i, entry in enumerate(entries)]


# ---- storing and reporting -----------------------------------------------------------------


def _canonical_card(key: str) -> str:
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return key


class FeedbackStore:
    """Durable store of CDS Hooks feedback items and the report built from them."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = make_sessions(engine)

    def record(
        self,
        service_id: str,
        items: Sequence[FeedbackItem],
        knowledge_version: str,
        received_at: datetime,
        summaries: Mapping[str, str] | None = None,
    ) -> int:
        """Store one row per item in one transaction, committed before it returns the count."""
        _string(service_id, "service_id", MAX_SERVICE_ID)
        _string(knowledge_version, "knowledge_version", MAX_KNOWLEDGE_VERSION)
        if received_at.tzinfo is None or received_at.utcoffset() is None:
            raise ValueError("received_at: must be timezone-aware")
        known = {_canonical_card(k): v for k, v in (summaries or {}).items()}
        rows = [
            FeedbackRecord(
                service_id=service_id,
                card_uuid=item.card,
                card_summary=known.get(item.card),
                outcome=item.outcome,
                accepted_suggestions=list(item.accepted_suggestions),
                override_system=item.override_reason.system if item.override_reason else None,
                override_code=item.override_reason.code if item.override_reason else None,
                override_display=item.override_reason.display if item.override_reason else None,
                override_comment=item.override_reason.comment if item.override_reason else None,
                outcome_at=item.outcome_timestamp,
                received_at=received_at,
                knowledge_version=knowledge_version,
                raw=dict(item.raw),
            )
            for item in items
        ]
        if not rows:
            return 0
        with write_session(self._sessions) as session:
            session.add_all(rows)
        return len(rows)

    def report(self, *, knowledge_version: str | None = None) -> FeedbackReport:
        """Count outcomes and override reasons per service and card summary."""
        t = FeedbackRecord
        query = select(
            t.service_id,
            t.card_summary,
            t.outcome,
            t.override_system,
            t.override_code,
            t.override_display,
            func.count(),
        ).group_by(
            t.service_id,
            t.card_summary,
            t.outcome,
            t.override_system,
            t.override_code,
            t.override_display,
        )
        if knowledge_version is not None:
            query = query.where(t.knowledge_version == knowledge_version)
        with self._sessions() as session:
            result = session.execute(query).all()
        counts: dict[tuple[str, str | None], dict[str, int]] = {}
        reasons: dict[tuple[str, str | None], dict[tuple[str | None, str | None, str | None], int]]
        reasons = {}
        for service, summary, outcome, system, code, display, n in result:
            key = (service, summary)
            by_outcome = counts.setdefault(key, {"accepted": 0, "overridden": 0})
            by_outcome[outcome] += n
            if outcome == "overridden":
                by_reason = reasons.setdefault(key, {})
                by_reason[(system, code, display)] = by_reason.get((system, code, display), 0) + n
        rows = []
        for key in sorted(counts, key=lambda k: (k[0], k[1] is None, k[1] or "")):
            listed = sorted(
                reasons.get(key, {}).items(),
                key=lambda kv: (-kv[1], kv[0][1] or "", kv[0][2] or "", kv[0][0] or ""),
            )
            rows.append(
                FeedbackRow(
                    service_id=key[0],
                    card_summary=key[1],
                    accepted=counts[key]["accepted"],
                    overridden=counts[key]["overridden"],
                    override_reasons=tuple(
                        ReasonCount(system, code, display, n)
                        for (system, code, display), n in listed
                    ),
                )
            )
        return FeedbackReport(tuple(rows), self._page_decisions())

    def _page_decisions(self) -> tuple[PageDecisionCount, ...]:
        """Count the decisions recorded on the pages by kind and coded reason."""
        d = DecisionModel
        query = select(d.decision, d.reason_code, func.count()).group_by(d.decision, d.reason_code)
        with self._sessions() as session:
            found = session.execute(query).all()
        order = {name: i for i, name in enumerate(DECISIONS)}
        return tuple(
            PageDecisionCount(decision, code, n)
            for decision, code, n in sorted(
                found, key=lambda r: (order.get(r[0], 99), r[1] is None, r[1] or "")
            )
        )


def _reason_label(reason: ReasonCount) -> str:
    if reason.code is None:
        return COMMENT_ONLY
    return f"{reason.code} ({reason.display})" if reason.display else reason.code


def render_report(report: FeedbackReport) -> str:
    """Render a feedback report as a plain-text table, override reasons under each card."""
    decisions = _render_page_decisions(report.page_decisions)
    if not report.rows:
        return "No CDS Hooks feedback recorded.\n" + decisions
    header = ("service", "card", "accepted", "overridden", "acceptance")
    table = [
        (
            row.service_id,
            row.card_summary or UNKNOWN_SUMMARY,
            str(row.accepted),
            str(row.overridden),
            f"{row.acceptance_rate:.1%}",
        )
        for row in report.rows
    ]
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        left = [cells[i].ljust(widths[i]) for i in range(2)]
        right = [cells[i].rjust(widths[i]) for i in range(2, len(cells))]
        return "  ".join(left + right).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    for row, cells in zip(report.rows, table, strict=True):
        out.append(line(cells))
        for reason in row.override_reasons:
            out.append(f"    overridden: {_reason_label(reason)}: {reason.count}")
    out.append(f"{report.total} feedback item(s)")
    return "\n".join(out) + "\n" + decisions


def _render_page_decisions(counts: Sequence[PageDecisionCount]) -> str:
    """Render the pages' decisions by kind, with their coded reasons under each."""
    if not counts:
        return ""
    out = ["", "Decisions recorded on the pages"]
    for decision in dict.fromkeys(c.decision for c in counts):
        mine = [c for c in counts if c.decision == decision]
        out.append(f"{DECISION_WORDS.get(decision, decision)}: {sum(c.count for c in mine)}")
        for c in mine:
            if c.reason_code is not None:
                words = REASON_WORDS.get(c.reason_code, c.reason_code)
                out.append(f"    reason: {words}: {c.count}")
    return "\n".join(out) + "\n"
