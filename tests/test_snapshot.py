"""Refactors change no answer: every case and bundle answers as recorded in tests/snapshots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "snapshots"
sys.path.insert(0, str(HERE))

from make_snapshot import OUT, answers  # noqa: E402


def test_every_answer_matches_the_snapshot() -> None:
    before = json.loads(OUT.read_text())
    now = answers()
    moved = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    assert moved == [], f"answers moved (regenerate on purpose with make_snapshot.py): {moved}"
