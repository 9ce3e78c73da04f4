"""Which guideline agent a medication resource or allergy names: by RxNorm code, else by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from myoguide.adapters.fhir.codes import RXNORM
from myoguide.adapters.fhir.primitives import (
    DIGITS,
    Warn,
    coding_codes,
    record_words,
    resource_label,
    shown,
)
from myoguide.knowledge.terminology import Product, Terminology


class NamedAgent(NamedTuple):
    """The guideline agent a resource names, its Medication resource and RxNorm product if any."""

    agent: str
    medication: dict[str, Any] | None
    product: Product | None


class AgentFinder:
    """Names the agent of a resource, warning and noting it unresolved when it cannot."""

    __slots__ = ("index", "quiet", "rx", "term", "unresolved", "warn")

    def __init__(
        self,
        rx: Mapping[str, str],
        term: Terminology,
        index: Mapping[str, dict[str, Any]],
        warn: Warn,
    ) -> None:
        self.rx = rx
        self.term = term
        self.index = index
        self.warn = warn
        self.unresolved: list[str] = []
        # Drug concepts (as JSON) already found to name no guideline agent, with nothing to
        # warn: a big chart repeats a few other drugs hundreds of times (issue 17).
        self.quiet: set[bytes] = set()

    def agent(self, res: dict[str, Any], i: int, field: str) -> NamedAgent | None:
        """Return the agent a resource names (by code, else by name), or None after warning."""
        medication: dict[str, Any] | None = None
        concept = res.get(field)
        # A concept of its own decides alone what the resource names (no Medication to read).
        own = concept if isinstance(concept, dict) else None
        if own is not None and self.quiet and self.known_quiet(own):
            return None
        if not isinstance(concept, dict) and field == "medicationCodeableConcept":
            label = resource_label(res, i)
            ref = res.get("medicationReference")
            target = ref.get("reference") if isinstance(ref, dict) else None
            if not isinstance(target, str):
                self.warn(
                    "medication_missing",
                    "a medication record does not name its drug; listed as unresolved",
                    label,
                )
                self.unresolved.append(f"medication not named ({record_words(res)})")
                return None
            medication = self.resolve(target, res)
            if medication is None:
                self.warn(
                    "medication_reference_unresolved",
                    "a medication record points to a drug description that is not in the "
                    "record; listed as "
                    "unresolved",
                    label,
                )
                self.unresolved.append(f"medication reference not found ({record_words(res)})")
                return None
            concept = medication.get("code")
        concepts = [concept]
        if medication is not None:
            ingredients = medication.get("ingredient")
            if isinstance(ingredients, list):
                concepts += [
                    item.get("itemCodeableConcept")
                    for item in ingredients
                    if isinstance(item, dict)
                ]
        codes = coding_codes(concept, RXNORM)
        agents, products = self.by_codes(codes)
        if not agents and len(concepts) > 1:
            for extra in concepts[1:]:
                found = coding_codes(extra, RXNORM)
                codes.extend(found)
                more, _ = self.by_codes(found)
                agents.update(more)
        if len(agents) == 1:
            product = products[0] if len(products) == 1 else None
            return NamedAgent(agents.pop(), medication, product)
        if agents:
            named = ", ".join(shown(a) for a in sorted(agents))
            self.warn(
                "medication_ambiguous",
                f"the medication codes name more than one agent ({named}); skipped",
                resource_label(res, i),
            )
            self.unresolved.append(f"medication naming {named} ({record_words(res)})")
            return None
        names = [n for c in concepts for n in concept_names(c)]
        if names and self.quietly_other(names, codes):
            # Its JSON only now: most drugs of a chart are known by code and never kept here.
            quiet_key = _concept_key(own) if own is not None else None
            if quiet_key is not None:
                self.quiet.add(quiet_key)
            return None
        # Label and words only now: a drug resolved by code, or quietly by name, needs neither.
        return self.by_name(concepts, codes, medication, resource_label(res, i), record_words(res))

    def known_quiet(self, concept: object) -> bool:
        """Say whether a drug concept was already found to name no agent, with nothing to say."""
        if not self.quiet or not isinstance(concept, dict):
            return False
        return _concept_key(concept) in self.quiet

    def quietly_other(self, names: list[str], codes: list[str]) -> bool:
        """Say whether names name no guideline agent in any way, so `by_name` says nothing."""
        kinds = {self.term.agent_for_name(n).kind for n in names}
        if codes:
            kinds.discard("near")  # by_name drops near matches of coded drugs
        return not kinds & {"agent", "resembles", "near", "topical"}

    def by_codes(self, codes: list[str]) -> tuple[set[str], list[Product]]:
        """Return the agents RxNorm codes name, and the products among them."""
        agents: set[str] = set()
        products: list[Product] = []
        for code in codes:
            agent = self.rx.get(code)
            coded = self.term.agent_for_code(code)
            if coded is not None:
                agent = agent or coded.agent
                if coded.product is not None and coded.agent == agent:
                    products.append(coded.product)
            if agent is not None:
                agents.add(agent)
        return agents, products

    def by_name(
        self,
        concepts: list[object],
        codes: list[str],
        medication: dict[str, Any] | None,
        label: str,
        where: str,
    ) -> NamedAgent | None:
        """Identify a drug by its names through the terminology, when its codes give no agent."""
        names = [n for c in concepts for n in concept_names(c)]
        matches = [self.term.agent_for_name(n) for n in names]
        named = {a for m in matches if m.kind == "agent" for a in m.agents}
        near = {a for m in matches if m.kind == "resembles" for a in m.agents}
        if codes:
            # An RxNorm-coded drug whose name is only spelled like an agent (prednisolone,
            # mycophenolic acid) is another drug: a coded name is no misspelling.
            matches = [m for m in matches if m.kind != "near"]
        near |= {a for m in matches if m.kind == "near" for a in m.agents}
        topical = {a for m in matches if m.kind == "topical" for a in m.agents}
        if topical and not named and not near:
            like = ", ".join(shown(a) for a in sorted(topical))
            self.warn(
                "medication_topical",
                f"{like} in a form for the skin or eye is not systemic treatment; left out",
                label,
            )
            return None
        digits = ", ".join(c for c in codes if DIGITS.fullmatch(c))
        if len(named) == 1 and near <= named:
            agent = next(iter(named))
            self.warn(
                "medication_matched_by_name",
                f"{shown(agent)} was identified by its name, not by a drug code this tool knows"
                + (f" (RxNorm {digits})" if digits else ""),
                label,
            )
            return NamedAgent(agent, medication, None)
        if named or near:
            like = ", ".join(shown(a) for a in sorted(named | near))
            self.warn(
                "medication_unresolved",
                f"the medication's name resembles {like} but does not identify it; not counted "
                "as that agent, listed as unresolved",
                label,
            )
            self.unresolved.append(f"medication resembling {like} ({where})")
            return None
        if names:
            return None  # a named drug that is no guideline agent: nothing to say
        if codes:
            self.warn(
                "medication_code_unknown",
                f"a drug coded only as RxNorm {digits or '(code not shown)'}, with no name, "
                "could not "
                "be identified; listed as unresolved",
                label,
            )
            self.unresolved.append(f"RxNorm {digits or 'code'} not identified ({where})")
            return None
        self.warn(
            "medication_not_coded",
            "a medication record has no drug code and no name; listed as unresolved",
            label,
        )
        self.unresolved.append(f"medication without code or name ({where})")
        return None

    def resolve(self, target: str, res: dict[str, Any]) -> dict[str, Any] | None:
        """Find the Medication a reference points to: contained, by fullUrl or by type and id."""
        if target.startswith("#"):
            contained = res.get("contained")
            if isinstance(contained, list):
                for item in contained:
                    if (
                        isinstance(item, dict)
                        and item.get("resourceType") == "Medication"
                        and item.get("id") == target[1:]
                    ):
                        return item
            return None
        found = self.index.get(target)
        if found is None and "Medication/" in target:
            tail = target.rsplit("Medication/", 1)[1].split("/", 1)[0]
            found = self.index.get(f"Medication/{tail}")
        return found


def _concept_key(concept: dict[str, Any]) -> bytes | None:
    """Return a concept as JSON, to know it again; None if it is not JSON data (an API caller's)."""
    try:
        return orjson.dumps(concept)
    except TypeError:
        return None


def concept_names(concept: object) -> list[str]:
    """Return the names a CodeableConcept gives: its text and its codings' displays."""
    out: list[str] = []
    if isinstance(concept, dict):
        text = concept.get("text")
        if isinstance(text, str) and text.strip():
            out.append(text)
        codings = concept.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                display = coding.get("display") if isinstance(coding, dict) else None
                if isinstance(display, str) and display.strip():
                    out.append(display)
    return out
