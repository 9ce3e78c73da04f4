"""The `myoguide` command: recommend, knowledge, schema and demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import msgspec

from myoguide.errors import InputError, KnowledgeError

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError("PATH", f"cannot read '{path}': {exc.strerror}") from None


def _parse_json(data: bytes) -> object:
    from myoguide.adapters.jsonio import loads

    try:
        return loads(data)
    except ValueError as exc:
        raise InputError("(input)", f"not valid JSON: {exc}") from None


def _unwrap_case(raw: object) -> object:
    """Take the patient state out of a case file ({"about", "input", "expect"}), if it is one."""
    if isinstance(raw, dict) and isinstance(raw.get("input"), dict) and "age_years" not in raw:
        return raw["input"]
    return raw


def cmd_recommend(args: argparse.Namespace, out: TextIO) -> int:
    """Answer one patient state (or FHIR Bundle) from a file or standard input."""
    from myoguide.bootstrap import default_service

    service = default_service()
    raw = _unwrap_case(_parse_json(_read_input(args.path)))
    result = service.recommend(raw)
    fmt = args.format or ("text" if out.isatty() else "json")
    if fmt == "json":
        from myoguide.adapters.jsonio import dumps

        out.write(dumps(result).decode() + "\n")
    else:
        from myoguide.adapters.text import render_result

        out.write(render_result(result, service.knowledge))
    return EXIT_OK


def cmd_knowledge(args: argparse.Namespace, out: TextIO) -> int:
    """Print the encoded guideline for browsing, or as JSON."""
    from myoguide.bootstrap import default_service

    kb = default_service().knowledge
    if args.format == "json":
        out.write(msgspec.json.format(msgspec.json.encode(kb), indent=2).decode() + "\n")
    else:
        from myoguide.adapters.text import render_knowledge

        out.write(render_knowledge(kb))
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    """Print the JSON Schema of the input, the output or the knowledge file."""
    from myoguide.adapters.schemas import schema_json

    out.write(schema_json(args.which) + "\n")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Answer the example patients shipped in examples/ and print the answers for a person."""
    from myoguide.adapters.jsonio import loads
    from myoguide.adapters.text import render_result
    from myoguide.bootstrap import default_service

    service = default_service()
    folder = Path(args.folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise InputError("folder", f"no example files in '{folder}'")
    for f in files:
        case = loads(f.read_bytes())
        out.write("=" * 96 + "\n")
        out.write(f"{f.name}: {case.get('about', '')}\n" + "=" * 96 + "\n")
        try:
            out.write(render_result(service.recommend(case["input"]), service.knowledge))
        except InputError as exc:
            out.write(f"Refused: {exc}\n")
        out.write("\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the `myoguide` command."""
    p = argparse.ArgumentParser(
        prog="myoguide",
        description="Decision support for recurrent and resistant DM/PM in adults. "
        "It supports, and does not replace, clinical judgment.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recommend", help="answer one patient state or FHIR R4 Bundle")
    rec.add_argument("path", metavar="PATH", help="JSON file, or - for standard input")
    rec.add_argument("--format", choices=["json", "text"], default=None)
    rec.set_defaults(func=cmd_recommend)
    kn = sub.add_parser("knowledge", help="browse the encoded guideline")
    kn.add_argument("--format", choices=["json", "text"], default="text")
    kn.set_defaults(func=cmd_knowledge)
    sc = sub.add_parser("schema", help="print JSON Schemas")
    sc.add_argument(
        "which", nargs="?", choices=["input", "output", "knowledge", "all"], default="all"
    )
    sc.set_defaults(func=cmd_schema)
    demo = sub.add_parser("demo", help="answer the shipped example patients")
    demo.add_argument("--folder", default="examples")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        code: int = args.func(args, stream)
    except InputError as exc:
        sys.stderr.write(f"myoguide: invalid input: {exc}\n")
        return EXIT_INPUT
    except KnowledgeError as exc:
        sys.stderr.write(f"myoguide: knowledge error: {exc}\n")
        return EXIT_INTERNAL
    except BrokenPipeError:
        return EXIT_OK
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
