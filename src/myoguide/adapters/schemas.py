"""JSON Schemas of the contract's input and output, and of the knowledge file."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter

from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState
from myoguide.knowledge.model import Knowledge


def input_schema() -> dict[str, Any]:
    """Return the JSON Schema of the patient state."""
    return PatientState.model_json_schema()


def output_schema() -> dict[str, Any]:
    """Return the JSON Schema of the RecommendationSet."""
    return TypeAdapter(RecommendationSet).json_schema(mode="serialization")


def knowledge_schema() -> dict[str, Any]:
    """Return the JSON Schema of the guideline knowledge file."""
    return Knowledge.model_json_schema()


def schema_json(which: str) -> str:
    """Return one schema (input, output, knowledge) or all of them as JSON text."""
    table = {"input": input_schema, "output": output_schema, "knowledge": knowledge_schema}
    value = {k: f() for k, f in table.items()} if which == "all" else table[which]()
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
