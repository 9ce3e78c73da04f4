"""Runs the installed `myoguide` command as a real process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CliResult:
    """What one run of the command produced."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def _command() -> list[str]:
    exe = shutil.which("myoguide") or str(Path(sys.executable).with_name("myoguide"))
    return [exe]


def run_cli(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> CliResult:
    """Run the installed `myoguide` command with arguments and optional standard input."""
    proc = subprocess.run(
        [*_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_cli_in_process(*args: str, stdin: str | None = None) -> CliResult:
    """Run `myoguide` in this process through `cli.main(argv)`: the same door, no spawn."""
    import contextlib
    import io

    from myoguide.entrypoints.cli import main

    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO((stdin or "").encode()), encoding="utf-8")
    saved = sys.stdin
    sys.stdin = fake_stdin
    try:
        with contextlib.redirect_stderr(err):
            try:
                code = main(list(args), out)
            except SystemExit as exc:  # argparse refuses bad arguments this way
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        sys.stdin = saved
    return CliResult(code, out.getvalue(), err.getvalue())
