"""JSON Schemas of the contract's input and output, and of the knowledge file."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState
from myoguide.knowledge.model import Knowledge

_DECIMAL = {"type": "string", "format": "decimal"}


def decimals_as_numbers(node: Any) -> Any:
    """Describe decimals as JSON numbers, which is how they travel."""
    if isinstance(node, dict):
        if {k: node.get(k) for k in _DECIMAL} == _DECIMAL:
            return {"type": "number", **{k: v for k, v in node.items() if k not in _DECIMAL}}
        return {k: decimals_as_numbers(v) for k, v in node.items()}
    if isinstance(node, list):
        return [decimals_as_numbers(v) for v in node]
    return node


def input_schema(knowledge: Knowledge | None = None) -> dict[str, Any]:
    """Return the JSON Schema of the patient state, with the knowledge's agent vocabulary."""
    schema: dict[str, Any] = decimals_as_numbers(msgspec.json.schema(PatientState))
    if knowledge is not None:
        names = list(knowledge.agent_ids)
        defs = schema.get("$defs", {})
        for name in ("Medication", "HistoryEntry"):
            props = defs.get(name, {}).get("properties", {})
            for key in ("agent", "agents"):
                node = props.get(key)
                if node is None:
                    continue
                for option in node.get("anyOf", [node]):
                    target = option.get("items", option)
                    if target.get("type") == "string":
                        target["description"] = (
                            f"one of {', '.join(names)}, or an RxNorm ingredient code"
                        )
    return schema


def output_schema() -> dict[str, Any]:
    """Return the JSON Schema of the RecommendationSet."""
    schema: dict[str, Any] = decimals_as_numbers(msgspec.json.schema(RecommendationSet))
    return schema


def knowledge_schema() -> dict[str, Any]:
    """Return the JSON Schema of the guideline knowledge file."""
    schema: dict[str, Any] = decimals_as_numbers(msgspec.json.schema(Knowledge))
    return schema


def schema_json(which: str, knowledge: Knowledge | None = None) -> str:
    """Return one schema (input, output, knowledge) or all of them as JSON text."""
    table = {
        "input": lambda: input_schema(knowledge),
        "output": output_schema,
        "knowledge": knowledge_schema,
    }
    value = {k: f() for k, f in table.items()} if which == "all" else table[which]()
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
