"""The use cases, written once against ports; every door calls these.

The names below are loaded on first use (PEP 562), so a door that needs one use case (the
`recommend` command: assess) does not import the others (CDS Hooks, audit, feedback, records).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

# Each public name and the submodule that defines it.
_WHERE = {
    "Assessment": "assess",
    "Chart": "assess",
    "Service": "assess",
    "Auditor": "audit",
    "PatientAudit": "audit",
    "HOOK_BY_ID": "cds",
    "HOOKS": "cds",
    "CdsHooks": "cds",
    "Hook": "cds",
    "HookAnswer": "cds",
    "Feedback": "feedback",
    "report_feedback": "feedback",
    "CardRegistry": "ports",
    "ChartHandoffs": "ports",
    "Clock": "ports",
    "DraftOrderReader": "ports",
    "FeedbackReporter": "ports",
    "FeedbackSink": "ports",
    "FhirClient": "ports",
    "Gathered": "ports",
    "PrefetchMissing": "ports",
    "RecordGatherer": "ports",
    "RecordReader": "ports",
    "RecordStore": "ports",
    "ReplayCache": "ports",
    "PatientFile": "records",
    "PatientRecords": "records",
}


def __getattr__(name: str) -> object:
    """Import the submodule that defines a public name on its first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    """List the public names with the module's own."""
    return sorted({*globals(), *_WHERE})


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
