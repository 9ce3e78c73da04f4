"""Walks the hash chains of answers and decisions and names the first broken link."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from myoguide.adapters.store.chain import (
    GENESIS,
    answer_row_content,
    decision_content,
    link_hash,
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

    def text(self) -> str:
        """Return the report for a person: the first broken link, or the heads to keep."""
        if self.broken is not None:
            return f"BROKEN: {self.broken}"
        return (
            f"intact: {self.answers} answers (head {self.answers_head}), "
            f"{self.decisions} decisions (head {self.decisions_head})"
        )


def verify_chain(engine: Engine) -> ChainReport:
    """Recompute every link; stop at the first row whose hash or link does not hold."""
    sessions = make_sessions(engine)
    answer_hashes: dict[int, str | None] = {}
    n_answers = n_decisions = 0
    prev = GENESIS
    with sessions() as session:
        query = select(AnswerModel).order_by(AnswerModel.id).execution_options(yield_per=_BATCH)
        for row in session.scalars(query):
            n_answers += 1
            answer_hashes[row.id] = row.row_hash
            problem = _answer_problem(session, row, prev)
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
            problem = _link_problem(d.prev_hash, d.row_hash, prev, link_hash(prev, content))
            if problem is not None:
                return ChainReport(
                    n_answers, n_decisions, answers_head, prev, f"decisions id {d.id}: {problem}"
                )
            prev = str(d.row_hash)
    return ChainReport(n_answers, n_decisions, answers_head, prev, None)


def _answer_problem(session: Session, row: AnswerModel, prev: str) -> str | None:
    """Return what is wrong with one answer row, or None."""
    content = answer_row_content(row)
    problem = _link_problem(row.prev_hash, row.row_hash, prev, link_hash(prev, content))
    if problem is not None or row.visit_id is None:
        return problem
    # Visits are not chained themselves; the answer saved with a visit holds its state.
    visit = session.get(VisitModel, row.visit_id)
    if visit is None:
        return f"its visit {row.visit_id} is missing"
    if not same_json(visit.state, row.input):
        return f"visit {row.visit_id}'s state differs from the state this answer was given"
    return None


def _link_problem(stored_prev: str | None, stored: str | None, prev: str, want: str) -> str | None:
    """Compare a row's stored hashes with the recomputed ones."""
    if stored is None or stored_prev is None:
        return "has no hash (inserted outside the application)"
    if stored_prev != prev:
        return "does not link to the row before it (a row was removed, reordered or inserted)"
    if stored != want:
        return "its content does not match its hash (altered after it was written)"
    return None
