"""What a runner of the population audit is: files, a use case and a date in; rows out.

Both runners (the local process pool and Spark) meet `Runner`, and both give a `RunResult` whose
rows follow `patient.schema()`; the shared tests run every case through each.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Protocol

from myoguide.adapters.batch.export import ExportFile, Problems
from myoguide.service.audit import Auditor


@dataclass
class RunResult:
    """The rows (sorted by patient), what was skipped or noted, and what was read."""

    rows: list[dict[str, Any]]
    problems: Problems
    bytes: int
    patients_scanned: int


class Runner(Protocol):
    """A way to audit an export's files: every runner gives the same rows for the same files."""

    @property
    def name(self) -> str:
        """Return the runner's name as the report shows it."""
        ...

    def run(
        self, files: list[ExportFile], auditor: Auditor, evaluation_date: datetime.date
    ) -> RunResult:
        """Audit the files with the use case at the evaluation date."""
        ...
