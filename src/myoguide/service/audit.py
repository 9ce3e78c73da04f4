"""The population audit's use case for one patient: a FHIR record in, the audit row out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from myoguide.domain.audit import AuditRow, RaisedFlag, audit_patient, unusable_row
from myoguide.errors import InputError
from myoguide.knowledge.flags import Flags
from myoguide.service.assess import Service


@dataclass(frozen=True)
class PatientAudit:
    """One patient's audit row, the flags raised and the record's data-problem codes."""

    row: AuditRow
    flags: tuple[RaisedFlag, ...]
    problems: tuple[str, ...]  # `fhir.<code>` from the mapping, `input.<field>` if unusable


@dataclass(frozen=True)
class Auditor:
    """Audits one patient's record against the knowledge; plain data, so it pickles to workers."""

    service: Service
    flags: Flags

    @property
    def knowledge_version(self) -> str:
        """Return the version of the knowledge the rows are computed with."""
        return self.service.knowledge.knowledge_version

    def audit(self, bundle: Mapping[str, Any], evaluation_date: dt.date) -> PatientAudit:
        """Map a one-patient FHIR Bundle, validate and answer it; unusable records give that row."""
        mapped = self.service.map_record(bundle, evaluation_date)
        problems = tuple(f"fhir.{w.code}" for w in mapped.warnings)
        try:
            state = self.service.parse(mapped.state)
        except InputError as exc:
            problems = (*problems, f"input.{exc.field}")
            return PatientAudit(unusable_row(problems, self.knowledge_version), (), problems)
        result = self.service.engine.recommend(state)
        row, raised = audit_patient(state, result, self.flags, self.service.knowledge, problems)
        return PatientAudit(row, raised, problems)
