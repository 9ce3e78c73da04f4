"""The durable store: SQLite by default or PostgreSQL, schema managed by Alembic revisions."""

from myoguide.adapters.store.db import (
    current_revision,
    default_url,
    head_revision,
    make_engine,
    make_sessions,
    normalise_url,
    upgrade,
    write_session,
)
from myoguide.adapters.store.feedback import (
    FeedbackItem,
    FeedbackReport,
    FeedbackRow,
    FeedbackStore,
    OverrideReason,
    ReasonCount,
    parse_feedback,
    render_report,
)

__all__ = [
    "FeedbackItem",
    "FeedbackReport",
    "FeedbackRow",
    "FeedbackStore",
    "OverrideReason",
    "ReasonCount",
    "current_revision",
    "default_url",
    "head_revision",
    "make_engine",
    "make_sessions",
    "normalise_url",
    "parse_feedback",
    "render_report",
    "upgrade",
    "write_session",
]
