"""Reading a Bulk Data export folder: its files, their lines, and the problems met (file, line).

Nothing read from a line ever goes into a problem: only its file, line number and a kind.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# `<Type>.ndjson`, `<Type>.ndjson.gz`, and the numbered parts `<Type>.<n>.ndjson[.gz]` or
# `<Type>-<n>.ndjson[.gz]` that servers write when they split a type over several files.
_NAME = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)(?:[.-](?P<part>\d+))?\.ndjson(?P<gz>\.gz)?$")
CHUNK_BYTES = 8 * 1024 * 1024
GZIP_BLOCK = 1024 * 1024
EXAMPLES_KEPT = 20

PROBLEM_WORDS = {
    "not_json": "a line that is not JSON",
    "truncated": "a line cut short (the file ends inside a resource)",
    "not_a_resource": "a line that is not a FHIR resource (no resourceType)",
    "type_mismatch": "a resource whose resourceType differs from its file's type",
    "unknown_type": "a resource type the audit does not know",
    "no_patient": "a resource without a patient reference",
    "gzip_truncated": "a gzip file cut short (lines after the cut are lost)",
    "unreadable": "a file that could not be read",
}


@dataclass(frozen=True)
class ExportFile:
    """One NDJSON file of the export and the resource type its name gives."""

    path: Path
    type: str
    gz: bool
    size: int


@dataclass(frozen=True)
class Chunk:
    """A byte range of a plain file (whole file when gzipped) read by one worker."""

    file: ExportFile
    start: int
    end: int


@dataclass
class Problems:
    """Counts of skipped input by kind, with the first few places (file, line) of each."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def add(self, kind: str, file: str, line: int) -> None:
        """Count one problem at a file and line (1-based; 0 when the line is not known)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        places = self.examples.setdefault(kind, [])
        if len(places) < EXAMPLES_KEPT:
            places.append((file, line))

    def merge(self, other: Problems) -> None:
        """Add another worker's problems to these."""
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
            places = self.examples.setdefault(kind, [])
            places.extend(other.examples.get(kind, [])[: EXAMPLES_KEPT - len(places)])

    @property
    def total(self) -> int:
        """Return how many lines or files were skipped."""
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """Return one line per kind, then the places kept, for a person to read."""
        out = []
        for kind in sorted(self.counts):
            where = ", ".join(
                f"{f}:{n}" if n else f"{f} (line not known)"
                for f, n in sorted(self.examples.get(kind, []))
            )
            more = " ..." if self.counts[kind] > len(self.examples.get(kind, [])) else ""
            out.append(f"{self.counts[kind]} x {PROBLEM_WORDS.get(kind, kind)}: {where}{more}")
        return out


def list_files(folder: Path) -> tuple[list[ExportFile], list[str]]:
    """Return the export's NDJSON files (sorted) and the names of files that are not NDJSON."""
    files, others = [], []
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        m = _NAME.match(p.name)
        if m is None:
            if p.name != "manifest.json" and not p.name.startswith("."):
                others.append(p.name)
            continue
        files.append(ExportFile(p, m.group("type"), bool(m.group("gz")), p.stat().st_size))
    return files, others


def chunks(files: list[ExportFile], chunk_bytes: int = CHUNK_BYTES) -> list[Chunk]:
    """Split plain files into byte ranges (cut at line ends by the reader); gzip stays whole."""
    out = []
    for f in files:
        if f.gz or f.size <= chunk_bytes:
            out.append(Chunk(f, 0, f.size))
            continue
        out += [Chunk(f, s, min(s + chunk_bytes, f.size)) for s in range(0, f.size, chunk_bytes)]
    # Largest first, so the two cores finish together.
    return sorted(out, key=lambda c: c.end - c.start, reverse=True)


def first_line_number(path: Path, start: int) -> int:
    """Return the 1-based number of the line that starts after byte `start` (a chunk's first)."""
    if start == 0:
        return 1
    n = 0
    with path.open("rb") as fh:
        left = start
        while left > 0:
            block = fh.read(min(left, 1 << 20))
            if not block:
                break
            n += block.count(b"\n")
            left -= len(block)
    # The chunk skips the partial line it starts in, so its first line is the next one.
    return n + 2 if not _starts_line(path, start) else n + 1


def _starts_line(path: Path, start: int) -> bool:
    with path.open("rb") as fh:
        fh.seek(start - 1)
        return fh.read(1) == b"\n"


def read_lines(chunk: Chunk, problems: Problems) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number within the chunk, 1-based; line without its end; complete) per line.

    Read in large blocks. A plain chunk owns the lines that start inside [start, end); `complete`
    is False only for a last line the file ends inside of. A gzip file cut short yields what
    could be read and records one `gzip_truncated` problem.
    """
    f = chunk.file
    name = f.path.name
    n = 0
    try:
        if f.gz:
            with gzip.open(f.path, "rb") as fh:
                rest = b""
                try:
                    # read1: what was decompressed before a cut is still handed out.
                    while block := fh.read1(GZIP_BLOCK):
                        lines = (rest + block).split(b"\n")
                        rest = lines.pop()
                        for line in lines:
                            n += 1
                            yield n, line, True
                except (EOFError, zlib.error, gzip.BadGzipFile, OSError):
                    problems.add("gzip_truncated", name, n + 1)
                    return
                if rest:
                    yield n + 1, rest, False
            return
        with f.path.open("rb") as fh:
            if chunk.start > 0:
                fh.seek(chunk.start - 1)
                if fh.read(1) != b"\n":
                    fh.readline()  # the previous chunk owns the line that straddles the cut
            begin = fh.tell()
            if begin >= chunk.end:
                return
            data = fh.read(chunk.end - begin)
            if not data.endswith(b"\n"):
                data += fh.readline()  # this chunk owns the line that straddles its end
        lines = data.split(b"\n")
        last = lines.pop()  # empty when the data ends with a line end
        for line in lines:
            n += 1
            yield n, line, True
        if last:
            yield n + 1, last, False
    except OSError:
        problems.add("unreadable", name, 0)


def cpu_count() -> int:
    """Return the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
