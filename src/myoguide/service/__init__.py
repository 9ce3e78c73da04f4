"""The use cases, written once against ports; every door calls these."""

from myoguide.service.assess import Assessment, Chart, Service
from myoguide.service.audit import Auditor, PatientAudit
from myoguide.service.cds import PREFETCH, CdsHooks, HookAnswer, OrderLine, PrefetchMissing
from myoguide.service.feedback import Feedback, report_feedback
from myoguide.service.ports import (
    Clock,
    FeedbackReporter,
    FeedbackSink,
    FhirClient,
    RecordReader,
    RecordStore,
    ReplayCache,
    UserStore,
)
from myoguide.service.records import PatientRecords

__all__ = [
    "PREFETCH",
    "Assessment",
    "Auditor",
    "CdsHooks",
    "Chart",
    "Clock",
    "Feedback",
    "FeedbackReporter",
    "FeedbackSink",
    "FhirClient",
    "HookAnswer",
    "OrderLine",
    "PatientAudit",
    "PatientRecords",
    "PrefetchMissing",
    "RecordReader",
    "RecordStore",
    "ReplayCache",
    "Service",
    "UserStore",
    "report_feedback",
]
