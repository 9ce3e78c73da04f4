"""The answer as the page leads with it: the decision first, warnings by what they ask of you."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import msgspec
import yaml

from myoguide.domain.result import Recommendation, RecommendationSet, Warning
from myoguide.knowledge.model import Knowledge, WarningLevel

LEVEL_WORDS: dict[WarningLevel, str] = {"stop": "Stop", "check": "Check", "note": "Note"}


def level(code: str, knowledge: Knowledge) -> WarningLevel:
    """Return how strongly a warning bears on what to do: the knowledge's policy (ADR 0015)."""
    return knowledge.warning_policy(code).level


@dataclass(frozen=True)
class Summary:
    """What leads the answer: the first choice (or tied choices) and the warnings that bind."""

    first: tuple[Recommendation, ...]
    binding: tuple[tuple[WarningLevel, Warning], ...]
    notes: tuple[tuple[WarningLevel, Warning], ...]


def summarize(result: RecommendationSet, knowledge: Knowledge) -> Summary:
    """Return the answer's lead: rank-1 options and the warnings sorted stop, check, note."""
    recs = result.recommendations
    top = min((r.rank for r in recs), default=None)
    first = tuple(r for r in recs if r.rank == top)
    order = {"stop": 0, "check": 1, "note": 2}
    levelled = sorted(
        ((level(w.code, knowledge), w) for w in result.warnings), key=lambda p: order[p[0]]
    )
    return Summary(
        first,
        tuple(p for p in levelled if p[0] != "note"),
        tuple(p for p in levelled if p[0] == "note"),
    )


@dataclass(frozen=True)
class Folded:
    """A top-level option and the options folded beneath it (the ladder beneath R1's)."""

    rec: Recommendation
    beneath: tuple[Recommendation, ...]


def fold(result: RecommendationSet) -> tuple[Folded, ...]:
    """Return the options as the page nests them: each one with those whose `under` names it."""
    ids = {r.id for r in result.recommendations}
    # An option whose parent is not offered stays at the top level rather than vanish.
    top = [r for r in result.recommendations if r.under is None or r.under not in ids]
    return tuple(
        Folded(r, tuple(c for c in result.recommendations if c.under == r.id and c is not r))
        for r in top
    )


def stored_result(data: Mapping[str, Any]) -> RecommendationSet | None:
    """Return a logged answer (JSON) as the value the templates render, or None if unreadable."""
    try:
        return msgspec.convert(data, RecommendationSet, strict=False)
    except msgspec.ValidationError:
        return None


@dataclass(frozen=True)
class Link:
    """A verified link for a numbered reference."""

    label: str
    url: str


@dataclass(frozen=True)
class Sources:
    """Verified links by reference number and the review's dates (reference_links.yaml)."""

    links: Mapping[int, Sequence[Link]]
    topic_last_updated: str
    literature_current_through: str


@cache
def sources() -> Sources:
    """Read the verified reference links once (fails loudly: the file ships with the package)."""
    text = (resources.files("myoguide.knowledge") / "data" / "reference_links.yaml").read_text()
    data = yaml.safe_load(text)
    links: dict[int, list[Link]] = {}
    for entry in data["links"]:
        found: list[Link] = []
        if entry.get("pmid"):
            url = f"https://pubmed.ncbi.nlm.nih.gov/{entry['pmid']}/"
            found.append(Link(f"PubMed {entry['pmid']}", url))
        if entry.get("pmc"):
            url = f"https://www.ncbi.nlm.nih.gov/pmc/articles/{entry['pmc']}/"
            found.append(Link(f"PubMed Central {entry['pmc']}", url))
        if entry.get("doi"):
            found.append(Link(f"DOI {entry['doi']}", f"https://doi.org/{entry['doi']}"))
        links[int(entry["number"])] = found
    dates = data["review_dates"]
    return Sources(
        links, str(dates["topic_last_updated"]), str(dates["literature_current_through"])
    )
