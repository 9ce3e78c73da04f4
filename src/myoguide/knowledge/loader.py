"""Loads the packaged guideline file once and validates it, failing closed with file and key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from myoguide.errors import KnowledgeError
from myoguide.knowledge.model import Knowledge

PACKAGED_FILE = "guideline.yaml"


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_knowledge(text: str, *, origin: str) -> Knowledge:
    """Parse and validate guideline YAML text; `origin` names the file in errors."""
    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise KnowledgeError(origin, "(yaml)", str(exc)) from exc
    if not isinstance(raw, dict):
        raise KnowledgeError(origin, "(top level)", "expected a mapping")
    try:
        return Knowledge.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise KnowledgeError(origin, _loc(tuple(first["loc"])), first["msg"]) from exc


def load_packaged() -> Knowledge:
    """Read and validate the guideline shipped inside the package."""
    ref = resources.files("myoguide.knowledge") / "data" / PACKAGED_FILE
    return parse_knowledge(
        ref.read_text(encoding="utf-8"), origin=f"knowledge/data/{PACKAGED_FILE}"
    )


def load_file(path: Path) -> Knowledge:
    """Read and validate a guideline file from disk (for editors and tests)."""
    return parse_knowledge(path.read_text(encoding="utf-8"), origin=str(path))
