"""The local runner: groups lines by patient through hash-partitioned spool files on disk.

Memory stays flat whatever the export's size: the export is streamed twice (the Condition files to
find the DM/PM patients, then every file to spool those patients' lines into buckets sized from
the export), and one bucket at a time per core is grouped in memory. Both cores work on every pass.
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from myoguide.adapters.batch.export import (
    Chunk,
    ExportFile,
    Problems,
    chunks,
    first_line_number,
    read_lines,
)
from myoguide.adapters.batch.patient import (
    audit_lines,
    auditor,
    medication_refs,
    myositis_meaning,
    parse_line,
)
from myoguide.adapters.batch.terms import load_terms

# Grouped in memory per bucket: about this many bytes of in-scope lines (before parsing).
BUCKET_BYTES = 32 * 1024 * 1024
Progress = Callable[[str, int], None]


@dataclass
class ScanStats:
    """What one pass over the export saw."""

    lines: int = 0
    bytes: int = 0
    problems: Problems = field(default_factory=Problems)
    medication_ids: set[str] = field(default_factory=set)


def _bucket(pid: str, n: int) -> int:
    # crc32, not hash(): the same patient must land in the same bucket in every process.
    return zlib.crc32(pid.encode()) % n


class _Where:
    """Turns a chunk's own line numbers into the file's, counting the prefix only when needed."""

    def __init__(self, chunk: Chunk) -> None:
        self.chunk = chunk
        self.base: int | None = None

    def __call__(self, n: int) -> int:
        if self.base is None:
            self.base = first_line_number(self.chunk.file.path, self.chunk.start) - 1
        return self.base + n


# ---- pass 1: who has DM or PM ------------------------------------------------------------


def _find_patients(chunk: Chunk) -> set[str]:
    terms = load_terms()
    found: set[str] = set()
    quiet = Problems()  # pass 2 reads these lines again and counts their problems once
    for _, line in read_lines(chunk, quiet):
        if b"Condition" not in line:
            continue
        kind, value = parse_line(line, chunk.file.type)
        if kind == "patient" and myositis_meaning(value[1], terms) is not None:
            found.add(value[0])
    return found


# ---- pass 2: spool their lines into buckets ------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_spool(in_scope: frozenset[str], nbuckets: int, spool: str) -> None:
    _STATE.update(in_scope=in_scope, nbuckets=nbuckets, spool=spool)


def _spool_chunk(chunk: Chunk) -> ScanStats:
    in_scope: frozenset[str] = _STATE["in_scope"]
    nbuckets: int = _STATE["nbuckets"]
    spool = Path(_STATE["spool"])
    stats = ScanStats()
    where = _Where(chunk)
    name = chunk.file.path.name
    outs: dict[int, Any] = {}
    try:
        for n, line in read_lines(chunk, stats.problems):
            stats.lines += 1
            stats.bytes += len(line)
            kind, value = parse_line(line, chunk.file.type)
            if kind == "problem":
                stats.problems.add(value, name, where(n))
            elif kind == "shared":
                if value["resourceType"] == "Medication" and isinstance(value.get("id"), str):
                    key = -1
                    if key not in outs:
                        outs[key] = (spool / f"medication-{os.getpid()}.ndjson").open("ab")
                    outs[key].write(line.rstrip(b"\r\n") + b"\n")
            elif kind == "patient":
                pid, res = value
                if pid not in in_scope:
                    continue
                stats.medication_ids.update(medication_refs(res))
                b = _bucket(pid, nbuckets)
                if b not in outs:
                    outs[b] = (spool / f"b{b}-{os.getpid()}.tsv").open("ab")
                outs[b].write(pid.encode() + b"\t" + line.rstrip(b"\r\n") + b"\n")
    finally:
        for fh in outs.values():
            fh.close()
    # read_lines numbers a gzip cut relative to the chunk, which is the whole file: no change.
    return stats


# ---- pass 3: group each bucket by patient and audit ---------------------------------------


def _init_audit(medications: dict[str, bytes], date: str, spool: str) -> None:
    _STATE.update(
        medications={k: orjson.loads(v) for k, v in medications.items()},
        date=datetime.date.fromisoformat(date),
        spool=spool,
    )


def _audit_bucket(b: int) -> list[dict[str, Any]]:
    aud = auditor(_STATE["date"])
    groups: dict[str, list[bytes]] = {}
    for path in sorted(Path(_STATE["spool"]).glob(f"b{b}-*.tsv")):
        with path.open("rb") as fh:
            for line in fh:
                key, _, body = line.partition(b"\t")
                groups.setdefault(key.decode(), []).append(body)
    rows = []
    for pid in sorted(groups):
        row = audit_lines(pid, groups.pop(pid), _STATE["medications"], aud)
        if row is not None:
            rows.append(row)
    return rows


@dataclass
class LocalResult:
    """The rows (sorted by patient), what was skipped, and what was read."""

    rows: list[dict[str, Any]]
    problems: Problems
    lines: int
    bytes: int


def run_local(
    files: list[ExportFile],
    evaluation_date: datetime.date,
    *,
    workers: int = 2,
    workdir: Path | None = None,
    progress: Progress | None = None,
) -> LocalResult:
    """Audit an export's files on this machine with `workers` processes."""
    tick = progress or (lambda _stage, _n: None)
    spool = Path(tempfile.mkdtemp(prefix="myoguide-audit-", dir=workdir))
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    try:
        conditions = [c for c in chunks(files) if c.file.type == "Condition"]
        in_scope: set[str] = set()
        with ctx.Pool(workers) as pool:
            for found in pool.imap_unordered(_find_patients, conditions):
                in_scope |= found
        total = sum(f.size for f in files)
        nbuckets = max(2 * workers, total // (BUCKET_BYTES * 8) + 1)
        stats = ScanStats()
        with ctx.Pool(
            workers, initializer=_init_spool, initargs=(frozenset(in_scope), nbuckets, str(spool))
        ) as pool:
            for part in pool.imap_unordered(_spool_chunk, chunks(files), chunksize=1):
                stats.lines += part.lines
                stats.bytes += part.bytes
                stats.problems.merge(part.problems)
                stats.medication_ids |= part.medication_ids
                tick("read", part.bytes)
        medications = dict(_read_medications(spool, stats.medication_ids))
        rows: list[dict[str, Any]] = []
        with ctx.Pool(
            workers,
            initializer=_init_audit,
            initargs=(medications, evaluation_date.isoformat(), str(spool)),
        ) as pool:
            for part_rows in pool.imap_unordered(_audit_bucket, range(nbuckets)):
                rows += part_rows
                tick("audit", 1)
        rows.sort(key=lambda r: r["patient_id"])
        return LocalResult(rows, stats.problems, stats.lines, stats.bytes)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _read_medications(spool: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """Yield the referenced Medication resources (id, line) from the spool."""
    for path in sorted(spool.glob("medication-*.ndjson")):
        with path.open("rb") as fh:
            for line in fh:
                res = orjson.loads(line)
                if res["id"] in wanted:
                    yield res["id"], line
