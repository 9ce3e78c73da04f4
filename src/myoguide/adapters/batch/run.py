"""`myoguide audit` and `myoguide synth`: run a runner, write Parquet and the report, summarise."""

from __future__ import annotations

import datetime
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from myoguide.adapters.batch.export import (
    MAX_DECOMPRESSED_BYTES,
    MAX_LINE_BYTES,
    Problems,
    list_files,
)
from myoguide.adapters.batch.patient import schema
from myoguide.adapters.batch.runner import Runner
from myoguide.domain.audit import DECEASED
from myoguide.errors import InputError
from myoguide.knowledge.terminology import load_packaged_terminology
from myoguide.service.audit import Auditor


@dataclass
class AuditOutput:
    """The rows, what was skipped and the summary line."""

    rows: list[dict[str, Any]]
    problems: Problems
    summary: str


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Write the rows (one per in-scope patient) to a Parquet file."""
    import io

    import orjson
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    # Through Arrow's JSON reader: building arrays from Python lists makes pyarrow import pandas,
    # seconds of start-up for a few thousand rows.
    table = pa.Table.from_batches([], schema=schema())
    if rows:
        data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
        options = pj.ParseOptions(explicit_schema=schema(), unexpected_field_behavior="error")
        table = pj.read_json(io.BytesIO(data), parse_options=options)
    pq.write_table(table, path)


def audit(
    export: Path,
    out: Path,
    *,
    auditor: Auditor,
    engine: str = "local",
    evaluation_date: datetime.date,
    min_cell: int = 11,
    workers: int = 2,
    master: str | None = None,
    max_line: int = MAX_LINE_BYTES,
    max_gzip: int = MAX_DECOMPRESSED_BYTES,
    err: TextIO = sys.stderr,
) -> AuditOutput:
    """Audit a Bulk Data export folder with the given use case; write rows.parquet, report.html."""
    from myoguide.adapters.batch.report import Report, render_report

    if not export.is_dir():
        raise InputError("EXPORT", f"'{export}' is not a folder")
    if out.is_symlink():
        raise InputError("--out", f"'{out}' is a symbolic link; give the folder itself")
    files, problems = list_files(export)
    if not files:
        raise InputError("EXPORT", f"no .ndjson or .ndjson.gz files in '{export}'")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runner: Runner
    if engine == "spark":
        from myoguide.adapters.batch.spark import SparkRunner

        runner = SparkRunner(master or f"local[{workers}]", max_line=max_line, max_gzip=max_gzip)
        result = runner.run(files, auditor, evaluation_date)
    else:
        from myoguide.adapters.batch.local import LocalRunner

        with _progress(sum(f.size for f in files), err) as tick:
            runner = LocalRunner(workers, progress=tick, max_line=max_line, max_gzip=max_gzip)
            result = runner.run(files, auditor, evaluation_date)
    rows = result.rows
    problems.merge(result.problems)
    seconds = time.perf_counter() - started
    deceased = sum(1 for r in rows if r["course"] == DECEASED)
    flagged = sum(1 for r in rows if r["flags"])
    # Counts on the terminal (for the analyst who ran it); the report suppresses small cells.
    summary = (
        f"{result.patients_scanned:,} patients scanned, {len(rows):,} with DM/PM "
        f"({deceased:,} deceased by {evaluation_date.isoformat()}, not audited), from "
        f"{result.bytes / 1e6:,.1f} MB in {seconds:,.1f} s; {flagged:,} with a flag; "
        f"{problems.total:,} input lines or files skipped."
    )
    write_parquet(rows, out / "rows.parquet")
    page = render_report(
        Report(
            rows=rows,
            flags=auditor.flags,
            knowledge=auditor.service.knowledge,
            terminology=load_packaged_terminology(),
            min_cell=min_cell,
            problems=problems.lines(),
            notes=problems.lines(notes=True),
            evaluation_date=evaluation_date,
            patients_scanned=result.patients_scanned,
            engine=runner.name,
        )
    )
    (out / "report.html").write_text(page, encoding="utf-8")
    return AuditOutput(rows, problems, summary)


class _progress:
    """A tqdm bar over bytes read (then buckets audited), shown only on a terminal."""

    def __init__(self, total: int, err: TextIO) -> None:
        self.total, self.err = total, err

    def __enter__(self) -> Any:
        from tqdm import tqdm

        self.bar = tqdm(
            total=self.total,
            unit="B",
            unit_scale=True,
            desc="reading",
            file=self.err,
            disable=not self.err.isatty(),
            leave=False,
        )

        stages: set[str] = set()

        def tick(stage: str, n: int) -> None:
            if stage == "read":
                self.bar.update(n)
            elif stage not in stages:
                stages.add(stage)
                self.bar.set_description("auditing")

        return tick

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def synth(out: Path, patients: int, *, seed: int, gz: bool, err: TextIO = sys.stderr) -> str:
    """Write a synthetic export and return the summary line."""
    from tqdm import tqdm

    from myoguide.adapters.batch.synth import synthesize

    if out.exists() and any(out.iterdir()):
        raise InputError("--out", f"'{out}' exists and is not empty")
    with tqdm(
        total=patients, unit="patients", file=err, disable=not err.isatty(), leave=False
    ) as bar:
        counts = synthesize(
            out, patients, seed=seed, gz=gz, progress=lambda n: bar.update(n) and None
        )
    return (
        f"{counts['patients']:,} synthetic patients ({counts['myositis']:,} with DM/PM), "
        f"{counts['resources']:,} resources written to {out} (seed {seed})."
    )
