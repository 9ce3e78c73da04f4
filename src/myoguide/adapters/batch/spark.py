"""The Spark runner (`--engine spark`): the same per-patient function, applied by Spark.

Lines are read with `spark.read.text`, keyed by patient in `mapInArrow`, repartitioned by patient,
sorted within partitions and audited patient by patient with `audit_lines`, as the local runner
does. Needs the optional `spark` extra (pyspark) and Java 17. Problems are counted by file; Spark
does not tell a line's number, so they are reported with line 0 ("line not known").
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from myoguide.adapters.batch.export import _NAME, ExportFile, Problems
from myoguide.adapters.batch.patient import (
    COLUMNS,
    audit_lines,
    auditor,
    myositis_meaning,
    parse_line,
)
from myoguide.adapters.batch.terms import load_terms
from myoguide.errors import InputError


def _type_of(uri: str) -> str:
    m = _NAME.match(uri.rsplit("/", 1)[-1])
    return m.group("type") if m else ""


def _name_of(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def session(master: str) -> Any:
    """Return the Spark session for `master` (an existing one is reused)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "--engine", "spark needs the optional 'spark' extra: uv sync --extra spark"
        ) from None
    # Local workers run this interpreter (with myoguide installed) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master)
        .appName("myoguide-audit")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "5000")
        # A gzip file cut short must not end the run (it is reported by the local runner).
        .config("spark.sql.files.ignoreCorruptFiles", "true")
        .getOrCreate()
    )


def run_spark(
    files: list[ExportFile], evaluation_date: datetime.date, *, master: str = "local[2]"
) -> tuple[list[dict[str, Any]], Problems]:
    """Audit an export's files with Spark; returns the rows (sorted by patient) and problems."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    spark = session(master)
    spark.sparkContext.setLogLevel("ERROR")
    paths = [str(f.path.resolve()) for f in files]
    lines = spark.read.text(paths).select(F.col("value"), F.input_file_name().alias("uri"))

    # Pass 1: the DM/PM patients and the Medication resources (small), collected to the driver.
    small = [str(f.path.resolve()) for f in files if f.type in ("Condition", "Medication")]
    found = (
        spark.read.text(small).select("value", F.input_file_name().alias("uri")) if small else None
    )
    in_scope: set[str] = set()
    medications: dict[str, Any] = {}
    if found is not None:
        pass1 = pa.schema([("kind", pa.string()), ("key", pa.string()), ("line", pa.string())])

        def discover(batches: Iterator[Any]) -> Iterator[Any]:
            terms = load_terms()
            for batch in batches:
                found_rows: list[tuple[str, str | None, str | None]] = []
                for value, uri in zip(
                    batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
                ):
                    kind, parsed = parse_line(value.encode() + b"\n", _type_of(uri))
                    if kind == "patient" and myositis_meaning(parsed[1], terms):
                        found_rows.append(("p", parsed[0], None))
                    elif kind == "shared" and parsed["resourceType"] == "Medication":
                        found_rows.append(("m", parsed.get("id"), value))
                yield pa.RecordBatch.from_pylist(
                    [dict(zip(("kind", "key", "line"), r, strict=True)) for r in found_rows],
                    schema=pass1,
                )

        for row in found.mapInArrow(discover, "kind string, key string, line string").collect():
            if row["kind"] == "p":
                in_scope.add(row["key"])
            elif row["key"]:
                medications[row["key"]] = orjson.loads(row["line"])
    scope = spark.sparkContext.broadcast(frozenset(in_scope))
    meds = spark.sparkContext.broadcast(medications)

    # Pass 2: key every line by patient (problems keyed by nothing), keep the DM/PM patients.
    keyed_schema = "pid string, line string, problem string, file string"
    keyed_arrow = pa.schema([(n, pa.string()) for n in ("pid", "line", "problem", "file")])

    def key_lines(batches: Iterator[Any]) -> Iterator[Any]:
        wanted = scope.value
        for batch in batches:
            keyed_rows: list[dict[str, str | None]] = []
            for value, uri in zip(
                batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
            ):
                kind, parsed = parse_line(value.encode() + b"\n", _type_of(uri))
                if kind == "problem":
                    keyed_rows.append(
                        {"pid": None, "line": None, "problem": parsed, "file": _name_of(uri)}
                    )
                elif kind == "patient" and parsed[0] in wanted:
                    keyed_rows.append(
                        {"pid": parsed[0], "line": value, "problem": None, "file": None}
                    )
            yield pa.RecordBatch.from_pylist(keyed_rows, schema=keyed_arrow)

    keyed = lines.mapInArrow(key_lines, keyed_schema)
    problems = Problems()
    for row in keyed.where("problem is not null").collect():
        problems.add(row["problem"], row["file"], 0)

    date = evaluation_date.isoformat()
    row_schema = _row_schema()

    def audit_partition(batches: Iterator[Any]) -> Iterator[Any]:
        aud = auditor(datetime.date.fromisoformat(date))
        current: str | None = None
        group: list[bytes] = []
        rows: list[dict[str, Any]] = []

        def flush() -> None:
            if current is not None:
                row = audit_lines(current, group, meds.value, aud)
                if row is not None:
                    rows.append(row)

        for batch in batches:
            for pid, line in zip(
                batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
            ):
                if pid != current:
                    flush()
                    current, group = pid, []
                group.append(line.encode())
            if len(rows) >= 1000:
                yield pa.RecordBatch.from_pylist(rows, schema=row_schema)
                rows = []
        flush()
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=row_schema)

    patients = keyed.where("pid is not null").select("pid", "line")
    parts = max(2, spark.sparkContext.defaultParallelism * 2)
    audited = (
        patients.repartition(parts, "pid")
        .sortWithinPartitions("pid")
        .mapInArrow(audit_partition, _spark_schema())
    )
    rows = [r.asDict(recursive=True) for r in audited.collect()]
    rows.sort(key=lambda r: r["patient_id"])
    return [{c: r[c] for c in COLUMNS} for r in rows], problems


def _row_schema() -> Any:
    from myoguide.adapters.batch.run import schema

    return schema()


def _spark_schema() -> str:
    return (
        "patient_id string, diagnosis string, diagnosis_date string, course string, "
        "scenario string, first_option string, first_option_agents array<string>, "
        "data_problems array<string>, flags array<string>, knowledge_version string, "
        "resources int"
    )


__all__ = ["Path", "run_spark", "session"]
