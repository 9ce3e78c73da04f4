"""Loads the packaged guideline file once and validates it, failing closed with file and key."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import msgspec
import yaml

from myoguide.errors import KnowledgeError
from myoguide.knowledge.model import Knowledge, convert, problems

PACKAGED_FILE = "guideline.yaml"
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def parse_knowledge(text: str, *, origin: str) -> Knowledge:
    """Parse and validate guideline YAML text; `origin` names the file in errors."""
    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise KnowledgeError(origin, "(yaml)", str(exc)) from exc
    try:
        knowledge = convert(raw)
    except msgspec.ValidationError as exc:
        m = _AT.match(str(exc))
        path = (m.group("path") if m else "") or ""
        raise KnowledgeError(
            origin, path.lstrip(".") or "(top level)", m.group("msg") if m else str(exc)
        ) from exc
    found = problems(knowledge)
    if found:
        key, _, message = found[0].partition(": ")
        raise KnowledgeError(
            origin, key, message + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
        )
    return knowledge


def load_packaged() -> Knowledge:
    """Read and validate the guideline shipped inside the package."""
    ref = resources.files("myoguide.knowledge") / "data" / PACKAGED_FILE
    return parse_knowledge(
        ref.read_text(encoding="utf-8"), origin=f"knowledge/data/{PACKAGED_FILE}"
    )


def load_file(path: Path) -> Knowledge:
    """Read and validate a guideline file from disk (for editors and tests)."""
    return parse_knowledge(path.read_text(encoding="utf-8"), origin=str(path))
