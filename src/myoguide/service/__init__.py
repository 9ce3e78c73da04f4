"""The use cases, written once against ports; every door calls these."""

from myoguide.service.assess import Assessment, Chart, Service
from myoguide.service.audit import Auditor, PatientAudit
from myoguide.service.cds import (
    CdsHooks,
    Gathered,
    HookAnswer,
    OrderLine,
    PrefetchMissing,
    prefetch_templates,
)
from myoguide.service.feedback import Feedback, report_feedback
from myoguide.service.ports import (
    CardRegistry,
    ChartHandoffs,
    Clock,
    FeedbackReporter,
    FeedbackSink,
    FhirClient,
    RecordReader,
    RecordStore,
    ReplayCache,
)
from myoguide.service.records import PatientFile, PatientRecords

__all__ = [
    "Assessment",
    "Auditor",
    "CardRegistry",
    "CdsHooks",
    "Chart",
    "ChartHandoffs",
    "Clock",
    "Feedback",
    "FeedbackReporter",
    "FeedbackSink",
    "FhirClient",
    "Gathered",
    "HookAnswer",
    "OrderLine",
    "PatientAudit",
    "PatientFile",
    "PatientRecords",
    "PrefetchMissing",
    "RecordReader",
    "RecordStore",
    "ReplayCache",
    "Service",
    "prefetch_templates",
    "report_feedback",
]
