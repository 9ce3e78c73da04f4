"""The terminology table (knowledge/data/terminology.yaml) as the lookups the batch door needs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

# Meanings that put a patient in the audit: DM, PM, and unspecified dermatopolymyositis (the
# mapping then warns that DM and PM cannot be told apart).
IN_SCOPE_MEANINGS = frozenset({"dermatomyositis", "polymyositis", "unresolved"})


@dataclass(frozen=True)
class Terms:
    """Diagnosis codes by (system, code) and RxNorm codes (ingredients and products) to agents."""

    version: str
    diagnoses: dict[tuple[str, str], str]
    rxnorm_to_agent: dict[str, str]
    products: dict[str, dict[str, Any]]
    raw: dict[str, Any]

    def in_scope(self, system: str, code: str) -> str | None:
        """Return the DM/PM meaning of a coding, or None."""
        meaning = self.diagnoses.get((system, code))
        return meaning if meaning in IN_SCOPE_MEANINGS else None


@cache
def load_terms() -> Terms:
    """Read the packaged terminology table once per process."""
    ref = resources.files("myoguide.knowledge") / "data" / "terminology.yaml"
    raw = yaml.load(
        ref.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )
    diagnoses = {(d["system"], str(d["code"])): d["meaning"] for d in raw["diagnoses"]}
    rx: dict[str, str] = {}
    products: dict[str, dict[str, Any]] = {}
    for agent in raw["agents"]:
        ingredient = agent.get("ingredient")
        if ingredient and ingredient.get("code"):
            rx[str(ingredient["code"])] = agent["id"]
        for p in agent.get("products") or ():
            rx[str(p["code"])] = agent["id"]
            products[str(p["code"])] = {**p, "agent": agent["id"]}
    return Terms(str(raw["terminology_version"]), diagnoses, rx, products, raw)
