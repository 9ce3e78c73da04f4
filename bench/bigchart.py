"""A 1,000-order Synthea-shaped chart against a small one, through a real CDS server.

Starts `myoguide serve` on loopback (default CDS body limit) with a trusted client key, then
sends signed patient-view calls with the whole chart as prefetch: a big chart (about 1,000
MedicationRequests, the generator of tests/fhir/synthea_shapes.py) and a small chart of the same
shapes (35 orders), one client, alternating round by round so machine noise hits both alike.
Target (issue 17): big-chart p50 at most 4x the small chart's; no 413, no 5xx.
Writes its own section of bench/RESULTS.md (other sections kept).
Usage: python bench/bigchart.py [--rounds N] [--per-round N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
TITLE = "## A 1,000-order chart against a small one (bench/bigchart.py)"
PV = "/cds-services/myoguide-patient-view"
TARGET = 4.0


def _bodies() -> dict[str, bytes]:
    """Return the signed calls' bodies: a small and a big Synthea-shaped chart as prefetch."""
    sys.path[:0] = [str(ROOT / "tests" / "http"), str(ROOT / "tests" / "fhir")]
    import synthea_shapes
    from helpers import hook_request, prefetch_from

    out = {}
    for name, orders in (("small", 40), ("big", 1000)):
        patient_id, prefetch = prefetch_from(synthea_shapes.big_chart(orders))
        out[name] = json.dumps(hook_request("patient-view", patient_id, prefetch)).encode()
    return out


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def _cpu_ms(pid: int) -> float:
    """Return the CPU time (user + system) a process has used so far, in ms (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def measure(rounds: int, per_round: int) -> dict[str, Any]:
    """Serve, send alternating rounds of each chart, and return latencies and statuses."""
    sys.path.insert(0, str(ROOT / "tests" / "http"))
    from servers import start_server, stop_server

    bodies = _bodies()
    times: dict[str, list[float]] = {k: [] for k in bodies}
    # The server's CPU time per round of each chart: steadier than wall time on a loaded
    # machine, where a call waits for a core as long as it runs.
    cpu: dict[str, list[float]] = {k: [] for k in bodies}
    statuses: dict[str, dict[int, int]] = {k: {} for k in bodies}
    with tempfile.TemporaryDirectory() as tmp:
        srv = start_server(Path(tmp))
        try:
            with httpx.Client(base_url=srv.base, timeout=60) as client:
                for n in range(rounds + 1):  # round 0 warms up, not counted
                    for name, body in bodies.items():
                        # Signed before the clock starts: a fresh token (jti) each call.
                        tokens = [srv.token(PV) for _ in range(per_round)]
                        used = _cpu_ms(srv.process.pid)
                        for token in tokens:
                            start = time.perf_counter()
                            res = client.post(
                                PV,
                                content=body,
                                headers={
                                    "Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json",
                                },
                            )
                            elapsed = (time.perf_counter() - start) * 1000
                            if n:
                                times[name].append(elapsed)
                                code = res.status_code
                                statuses[name][code] = statuses[name].get(code, 0) + 1
                        if n:
                            cpu[name].append((_cpu_ms(srv.process.pid) - used) / per_round)
        finally:
            stop_server(srv)
    return {
        "bytes": {k: len(v) for k, v in bodies.items()},
        "ms": times,
        "cpu": cpu,
        "status": statuses,
    }


def in_process(bodies: dict[str, bytes], runs: int = 31) -> dict[str, float]:
    """Return each call's median CPU ms in process: the route's own work after the token."""
    from myoguide.adapters.fhir.drafts import read_draft_order
    from myoguide.adapters.fhir.gather import FhirGatherer, prefetch_templates
    from myoguide.adapters.http.cds import CdsDoor, _answer_call
    from myoguide.bootstrap import default_service
    from myoguide.knowledge.terminology import load_packaged_terminology
    from myoguide.service import CdsHooks

    class _NoServer:
        def read(self, base_url: str, query: str, token: str | None) -> dict[str, Any]:
            raise LookupError("everything is prefetched")

    term = load_packaged_terminology()
    templates = prefetch_templates(term.weight_codes, term.height_codes)
    use_case = CdsHooks(default_service(), FhirGatherer(_NoServer(), templates), read_draft_order)
    door = CdsDoor(use_case, None, None, "http://127.0.0.1")

    def call(raw: bytes) -> None:
        # Parse, repeated-key check, answer, cards and the response body, as a worker runs them.
        res = _answer_call(door, PV.rsplit("/", 1)[1], raw, None, "http://127.0.0.1/")
        assert res.status_code == 200, res.body[:200]

    for raw in bodies.values():
        for _ in range(3):
            call(raw)
    ms: dict[str, list[float]] = {name: [] for name in bodies}
    for _ in range(runs):  # interleaved, as over HTTP
        for name, raw in bodies.items():
            start = time.process_time()
            call(raw)
            ms[name].append((time.process_time() - start) * 1000)
    return {name: statistics.median(v) for name, v in ms.items()}


def main() -> None:
    """Measure, print and write the section."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=20)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    out = measure(args.rounds, args.per_round)
    load_after = os.getloadavg()[0]
    cpu = in_process(_bodies())
    p50 = {k: statistics.median(v) for k, v in out["ms"].items()}
    ratio = p50["big"] / p50["small"]
    server = {k: statistics.median(v) for k, v in out["cpu"].items()}
    cpu_ratio = server["big"] / server["small"]
    refused = sum(n for s in out["status"].values() for code, n in s.items() if code != 200)
    met = ratio <= TARGET and refused == 0
    rows = []
    for name, what in (
        ("small", "small chart (35 orders)"),
        ("big", "big chart (about 1,000 orders)"),
    ):
        ms = out["ms"][name]
        codes = ", ".join(f"{n} x {code}" for code, n in sorted(out["status"][name].items()))
        rows.append(
            f"| {what}, {out['bytes'][name]:,} B prefetch | median {p50[name]:.1f} ms, "
            f"p95 {_p(ms, 95):.1f} ms | {server[name]:.1f} ms | {codes} |"
        )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = [
        TITLE,
        "",
        f"Run at {when} on 2 shared cores: one `myoguide serve` on loopback (default CDS body"
        f" limit), signed patient-view calls with the whole chart as prefetch, one client,"
        f" {args.rounds} alternating rounds of {args.per_round} calls per chart (a warm-up round"
        " first, not counted). Charts from tests/fhir/synthea_shapes.py `big_chart`.",
        "",
        "| call | wall time | server CPU per call | answers |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Big-chart p50 / small-chart p50: **{ratio:.1f}x** (target at most {TARGET:g}x, no"
        f" 413, no 5xx): {'met' if met else 'NOT met'}. 1-minute load average"
        f" {load_before:.1f} at the start, {load_after:.1f} at the end. Server CPU per call"
        f" (user + system time of the server process over each round, median of the rounds),"
        f" big / small: **{cpu_ratio:.1f}x**.",
        "",
        f"The same calls in process (the route's work after the token: parse, repeated-key"
        f" check, answer, cards, response body; CPU time of one core, median of 31 interleaved):"
        f" small {cpu['small']:.1f} ms, big {cpu['big']:.1f} ms. Over HTTP the small call's"
        " time is mostly the fixed cost of a call (token, replay cache, hand-off, HTTP), which"
        " the big call pays too.",
    ]
    print("\n".join(section))
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if TITLE in text:
        # Replace this section only, up to the next "## " heading.
        head, _, rest = text.partition(TITLE)
        nxt = rest.find("\n## ")
        text = head.rstrip() + ("" if nxt < 0 else "\n\n" + rest[nxt + 1 :].rstrip())
    RESULTS.write_text(text.rstrip() + "\n\n" + "\n".join(section) + "\n")


if __name__ == "__main__":
    main()
