"""House rules the layout depends on: short files, short rules, no dead modules."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "myoguide"
MAX_FILE_LINES = 600
MAX_RULE_LINES = 80
# Where a long function hides a clinical rule or a use case, it is split; elsewhere size is
# a smell only.
SHORT_FUNCTION_PACKAGES = ("domain", "service")


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_source_file_is_over_600_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in _sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    }
    assert long == {}, f"split these files by concern (over {MAX_FILE_LINES} lines): {long}"


def test_no_function_in_domain_or_service_is_over_80_lines() -> None:
    long: dict[str, int] = {}
    for package in SHORT_FUNCTION_PACKAGES:
        for path in sorted((SRC / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_RULE_LINES:
                        long[f"{path.relative_to(SRC)}:{node.name}"] = lines
    assert long == {}, f"split these functions (over {MAX_RULE_LINES} lines): {long}"
