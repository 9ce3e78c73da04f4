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
# Read (and decompress) this much at a time: memory is bounded by it plus the longest line kept.
READ_BLOCK = 1024 * 1024
# A longer line is skipped as `too_long` without being held: a FHIR resource of a patient's
# record is kilobytes; a note with an attachment may be megabytes.
MAX_LINE_BYTES = 64 * 1024 * 1024
# A gzip file is read no further than this many decompressed bytes: the rest is skipped as
# `too_big` at the line the limit falls in. Real export parts are some GB; a gzip bomb expands
# about 1,000-fold, so the limit bounds the time one small file can take, beside the line limit
# that bounds memory.
MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024 * 1024
EXAMPLES_KEPT = 20
# Files a Bulk Data client writes beside the data: left alone, never counted.
BULK_CLIENT_FILES = frozenset({"manifest.json", "log.ndjson"})

PROBLEM_WORDS = {
    "not_json": "a line that is not JSON",
    "truncated": "a line cut short (the file ends inside a resource)",
    "not_a_resource": "a line that is not a FHIR resource (no resourceType)",
    "type_mismatch": "a resource whose resourceType differs from its file's type",
    "no_patient": "a resource the audit reads that has no patient reference",
    "urn_uuid": "a resource the audit reads whose patient reference is a urn:uuid (it resolves "
    "only inside a Bundle, and an export has none)",
    "conditional_reference": "a resource the audit reads whose patient reference is a search "
    "(Patient?identifier=...), not an id",
    "not_a_patient": "a resource the audit reads whose subject is not a Patient (a Group, a "
    "Device, a Location...)",
    "too_deep": "a line nested deeper than the JSON reader allows (1,024 levels)",
    "too_long": "a line longer than the line limit (skipped without being read whole)",
    "too_big": "a gzip file that expands past the decompressed-size limit (read up to the line "
    "the limit falls in; that line and the rest of the file skipped)",
    "gzip_truncated": "a gzip file cut short (lines after the cut are lost)",
    "unreadable": "a file that could not be read",
    "symlink_outside": "a link to a file outside the export folder (not followed)",
}
# Normal content of a real export, listed apart and not counted as skipped (exit 0).
NOTE_WORDS = {
    "not_read": "resources of a type the audit does not read",
    "about_no_patient": "resources of a type the audit does not read that are about no single "
    "patient (or name one only by urn:uuid or search)",
    "other_file": "files that are not NDJSON data (left alone)",
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
        """Return how many lines or files were skipped as problems (notes not counted)."""
        return sum(n for k, n in self.counts.items() if k not in NOTE_WORDS)

    def lines(self, notes: bool = False) -> list[str]:
        """Return one line per problem kind (or per note kind) with its places, for a person."""
        out = []
        for kind in sorted(k for k in self.counts if (k in NOTE_WORDS) == notes):
            places = sorted(set(self.examples.get(kind, [])))
            where = ", ".join(f"{f}:{n}" if n else f"{f} (line not known)" for f, n in places)
            more = " ..." if self.counts[kind] > len(self.examples.get(kind, [])) else ""
            words = NOTE_WORDS[kind] if notes else PROBLEM_WORDS.get(kind, kind)
            out.append(f"{self.counts[kind]:,} x {words}: {where}{more}")
        return out


def list_files(folder: Path) -> tuple[list[ExportFile], Problems]:
    """Return the export's NDJSON files (sorted) and the files noted or refused beside them.

    A link is followed only to a file inside the export folder; one leading out is refused.
    """
    files, met = [], Problems()
    inside = folder.resolve()
    for p in sorted(folder.iterdir()):
        if p.is_symlink() and not p.resolve().is_relative_to(inside):
            met.add("symlink_outside", p.name, 0)
            continue
        if not p.is_file():
            continue
        m = _NAME.match(p.name)
        if m is None:
            if p.name not in BULK_CLIENT_FILES and not p.name.startswith("."):
                met.add("other_file", p.name, 0)
            continue
        files.append(ExportFile(p, m.group("type"), bool(m.group("gz")), p.stat().st_size))
    return files, met


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


def split_lines(
    blocks: Iterator[bytes],
    problems: Problems,
    name: str,
    max_line: int = MAX_LINE_BYTES,
    max_total: int | None = None,
) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number, 1-based; line without its end; complete) from blocks of bytes.

    Each byte is looked at a bounded number of times (no joining a growing rest onto each block),
    and a line longer than `max_line` is dropped as it streams past, counted as `too_long`.
    With `max_total`, no block is asked for once that many bytes have been seen: the line the
    limit falls in is counted as `too_big` and the rest is never read.
    """
    n = 0
    pending: list[bytes] = []  # the pieces of the line not yet ended
    held = 0
    dropping = False
    seen = 0
    over = False
    for block in blocks:
        if max_total is not None and seen + len(block) > max_total:
            block, over = block[: max_total - seen], True
        seen += len(block)
        start = 0
        while True:
            end = block.find(b"\n", start)
            if end < 0:
                piece = block[start:]
                if not dropping and held + len(piece) > max_line:
                    dropping, pending, held = True, [], 0
                if not dropping and piece:
                    pending.append(piece)
                    held += len(piece)
                break
            n += 1
            if dropping or held + end - start > max_line:
                problems.add("too_long", name, n)
            else:
                yield n, b"".join([*pending, block[start:end]]), True
            pending, held, dropping = [], 0, False
            start = end + 1
        if over:
            # The line in progress at the limit, whether or not its first byte was read.
            problems.add("too_big", name, n + 1)
            return
    if dropping:
        problems.add("too_long", name, n + 1)
    elif pending:
        yield n + 1, b"".join(pending), False


def _gzip_blocks(path: Path, problems: Problems, name: str) -> Iterator[bytes]:
    with gzip.open(path, "rb") as fh:
        try:
            # read1: what was decompressed before a cut is still handed out.
            while block := fh.read1(READ_BLOCK):
                yield block
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError):
            problems.add("gzip_truncated", name, 0)


def _range_blocks(chunk: Chunk) -> Iterator[bytes]:
    """Yield the bytes of the lines a plain chunk owns: those starting inside [start, end)."""
    with chunk.file.path.open("rb") as fh:
        pos = chunk.start
        if pos > 0:
            fh.seek(pos - 1)
            if fh.read(1) != b"\n":
                # The previous chunk owns the line that straddles the cut: skip to its end, but
                # look no further than this chunk's end (a line longer than the chunk starts in
                # none of it: reading on would read one long line once per chunk it spans).
                while pos < chunk.end:
                    skip = fh.read(min(READ_BLOCK, chunk.end - pos))
                    if not skip:
                        return
                    cut = skip.find(b"\n")
                    if cut >= 0:
                        pos += cut + 1
                        fh.seek(pos)
                        break
                    pos += len(skip)
                else:
                    return
        block = b"\n"  # nothing owned yet: nothing straddles the end
        while pos < chunk.end:
            block = fh.read(min(READ_BLOCK, chunk.end - pos))
            if not block:
                return
            pos += len(block)
            yield block
        if not block.endswith(b"\n"):
            # This chunk owns the line that straddles its end: read on to that line's end.
            while block := fh.read(READ_BLOCK):
                cut = block.find(b"\n")
                if cut >= 0:
                    yield block[: cut + 1]
                    return
                yield block


def read_lines(
    chunk: Chunk,
    problems: Problems,
    max_line: int = MAX_LINE_BYTES,
    max_gzip: int = MAX_DECOMPRESSED_BYTES,
) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number within the chunk, 1-based; line without its end; complete) per line.

    Read in bounded blocks. A plain chunk owns the lines that start inside [start, end);
    `complete` is False only for a last line the file ends inside of. A gzip file cut short
    yields what could be read and records one `gzip_truncated` problem at the line it cut;
    one expanding past `max_gzip` bytes is read that far and records one `too_big`.
    """
    f = chunk.file
    name = f.path.name
    try:
        if f.gz:
            cut = Problems()
            last = 0
            for last, line, complete in split_lines(
                _gzip_blocks(f.path, cut, name), problems, name, max_line, max_gzip
            ):
                yield last, line, complete
            if cut.counts:
                problems.add("gzip_truncated", name, last + 1)
            return
        if chunk.start == 0:
            yield from split_lines(_range_blocks(chunk), problems, name, max_line)
            return
        # A later chunk counts its lines from its own start: the places of what split_lines
        # skips (a line too long) are moved to the file's numbering before they are kept.
        own = Problems()
        yield from split_lines(_range_blocks(chunk), own, name, max_line)
        if own.counts:
            base = first_line_number(f.path, chunk.start) - 1
            for kind, places in own.examples.items():
                own.examples[kind] = [(file, n + base if n else 0) for file, n in places]
            problems.merge(own)
    except OSError:
        problems.add("unreadable", name, 0)


def cpu_count() -> int:
    """Return the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
