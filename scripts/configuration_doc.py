"""Writes docs/configuration.md from the settings object (src/myoguide/settings.py).

python scripts/configuration_doc.py          # rewrite the page
python scripts/configuration_doc.py --check  # exit 1 if the committed page differs
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

from myoguide.settings import Settings, variable_names

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

HEAD = """\
# Configuration reference

Generated from `src/myoguide/settings.py` by `scripts/configuration_doc.py`; do not edit by
hand (a test checks the two agree).

Every option of `myoguide serve` can be given on the command line or by its environment
variable; the command line wins over the environment, and the environment over the default.
Variables are read once, at start, by one settings object; an empty variable counts as unset.
No `.env` file is read. Yes/no variables take `true`/`false` (also `1`/`0`, `yes`/`no`,
`on`/`off`). A value that is refused stops the command with exit status 2 and a message naming
the option or the variable.

"""

TAIL = """
## The data folder (`--data-dir`, `MYOGUIDE_DATA_DIR`, default `data`)

Created 0700. It holds `myoguide.db` (SQLite only, 0600), `secret_key`, `chain_key` and
`chain_head.json` (each 0600). Back up `chain_key` with the database but store it apart from
it: whoever holds both can re-seal a rewritten record. With `MYOGUIDE_CHAIN_KEY` set (from the
hospital's secret store), no key file is written. Backup, restore, upgrades and key rotation:
[operations.md](operations.md).

Not in the settings object: `MYOGUIDE_CACHE_DIR`, the validated-knowledge cache of every
command (read directly, for the command's start-up time; README, ADR 0024).

## For monitoring

- `GET /livez`: 200 while the process answers (restart it if this fails).
- `GET /readyz`: 200 when the store can write, the knowledge is loaded and the database is at
  this release's migrations; 503 (with which check failed) otherwise: take it out of rotation.
- `GET /healthz`: as before (status, store, knowledge version).
- Every response carries `X-Request-ID`: the caller's (a proxy's), if it is at most 64 of
  `A-Z a-z 0-9 . _ : -`, else a new one; log lines of that request carry the same id.
- `myoguide --version` prints the package and knowledge versions.
"""


def _cell(text: str) -> str:
    """Return text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _row(field: str) -> str:
    """Return one field's table row: variables, option, default, what it sets."""
    info = Settings.model_fields[field]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    names = ", ".join(f"`{n}`" for n in variable_names(field))
    cli = (
        ", ".join(f"`{o.strip()}`" for o in str(extra["cli"]).split(",")) if "cli" in extra else ""
    )
    if "default_text" in extra:
        default = str(extra["default_text"])
    elif info.default is PydanticUndefined or info.default is None:
        default = "none"
    elif isinstance(info.default, bool):
        default = f"`{str(info.default).lower()}`"
    else:
        default = f"`{info.default}`"
    return f"| {names} | {cli} | {_cell(default)} | {_cell(str(extra['doc']))} |"


def render() -> str:
    """Return the whole page."""
    serve = [f for f, i in Settings.model_fields.items() if _has_cli(i.json_schema_extra)]
    rest = [f for f in Settings.model_fields if f not in serve]
    header = "| Variable | Option | Default | What it sets |\n|---|---|---|---|\n"
    return (
        HEAD
        + "## Options of `myoguide serve`\n\n"
        + header
        + "\n".join(_row(f) for f in serve)
        + "\n\n## Set only from the environment\n\n"
        + header
        + "\n".join(_row(f) for f in rest)
        + "\n"
        + TAIL
    )


def _has_cli(extra: object) -> bool:
    return isinstance(extra, dict) and "cli" in extra


def main(argv: list[str]) -> int:
    """Write the page, or with --check tell whether the committed page is current."""
    text = render()
    if "--check" in argv:
        if PAGE.read_text() != text:
            sys.stderr.write(f"{PAGE} differs from the settings: run {sys.argv[0]}\n")
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
