"""The `myoguide` command: recommend, serve, user, knowledge, schema, export, feedback, record,
demo, audit and synth.

Its `main` is an entry point, so it may import the composition root (`myoguide.bootstrap`).
Most imports sit inside the commands that need them: each run loads only what its command uses,
which keeps `myoguide recommend` within its start-up budget.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from myoguide.entrypoints.exits import (
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_SKIPPED,
)
from myoguide.errors import InputError, KnowledgeError

if TYPE_CHECKING:
    # argparse (with gettext, locale and shutil) and pathlib (with urllib.parse and ipaddress)
    # are imported where used: a plain `recommend` needs neither (issue 24).
    import argparse

    from myoguide.bootstrap import ServeConfig


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InputError("PATH", f"cannot read '{path}': {exc.strerror}") from None


def _unwrap_case(raw: object) -> object:
    """Take the patient state out of a case file ({"about", "input", "expect"}), if it is one."""
    if isinstance(raw, dict) and isinstance(raw.get("input"), dict) and "age_years" not in raw:
        return raw["input"]
    return raw


def _evaluation_date(text: str | None) -> dt.date | None:
    """Return the date ages are computed at from --date, or None for the service's today."""
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError("--date", f"'{text}' is not a date (YYYY-MM-DD)") from None


def cmd_recommend(args: argparse.Namespace, out: TextIO) -> int:
    """Answer one patient state (or FHIR Bundle) from a file or standard input."""
    from myoguide.bootstrap import default_service
    from myoguide.entrypoints.api import answer, parse_json

    service = default_service()
    raw = _unwrap_case(parse_json(_read_input(args.path)))
    # The Python API's rules: a Bundle is read at --date (default today), a state as it is.
    result = answer(service, raw, _evaluation_date(args.date))
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
    import msgspec

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
    from myoguide.bootstrap import default_service

    out.write(schema_json(args.which, default_service().knowledge) + "\n")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Answer the example patients shipped in examples/ and print the answers for a person."""
    from pathlib import Path

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


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    """Run the HTTP service until interrupted."""

    import uvicorn

    from myoguide.bootstrap import build_http_app, serve_options
    from myoguide.entrypoints.operations import serve_config

    config, workers = serve_config({name: getattr(args, name) for name in _SERVE_OPTIONS})
    if config.insecure_dev:
        banner = "!" * 78
        sys.stderr.write(
            f"{banner}\n! INSECURE DEVELOPMENT MODE: CDS Hooks calls are NOT authenticated."
            f"\n! Never expose this server to real patient data or a network.\n{banner}\n"
        )
    if config.trust_file is None and not config.insecure_dev:
        sys.stderr.write(
            "myoguide: no trusted CDS clients (--trust): every CDS Hooks call will be refused.\n"
        )
    app = build_http_app(config)
    if not config.migrate:
        _warn_if_not_migrated(config)
    host, port = config.host, config.port
    if workers > 1:
        # Built once above to fail fast, migrate and seed; each worker builds its own from the
        # same options (the database is the one truth they share: issued cards, feedback).
        del app
        os.environ["MYOGUIDE_SERVE_CONFIG"] = config.to_json()
        out.write(f"myoguide serving on http://{host}:{port} with {workers} workers\n")
        out.flush()
        uvicorn.run(
            "myoguide.entrypoints.asgi:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            **serve_options(),
        )
        return EXIT_OK
    import gc

    # Everything built so far lives as long as the process: keep it out of GC scans.
    gc.collect()
    gc.freeze()
    out.write(f"myoguide serving on http://{host}:{port} (docs at /docs)\n")
    out.flush()
    # Logs filtered, request heads and bodies on a deadline, connections bounded (ADR 0018).
    uvicorn.run(app, host=host, port=port, **serve_options())
    return EXIT_OK


# `serve`'s options, each also a field of the settings (MYOGUIDE_*; docs/configuration.md).
_SERVE_OPTIONS = (
    "host",
    "port",
    "trust",
    "public_url",
    "data_dir",
    "database_url",
    "max_body",
    "workers",
    "demo",
    "insecure_dev",
    "migrate",
)


def _warn_if_not_migrated(config: ServeConfig) -> None:
    """Say on stderr that the database needs `myoguide migrate` (serve --no-migrate)."""
    from myoguide.entrypoints.operations import pending_migration

    pending = pending_migration(config)
    if pending is not None:
        sys.stderr.write(f"myoguide: {pending}; /readyz answers 503 until then\n")


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    """Write the knowledge as a FHIR R4 Bundle (PlanDefinition and ActivityDefinitions)."""
    from pathlib import Path

    from myoguide.adapters.fhir.plandefinition import plandefinition_bundle
    from myoguide.adapters.jsonio import dumps
    from myoguide.bootstrap import default_service

    data = dumps(plandefinition_bundle(default_service().knowledge), pretty=True).decode()
    if args.output:
        Path(args.output).write_text(data + "\n")
    else:
        out.write(data + "\n")
    return EXIT_OK


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    """Audit a FHIR Bulk Data export: rows.parquet and report.html; exit 3 if input was skipped."""
    from pathlib import Path

    from myoguide.bootstrap import run_audit

    if args.max_line_bytes is not None and args.max_line_bytes < 1:
        raise InputError("--max-line-bytes", "must be at least 1")
    if args.max_decompressed_bytes is not None and args.max_decompressed_bytes < 1:
        raise InputError("--max-decompressed-bytes", "must be at least 1")
    result = run_audit(
        Path(args.export),
        Path(args.out),
        engine=args.engine,
        evaluation_date=_evaluation_date(args.date),
        min_cell=args.min_cell,
        workers=args.workers,
        master=args.master,
        max_line=args.max_line_bytes,
        max_gzip=args.max_decompressed_bytes,
    )
    for line in result.problems.lines():
        sys.stderr.write(f"myoguide: skipped {line}\n")
    out.write(result.summary + "\n")
    return EXIT_SKIPPED if result.problems.total else EXIT_OK


def cmd_synth(args: argparse.Namespace, out: TextIO) -> int:
    """Write a seeded synthetic Bulk Data export."""
    from pathlib import Path

    from myoguide.bootstrap import run_synth

    out.write(run_synth(Path(args.out), args.patients, seed=args.seed, gz=args.gzip) + "\n")
    return EXIT_OK


def _add_batch_commands(sub: Any) -> None:
    """Add `audit` and `synth` (the population audit) to the parser."""
    au = sub.add_parser("audit", help="audit a FHIR Bulk Data export (DM/PM patients)")
    au.add_argument("export", metavar="EXPORT", help="folder of <Type>.ndjson[.gz] files")
    au.add_argument("--out", required=True, help="folder for rows.parquet and report.html")
    au.add_argument("--engine", choices=["local", "spark"], default="local")
    au.add_argument("--master", default=None, help="Spark master URL (default local[WORKERS])")
    au.add_argument("--workers", type=int, default=2, help="processes or Spark local cores")
    au.add_argument("--min-cell", type=int, default=11, help="show smaller counts as <N")
    au.add_argument("--date", help="evaluation date for ages (YYYY-MM-DD; default today)")
    au.add_argument(
        "--max-line-bytes",
        type=int,
        default=None,
        metavar="N",
        help="skip (and report as too long) a line over N bytes (default 64 MiB)",
    )
    au.add_argument(
        "--max-decompressed-bytes",
        type=int,
        default=None,
        metavar="N",
        help="stop reading a .gz file past N decompressed bytes and report the rest as too big "
        "(default 16 GiB)",
    )
    au.set_defaults(func=cmd_audit)
    sy = sub.add_parser("synth", help="write a synthetic Bulk Data export")
    sy.add_argument("--patients", type=int, required=True)
    sy.add_argument("--out", required=True, metavar="EXPORT")
    sy.add_argument("--seed", type=int, default=1)
    sy.add_argument("--gzip", action="store_true", help="write .ndjson.gz files")
    sy.set_defaults(func=cmd_synth)


def _command_parser() -> tuple[argparse.ArgumentParser, Any]:
    """Build the top-level parser with the `recommend` command; return it and its subparsers."""
    import argparse

    class _Version(argparse.Action):
        """Prints the package and knowledge versions, read only when asked for."""

        def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
            from myoguide import __version__
            from myoguide.knowledge.loader import load_packaged

            print(f"myoguide {__version__} (knowledge {load_packaged().knowledge_version})")
            parser.exit()

    p = argparse.ArgumentParser(
        prog="myoguide",
        description="Decision support for recurrent and resistant DM/PM in adults. "
        "It supports, and does not replace, clinical judgment.",
    )
    p.add_argument("--version", action=_Version, nargs=0, help="print the versions and exit")
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recommend", help="answer one patient state or FHIR R4 Bundle")
    rec.add_argument("path", metavar="PATH", help="JSON file, or - for standard input")
    rec.add_argument("--format", choices=["json", "text"], default=None)
    rec.add_argument("--date", help="evaluation date for a FHIR Bundle (YYYY-MM-DD; default today)")
    rec.set_defaults(func=cmd_recommend)
    return p, sub


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser of the `myoguide` command.

    For arguments that start with `recommend`, only that command is built: its parser, usage
    and messages are the same, and the eleven others cost its start-up time (argparse).
    """
    p, sub = _command_parser()
    if argv is not None and list(argv[:1]) == ["recommend"]:
        return p
    import argparse

    from myoguide.entrypoints.store_cli import add_store_commands, store_options

    serve = sub.add_parser(
        "serve",
        help="run the HTTP service (API, CDS Hooks, docs)",
        description="Each option can also be set by its MYOGUIDE_* environment variable "
        "(docs/configuration.md); an option given here wins.",
    )
    on_off = argparse.BooleanOptionalAction
    serve.add_argument("--host", default=None, help="address (MYOGUIDE_HOST; 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (MYOGUIDE_PORT; 8000)")
    serve.add_argument(
        "--trust",
        metavar="FILE",
        default=None,
        help="JSON file of trusted CDS clients (MYOGUIDE_TRUST): "
        '{"issuers": [{"iss": ..., "jwks_file": ..., "jku": [...]}]}',
    )
    serve.add_argument(
        "--insecure-dev",
        action=on_off,
        default=None,
        help="accept CDS Hooks calls without verifying their JWT, development only "
        "(MYOGUIDE_INSECURE_DEV)",
    )
    store_options(serve)
    serve.add_argument(
        "--public-url",
        default=None,
        help="the base URL clients call (the JWT audience) behind a proxy (MYOGUIDE_PUBLIC_URL)",
    )
    serve.add_argument(
        "--max-body",
        type=int,
        default=None,
        help="request body limit, bytes (MYOGUIDE_MAX_BODY; 1000000; CDS Hooks calls: "
        "MYOGUIDE_CDS_MAX_BODY_BYTES, 16 MB)",
    )
    serve.add_argument(
        "--demo",
        action=on_off,
        default=None,
        help="add clearly synthetic demo patients (MYOGUIDE_DEMO)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes; they share the database (MYOGUIDE_WORKERS; 1)",
    )
    serve.add_argument(
        "--migrate",
        action=on_off,
        default=None,
        help="migrate the database at start (MYOGUIDE_MIGRATE; on); --no-migrate for an "
        "operator who runs `myoguide migrate` apart",
    )
    serve.set_defaults(func=cmd_serve)
    kn = sub.add_parser("knowledge", help="browse the encoded guideline")
    kn.add_argument("--format", choices=["json", "text"], default="text")
    kn.set_defaults(func=cmd_knowledge)
    sc = sub.add_parser("schema", help="print JSON Schemas")
    sc.add_argument(
        "which", nargs="?", choices=["input", "output", "knowledge", "all"], default="all"
    )
    sc.set_defaults(func=cmd_schema)
    export = sub.add_parser("export", help="export the knowledge in a standard format")
    export.add_argument("what", choices=["plandefinition"])
    export.add_argument("--output", "-o", default=None, help="file to write (default stdout)")
    export.set_defaults(func=cmd_export)
    add_store_commands(sub)
    demo = sub.add_parser("demo", help="answer the shipped example patients")
    demo.add_argument("--folder", default="examples")
    demo.set_defaults(func=cmd_demo)
    _add_batch_commands(sub)
    return p


class _Args:
    """The parsed arguments of a plain `recommend` call (argparse's Namespace, as used)."""

    command = "recommend"

    def __init__(self, path: str, fmt: str | None, date: str | None) -> None:
        self.path, self.format, self.date = path, fmt, date
        self.func = cmd_recommend


def _plain_recommend(argv: Sequence[str]) -> _Args | None:
    """Parse `recommend PATH [--format json|text] [--date D]` without argparse, or return None.

    Only the plain forms, each option at most once: anything else (help, abbreviations, errors)
    goes to argparse, so usage and messages stay argparse's own.
    """
    if not argv or argv[0] != "recommend":
        return None
    path: str | None = None
    options: dict[str, str] = {}
    rest = list(argv[1:])
    while rest:
        word = rest.pop(0)
        name, eq, value = word.partition("=")
        if name in ("--format", "--date") and name not in options:
            if not eq:
                if not rest:
                    return None
                value = rest.pop(0)
            if value.startswith("-") or (name == "--format" and value not in ("json", "text")):
                return None
            options[name] = value
        elif path is None and (word == "-" or not word.startswith("-")):
            path = word
        else:
            return None
    if path is None:
        return None
    return _Args(path, options.get("--format"), options.get("--date"))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status (a real `recommend` process exits here)."""
    one_shot = argv is None and sys.argv[1:2] == ["recommend"]
    if one_shot:
        # A one-shot process: what it builds lives until exit, so collecting is wasted work
        # (about 7% of its CPU time). Only for a real process, never a caller's (tests).
        import gc

        gc.disable()
    code = _run(argv, out)
    # Not under a tracer or profiler (coverage, cProfile): they write their output after main.
    if one_shot and out is None and sys.gettrace() is None and sys.getprofile() is None:
        _exit_at_once(code)
    return code


def _exit_at_once(code: int) -> None:
    """End the process with this status once its output is flushed, skipping Python's teardown.

    Freeing every module and object at exit is about a sixth of a `recommend` process's CPU
    time and nothing of it can be seen (ADR 0041). If a flush fails, Python's own exit reports
    it as it always has.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # AttributeError: no stream at all (None)
        return
    os._exit(code)


def _run(argv: Sequence[str] | None, out: TextIO | None) -> int:
    """Parse the arguments and run the command; returns the exit status."""
    given = sys.argv[1:] if argv is None else argv
    args: Any = _plain_recommend(given) or build_parser(given).parse_args(given)
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
