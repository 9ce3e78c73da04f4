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


def _hundred_resource_bundle() -> dict[str, Any]:
    """The resistant-DM test bundle padded with unrelated Observations to 100 resources."""
    case = json.loads((ROOT / "tests" / "fhir" / "bundles" / "resistant-dm.json").read_text())
    bundle: dict[str, Any] = case["bundle"]
    entries = list(bundle["entry"])
    i = 0
    while len(entries) < 100:
        i += 1
        entries.append({"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": {
            "resourceType": "Observation", "id": f"lab-{i}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2157-6",
                                 "display": "Creatine kinase"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "valueQuantity": {"value": 100 + i, "unit": "U/L",
                              "system": "http://unitsofmeasure.org", "code": "U/L"}}})  # fmt: skip
    return {**bundle, "entry": entries}


def bench_bundle() -> list[Row]:
    """In process: bundle bytes to RecommendationSet, against orjson.loads of the same bytes."""
    import datetime as dt

    import orjson

    from myoguide.adapters.fhir import bundle_to_state
    from myoguide.bootstrap import default_service

    service = default_service()
    rx = {a.rxnorm: a.id for a in service.knowledge.agents if a.rxnorm}
    data = orjson.dumps(_hundred_resource_bundle())
    day = dt.date(2026, 11, 21)

    def full() -> None:
        service.recommend(bundle_to_state(orjson.loads(data), evaluation_date=day,
                                          rxnorm_to_agent=rx).state)  # fmt: skip

    def parse() -> None:
        orjson.loads(data)

    def per_call(fn: Callable[[], None]) -> float:
        for _ in range(200):
            fn()
        runs = []
        for _ in range(9):
            start = time.process_time()
            for _ in range(500):
                fn()
            runs.append((time.process_time() - start) / 500 * 1e6)
        return statistics.median(runs)

    t_full, t_parse = per_call(full), per_call(parse)
    ratio = t_full / t_parse
    return [(
        f"bundle bytes ({len(data):,} B, 100 resources) to RecommendationSet, in process",
        f"{t_full:.0f} us vs orjson.loads {t_parse:.0f} us: ratio {ratio:.2f}",
        "<= 3x orjson.loads",
        ratio <= 3,
    )]  # fmt: skip


def bench_load() -> list[Row]:
    """patient-view with a 100-resource prefetch, 100 req/s for 60 s from a separate process."""
    import tempfile

    sys.path.insert(0, str(ROOT / "tests" / "http"))
    from cryptography.hazmat.primitives import serialization
    from helpers import hook_request, prefetch_from

    from conftest import start_server  # tests/http/conftest.py

    with tempfile.TemporaryDirectory() as tmp:
        srv = start_server(Path(tmp))
        try:
            key_file = Path(tmp) / "key.pem"
            key_file.write_bytes(srv.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))  # fmt: skip
            patient_id, prefetch = prefetch_from(_hundred_resource_bundle())
            body_file = Path(tmp) / "body.json"
            body_file.write_text(json.dumps(hook_request("patient-view", patient_id, prefetch)))
            rate, seconds = os.environ.get("LOAD_RATE", "100"), os.environ.get("LOAD_SECONDS", "60")
            proc = subprocess.run(
                [sys.executable, str(ROOT / "bench" / "load.py"), srv.base, str(key_file),
                 str(body_file), rate, seconds],
                stdout=subprocess.PIPE, text=True, check=True, timeout=int(seconds) * 3 + 120,
            )  # fmt: skip
        finally:
            srv.process.terminate()
            srv.process.wait(timeout=10)
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    ok = stats["errors"] == 0 and stats["p99_ms"] <= 50
    return [(
        f"patient-view, 100-resource prefetch, {rate} req/s for {seconds} s (separate process)",
        f"p99 {stats['p99_ms']} ms, p50 {stats['p50_ms']} ms, max {stats['max_ms']} ms; "
        f"{stats['ok']}/{stats['sent']} ok, {stats['errors']} errors "
        f"(after {stats['warmup']} warm-up requests, not counted)",
        "p99 <= 50 ms, no errors",
        ok,
    )]  # fmt: skip


BENCHES: dict[str, Callable[[], list[Row]]] = {
    "engine": bench_engine,
    "cli": bench_cli,
    "bundle": bench_bundle,
    "load": bench_load,
}


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
