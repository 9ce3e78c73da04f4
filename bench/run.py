"""Benchmarks: `make bench` runs them all and rewrites bench/RESULTS.md with the figures.

Targets come from the issues; each figure is a median over repeated runs in one session.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
Row = tuple[str, str, str, bool]  # what, measured, target, met


def _states() -> list[dict[str, Any]]:
    states = []
    folders = [ROOT / "tests" / "vignettes", ROOT.parent / "shared" / "spec" / "examples"]
    for folder in folders:
        for p in sorted(folder.glob("*.json")):
            case = json.loads(p.read_text())
            if case["expect"]["exit"] == 0:
                states.append(case["input"])
    return states


def bench_engine() -> list[Row]:
    """In-process recommend with validation over the mix of vignette and example states."""
    from myoguide.bootstrap import default_service

    service = default_service()
    states = _states()
    for s in states:  # warm up
        service.recommend(s)
    rates = []
    for _ in range(7):
        n = 0
        # CPU time of this process: the machine is shared, and this measures one core's work.
        start = time.process_time()
        while time.process_time() - start < 1.0:
            for s in states:
                service.recommend(s)
            n += len(states)
        rates.append(n / (time.process_time() - start))
    median = statistics.median(rates)
    return [
        (
            f"in-process recommend with validation ({len(states)} mixed states)",
            f"{median:,.0f} answers/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})",
            ">= 20,000 answers/s on one core",
            median >= 20_000,
        )
    ]


def bench_cli() -> list[Row]:
    """One `myoguide recommend FILE` process, start to finish."""
    exe = Path(sys.executable).with_name("myoguide")
    case = ROOT / "examples" / "resistant-dm.json"
    cmd = [str(exe), "recommend", str(case), "--format", "json"]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the file cache
    times = []
    for _ in range(31):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
    median = statistics.median(times)
    return [
        (
            "`myoguide recommend FILE` process, start to finish (31 runs)",
            f"median {median:.0f} ms (min {min(times):.0f}, max {max(times):.0f})",
            "<= 250 ms median",
            median <= 250,
        )
    ]


BENCHES: dict[str, Callable[[], list[Row]]] = {"engine": bench_engine, "cli": bench_cli}


def _write(rows: dict[str, list[Row]]) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.py). Medians from one run on this machine:",
        f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores "
        "(shared and noisy; single-threaded figures use one core).",
        f"Run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| benchmark | measured | target | met |",
        "|---|---|---|---|",
    ]
    for group in rows.values():
        for what, measured, target, met in group:
            lines.append(f"| {what} | {measured} | {target} | {'yes' if met else 'NO'} |")
    RESULTS.write_text("\n".join(lines) + "\n")


def main() -> int:
    """Run the selected benchmarks, print them, and rewrite RESULTS.md."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), default=sorted(BENCHES))
    args = parser.parse_args()
    rows = {}
    for name in args.only:
        rows[name] = BENCHES[name]()
        for what, measured, target, met in rows[name]:
            print(f"{what}: {measured} (target {target}) {'OK' if met else 'MISSED'}")
    _write(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
