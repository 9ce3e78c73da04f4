"""The audit flags of guideline.yaml (`flags:`): typed, cross-checked at load, failing closed."""

from __future__ import annotations

import re
from decimal import Decimal
from importlib import resources
from typing import Annotated, Literal

import msgspec
import yaml
from msgspec import Meta, Struct

from myoguide.errors import KnowledgeError
from myoguide.knowledge.loader import PACKAGED_FILE
from myoguide.knowledge.model import Knowledge, SourceRef

Course = Literal["recurrent", "resistant", "controlled", "out_of_scope"]
Outcome = Literal["inadequate_response", "intolerance", "responded", "unknown"]
# Every flag is worded as a difference to look at, never as an error.
WORDING = "Differs from the review's suggested order"
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


class _FlagBase(Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """What every flag has: id, the words a reader sees, where it applies and its sources."""

    id: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$")]
    text: Annotated[str, Meta(min_length=20)]
    applies_to_courses: Annotated[tuple[Course, ...], Meta(min_length=1)]
    sources: Annotated[tuple[SourceRef, ...], Meta(min_length=1)]


class FlareWithoutSparing(_FlagBase, frozen=True, tag="flare_without_sparing_agent"):
    """A flare above a prednisone dose with none of the sparing agents in use."""

    prednisone_above_mg_per_day: Decimal
    sparing_agents: Annotated[tuple[str, ...], Meta(min_length=1)]


class AboveMaximum(_FlagBase, frozen=True, tag="above_maximum"):
    """A current dose above one of the knowledge's stated maxima."""

    maxima: Annotated[tuple[str, ...], Meta(min_length=1)]


class EarlierStep(Struct, frozen=True, forbid_unknown_fields=True):
    """A ladder step ranked before the flagged agent, and the agents that count as trying it."""

    step: int
    agents: Annotated[tuple[str, ...], Meta(min_length=1)]


class EscalatedEarly(_FlagBase, frozen=True, tag="escalated_before_earlier_steps"):
    """An agent of a class in use while some earlier step was never tried."""

    agent_class: str
    earlier_steps: Annotated[tuple[EarlierStep, ...], Meta(min_length=1)]


class AlternativesNotExcluded(_FlagBase, frozen=True, tag="alternatives_not_excluded"):
    """Resistant disease without a record that other diagnoses were excluded."""


class FailedAgentInUse(_FlagBase, frozen=True, tag="failed_agent_in_use"):
    """An agent in use whose history records one of the given outcomes."""

    outcomes: Annotated[tuple[Outcome, ...], Meta(min_length=1)]
    exempt_agents: tuple[str, ...] = ()
    exempt_after_inadequate_response: tuple[str, ...] = ()


Flag = (
    FlareWithoutSparing | AboveMaximum | EscalatedEarly | AlternativesNotExcluded | FailedAgentInUse
)


class Flags(Struct, frozen=True, forbid_unknown_fields=True):
    """The `flags:` section, with the knowledge version it belongs to."""

    knowledge_version: str
    flags: tuple[Flag, ...]

    def by_id(self, flag_id: str) -> Flag:
        """Return a flag by id."""
        for f in self.flags:
            if f.id == flag_id:
                return f
        raise KeyError(flag_id)


class _Section(Struct, frozen=True):
    flags: tuple[Flag, ...]


def _problems(flags: tuple[Flag, ...], kb: Knowledge) -> list[str]:
    """Return every broken cross-reference as 'key: message'."""
    errors: list[str] = []
    agents = set(kb.agent_ids)
    classes = {c for a in kb.agents for c in a.classes}
    maxima = {m.id for m in kb.maxima}
    steps = {s.step for s in kb.ladder}
    citations = {c.id for c in kb.citations}
    documents = {d.id for d in kb.documents}
    seen: set[str] = set()
    for f in flags:
        at = f"flags.{f.id}"
        if f.id in seen:
            errors.append(f"{at}: duplicate flag id")
        seen.add(f.id)
        if not f.text.startswith(WORDING):
            errors.append(f"{at}.text: must start with '{WORDING}'")
        for i, s in enumerate(f.sources):
            if s.document not in documents:
                errors.append(f"{at}.sources[{i}].document: unknown document '{s.document}'")
            for n in s.references:
                if not 1 <= n <= len(kb.references):
                    errors.append(f"{at}.sources[{i}].references: no reference {n}")
            for c in s.citations:
                if c not in citations:
                    errors.append(f"{at}.sources[{i}].citations: unknown citation '{c}'")
        named: tuple[str, ...] = ()
        if isinstance(f, FlareWithoutSparing):
            named = f.sparing_agents
        elif isinstance(f, AboveMaximum):
            errors += [f"{at}.maxima: unknown maximum '{m}'" for m in f.maxima if m not in maxima]
        elif isinstance(f, EscalatedEarly):
            if f.agent_class not in classes:
                errors.append(f"{at}.agent_class: no agent has class '{f.agent_class}'")
            for st in f.earlier_steps:
                if st.step not in steps:
                    errors.append(f"{at}.earlier_steps: no ladder step {st.step}")
                named += st.agents
        elif isinstance(f, FailedAgentInUse):
            named = f.exempt_agents + f.exempt_after_inadequate_response
        errors += [f"{at}: unknown agent '{a}'" for a in named if a not in agents]
    return errors


def parse_flags(text: str, kb: Knowledge, *, origin: str) -> Flags:
    """Read the `flags:` section of guideline YAML text and check it against the knowledge."""
    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise KnowledgeError(origin, "(yaml)", str(exc)) from exc
    if not isinstance(raw, dict) or "flags" not in raw:
        raise KnowledgeError(origin, "flags", "the section is missing")
    try:
        section = msgspec.convert({"flags": raw["flags"]}, _Section)
    except msgspec.ValidationError as exc:
        m = _AT.match(str(exc))
        msg, path = (m.group("msg"), (m.group("path") or "").lstrip(".")) if m else (str(exc), "")
        raise KnowledgeError(origin, path or "flags", msg) from exc
    found = _problems(section.flags, kb)
    if found:
        key, _, message = found[0].partition(": ")
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise KnowledgeError(origin, key, message + more)
    return Flags(kb.knowledge_version, section.flags)


def load_packaged_flags(kb: Knowledge) -> Flags:
    """Read and check the flags of the guideline shipped inside the package."""
    ref = resources.files("myoguide.knowledge") / "data" / PACKAGED_FILE
    return parse_flags(
        ref.read_text(encoding="utf-8"), kb, origin=f"knowledge/data/{PACKAGED_FILE}"
    )
