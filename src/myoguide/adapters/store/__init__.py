"""The durable store: SQLite by default or PostgreSQL, schema managed by Alembic revisions."""

from myoguide.adapters.store.anchor import AnchorError, ChainAnchor
from myoguide.adapters.store.chain import UNKEYED, ChainKeys
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
from myoguide.adapters.store.records import (
    AnswerRecord,
    AnswerRow,
    DecisionRow,
    PatientRecord,
    PatientRow,
    PatientSummary,
    RecordNotFound,
    RecordStore,
    VisitRecord,
    VisitRow,
)
from myoguide.adapters.store.security import (
    SessionStore,
    SigninThrottle,
    StoreProbe,
    StoreReplayCache,
    ThrottlePolicy,
)
from myoguide.adapters.store.users import UserStore
from myoguide.adapters.store.verify import ChainReport, current_heads, verify_chain

__all__ = [
    "UNKEYED",
    "AnchorError",
    "AnswerRecord",
    "AnswerRow",
    "ChainAnchor",
    "ChainKeys",
    "ChainReport",
    "DecisionRow",
    "FeedbackItem",
    "FeedbackReport",
    "FeedbackRow",
    "FeedbackStore",
    "OverrideReason",
    "PatientRecord",
    "PatientRow",
    "PatientSummary",
    "ReasonCount",
    "RecordNotFound",
    "RecordStore",
    "SessionStore",
    "SigninThrottle",
    "StoreProbe",
    "StoreReplayCache",
    "ThrottlePolicy",
    "UserStore",
    "VisitRecord",
    "VisitRow",
    "current_heads",
    "current_revision",
    "default_url",
    "head_revision",
    "make_engine",
    "make_sessions",
    "normalise_url",
    "parse_feedback",
    "render_report",
    "upgrade",
    "verify_chain",
    "write_session",
]
