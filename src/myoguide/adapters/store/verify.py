"""Walks the MAC chains of answers and decisions and names the first broken link.

With a head kept outside the database (anchor.py), it also names a chain whose newest rows
were removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from myoguide.adapters.store.anchor import AnchorError, ChainAnchor, Head
from myoguide.adapters.store.chain import (
    GENESIS,
    UNKEYED,
    ChainKeys,
    answer_row_content,
    decision_content,
    same_json,
)
from myoguide.adapters.store.db import make_sessions
from myoguide.adapters.store.tables import AnswerModel, DecisionModel, VisitModel

# Rows are read in slices so a long record is walked in flat memory.
_BATCH = 500


@dataclass(frozen=True)
class ChainReport:
    """What the walk found: counts, the chains' last hashes, and the first problem if any."""

    answers: int
    decisions: int
    answers_head: str
    decisions_head: str
    broken: str | None
    # Whether a head kept outside the database was compared (truncation is then detected).
    anchored: bool = False

    def text(self) -> str:
        """Return the report for a person: the first broken link, or the heads to keep."""
        if self.broken is not None:
            return f"BROKEN: {self.broken}"
        kept = (
            "; the heads kept outside the database match"
            if self.anchored
            else "; no head kept outside the database, so removal of the newest rows is not checked"
        )
        return (
            f"intact: {self.answers} answers (head {self.answers_head}), "
            f"{self.decisions} decisions (head {self.decisions_head}){kept}"
        )


def verify_chain(
    engine: Engine, keys: ChainKeys = UNKEYED, anchor: ChainAnchor | None = None
) -> ChainReport:
    """Check every link's MAC, then the kept heads; name the first problem found."""
    report = _walk(engine, keys)
    if report.broken is not None or anchor is None:
        return report
    try:
        heads = anchor.read()
    except AnchorError as exc:
        return _with(report, str(exc))
    if heads is None:
        return report
    sessions = make_sessions(engine)
    with sessions() as session:
        for chain, model in (("answers", AnswerModel), ("decisions", DecisionModel)):
            head = heads.get(chain)
            if head is None:
                continue
            stored = session.scalar(select(model.row_hash).where(model.id == head.last_id))
            if stored is None:
                return _with(
                    report,
                    f"{chain}: the newest rows were removed (the head kept outside the "
                    f"database is id {head.last_id}, which the record no longer holds)",
                )
            if stored != head.mac:
                return _with(
                    report, f"{chain} id {head.last_id}: differs from the head kept outside"
                )
    return ChainReport(
        report.answers,
        report.decisions,
        report.answers_head,
        report.decisions_head,
        None,
        anchored=True,
    )


def _with(report: ChainReport, problem: str) -> ChainReport:
    """Return the report with a problem found after the walk."""
    return ChainReport(
        report.answers, report.decisions, report.answers_head, report.decisions_head, problem
    )


def current_heads(engine: Engine) -> dict[str, Head]:
    """Return each non-empty chain's newest row id and MAC."""
    heads = {}
    with make_sessions(engine)() as session:
        for chain, model in (("answers", AnswerModel), ("decisions", DecisionModel)):
            row = session.execute(
                select(model.id, model.row_hash).order_by(model.id.desc()).limit(1)
            ).first()
            if row is not None and row[1] is not None:
                heads[chain] = Head(row[0], row[1])
    return heads


def _walk(engine: Engine, keys: ChainKeys) -> ChainReport:
    """Recompute every link; stop at the first row whose MAC or link does not hold."""
    sessions = make_sessions(engine)
    answer_hashes: dict[int, str | None] = {}
    n_answers = n_decisions = 0
    prev = GENESIS
    with sessions() as session:
        query = select(AnswerModel).order_by(AnswerModel.id).execution_options(yield_per=_BATCH)
        for row in session.scalars(query):
            n_answers += 1
            answer_hashes[row.id] = row.row_hash
            problem = _answer_problem(session, row, prev, keys)
            if problem is not None:
                return ChainReport(n_answers, 0, prev, GENESIS, f"answers id {row.id}: {problem}")
            prev = str(row.row_hash)
        answers_head = prev
        prev = GENESIS
        decisions = (
            select(DecisionModel).order_by(DecisionModel.id).execution_options(yield_per=_BATCH)
        )
        for d in session.scalars(decisions):
            n_decisions += 1
            content = decision_content(
                answer_id=d.answer_id,
                answer_hash=answer_hashes.get(d.answer_id),
                decided_at=d.decided_at,
                decision=d.decision,
                chosen_recommendation=d.chosen_recommendation,
                reason=d.reason,
                reason_code=d.reason_code,
            )
            problem = _link_problem(d.prev_hash, d.row_hash, prev, keys, content)
            if problem is not None:
                return ChainReport(
                    n_answers, n_decisions, answers_head, prev, f"decisions id {d.id}: {problem}"
                )
            prev = str(d.row_hash)
    return ChainReport(n_answers, n_decisions, answers_head, prev, None)


def _answer_problem(session: Session, row: AnswerModel, prev: str, keys: ChainKeys) -> str | None:
    """Return what is wrong with one answer row, or None."""
    content = answer_row_content(row)
    problem = _link_problem(row.prev_hash, row.row_hash, prev, keys, content)
    if problem is not None or row.visit_id is None:
        return problem
    # Visits are not chained themselves; the answer saved with a visit holds its state.
    visit = session.get(VisitModel, row.visit_id)
    if visit is None:
        return f"its visit {row.visit_id} is missing"
    if not same_json(visit.state, row.input):
        return f"visit {row.visit_id}'s state differs from the state this answer was given"
    return None


def _link_problem(
    stored_prev: str | None,
    stored: str | None,
    prev: str,
    keys: ChainKeys,
    content: Mapping[str, Any],
) -> str | None:
    """Compare a row's stored link and MAC with what the key gives for its content."""
    if stored is None or stored_prev is None:
        return "has no hash (inserted outside the application)"
    if stored_prev != prev:
        return "does not link to the row before it (a row was removed, reordered or inserted)"
    if not keys.holds(prev, content, stored):
        return (
            "its content does not match its MAC under the chain key (altered after it was "
            "written, or sealed without the key)"
        )
    return None
