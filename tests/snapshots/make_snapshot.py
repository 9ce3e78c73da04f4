"""Writes (or checks) the answer of every case and FHIR bundle, to hold refactors to no change.

python tests/snapshots/make_snapshot.py          write tests/snapshots/answers.json
python tests/snapshots/make_snapshot.py --check  exit 1 and list the cases whose answer moved
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "answers.json"


def _run(argv: list[str]) -> Any:
    """Run the command in process; return its JSON answer, or its exit status and error."""
    import contextlib
    import io

    from myoguide.entrypoints.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv, out)
    if code != 0:
        return {"exit": code, "stderr": err.getvalue()}
    return json.loads(out.getvalue())


def answers() -> dict[str, Any]:
    """Return case name -> the JSON answer (or the refusal) for every known input."""
    import tempfile

    folders = {
        "example": ROOT.parent / "shared" / "spec" / "examples",
        "vignette": ROOT / "tests" / "vignettes",
        "bundle": ROOT / "tests" / "fhir" / "bundles",
    }
    out: dict[str, Any] = {}
    for prefix, folder in folders.items():
        for path in sorted(folder.glob("*.json")):
            doc = json.loads(path.read_text())
            if "raw_input" in doc:
                continue
            payload = doc.get("input", doc.get("bundle"))
            date = doc.get("evaluation_date", "2026-11-01")
            with tempfile.NamedTemporaryFile("w", suffix=".json") as tmp:
                json.dump(payload, tmp)
                tmp.flush()
                argv = ["recommend", tmp.name, "--format", "json", "--date", date]
                out[f"{prefix}/{path.stem}"] = _run(argv)
    return out


def main() -> int:
    """Write the snapshot, or with --check compare against it."""
    now = answers()
    if "--check" in sys.argv:
        before = json.loads(OUT.read_text())
        moved = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        for key in moved:
            print("moved:", key)
        print(f"{len(now)} answers, {len(moved)} moved")
        return 1 if moved else 0
    OUT.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(now)} answers to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
