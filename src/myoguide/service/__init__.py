"""The use cases, written once against ports; every door calls these."""

from myoguide.service.assess import Assessment, Chart, Service
from myoguide.service.audit import Auditor, PatientAudit
from myoguide.service.cds import HOOK_BY_ID, HOOKS, CdsHooks, Hook, HookAnswer
from myoguide.service.feedback import Feedback, report_feedback
from myoguide.service.ports import (
    CardRegistry,
    ChartHandoffs,
    Clock,
    DraftOrderReader,
    FeedbackReporter,
    FeedbackSink,
    FhirClient,
    Gathered,
    PrefetchMissing,
    RecordGatherer,
    RecordReader,
    RecordStore,
    ReplayCache,
)
from myoguide.service.records import PatientFile, PatientRecords

__all__ = [
    "HOOKS",
    "HOOK_BY_ID",
    "Assessment",
    "Auditor",
    "CardRegistry",
    "CdsHooks",
    "Chart",
    "ChartHandoffs",
    "Clock",
    "DraftOrderReader",
    "Feedback",
    "FeedbackReporter",
    "FeedbackSink",
    "FhirClient",
    "Gathered",
    "Hook",
    "HookAnswer",
    "PatientAudit",
    "PatientFile",
    "PatientRecords",
    "PrefetchMissing",
    "RecordGatherer",
    "RecordReader",
    "RecordStore",
    "ReplayCache",
    "Service",
    "report_feedback",
]
