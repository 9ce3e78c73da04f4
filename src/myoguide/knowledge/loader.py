"""Loads the packaged guideline file once and validates it, failing closed with file and key."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec

from myoguide.errors import KnowledgeError
from myoguide.knowledge.cache import cached, read_packaged
from myoguide.knowledge.model import (
    AgentPrescribing,
    Caution,
    DoseRule,
    Knowledge,
    RecommendationTemplate,
    Scenario,
    WarningTemplate,
    convert,
)

if TYPE_CHECKING:
    from myoguide.knowledge.cache import Folder

PACKAGED_FILE = "guideline.yaml"
# Top-level sections read and checked by their own modules (flags: knowledge/flags.py), so the
# core model does not have to know them.
EXTENSION_SECTIONS = frozenset({"flags"})
# Compiled on first use (re caches it): only a failing parse reads an error's path.
_AT = r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$"


_KEYED = {
    "dose_rules": DoseRule,
    "cautions": Caution,
    "scenarios": Scenario,
    "recommendations": RecommendationTemplate,
    "warnings": WarningTemplate,
    "prescribing": AgentPrescribing,
}


def _split(exc: msgspec.ValidationError) -> tuple[str, str]:
    m = re.match(_AT, str(exc), re.S)
    if m is None:
        return "", str(exc)
    return (m.group("path") or "").lstrip("."), m.group("msg")


def _locate(raw: dict[str, object], exc: msgspec.ValidationError) -> tuple[str, str]:
    """Return the failing key path; msgspec writes '[...]' for mapping keys, so find which."""
    path, message = _split(exc)
    section = path.split("[", 1)[0]
    entries = raw.get(section)
    if path.startswith(f"{section}[...]") and section in _KEYED and isinstance(entries, dict):
        for name, value in entries.items():
            try:
                msgspec.convert(value, _KEYED[section])
            except msgspec.ValidationError as inner:
                inner_path, inner_msg = _split(inner)
                return f"{section}.{name}" + (f".{inner_path}" if inner_path else ""), inner_msg
    return path or "(top level)", message


def parse_knowledge(text: str, *, origin: str) -> Knowledge:
    """Parse and validate guideline YAML text; `origin` names the file in errors."""
    # Imported here: a start from the cache (load_packaged) never needs the YAML parser or
    # the checks.
    import yaml

    from myoguide.knowledge.checks import problems

    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise KnowledgeError(origin, "(yaml)", str(exc)) from exc
    if isinstance(raw, dict):
        raw = {k: v for k, v in raw.items() if k not in EXTENSION_SECTIONS}
    try:
        knowledge = convert(raw)
    except msgspec.ValidationError as exc:
        if not isinstance(raw, dict):
            raise KnowledgeError(origin, "(top level)", "expected a mapping") from exc
        key, message = _locate(raw, exc)
        raise KnowledgeError(origin, key, message) from exc
    found = problems(knowledge)
    if found:
        key, _, message = found[0].partition(": ")
        raise KnowledgeError(
            origin, key, message + (f" (and {len(found) - 1} more)" if len(found) > 1 else "")
        )
    return msgspec.structs.replace(knowledge, origin=origin)


def load_packaged(cache_dir: Folder | None = None) -> Knowledge:
    """Read and validate the guideline shipped inside the package.

    With a cache folder, the validated guideline is kept there keyed by the file's bytes
    (knowledge/cache.py), and read back instead of parsed while those bytes are unchanged.
    """
    data = read_packaged(PACKAGED_FILE)
    origin = f"knowledge/data/{PACKAGED_FILE}"
    return cached(
        "guideline",
        data,
        Knowledge,
        lambda: parse_knowledge(data.decode("utf-8"), origin=origin),
        cache_dir,
    )
