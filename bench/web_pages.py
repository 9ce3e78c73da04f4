"""Clinician's pages against a static file of the same app, under the same load.

Starts `myoguide serve --demo` on loopback, then runs rounds in which each kind of request
(a static file, form submit to answer, a patient's timeline page) is sent by the same number of
concurrent clients; the kinds alternate round by round so machine noise hits them alike.
Writes its own section of bench/RESULTS.md (other sections kept).
Usage: python bench/web_pages.py [--rounds N] [--per-round N] [--clients N] [--only KIND,...]
(--only, e.g. `--only submit`: the static file and those kinds, printed and not written.)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
TITLE = "## Clinician's pages vs a static file (bench/web_pages.py)"
sys.path.insert(0, str(ROOT / "tests" / "web"))
from pageforms import FLARE_ON_PREDNISONE  # noqa: E402  (the page tests' visit form, once)

# The page tests' flare on prednisone, with methotrexate and both units as the form sends them.
FLARE = {
    "action": "show",
    **FLARE_ON_PREDNISONE,
    "current_medications[0].dose.unit": "mg/day",
    "current_medications[1].agent": "methotrexate",
    "current_medications[1].dose.value": "15",
    "current_medications[1].dose.unit": "mg/week",
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _timed(send: Callable[[], Awaitable[httpx.Response]], out: list[float]) -> None:
    start = time.perf_counter()
    response = await send()
    out.append((time.perf_counter() - start) * 1000)
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url}: {response.status_code}")


async def _round(
    send: Callable[[], Awaitable[httpx.Response]], n: int, clients: int, out: list[float]
) -> None:
    async def worker(count: int) -> None:
        for _ in range(count):
            await _timed(send, out)

    share = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    await asyncio.gather(*(worker(c) for c in share))


async def measure(
    base: str, rounds: int, per_round: int, clients: int, only: frozenset[str] | None = None
) -> dict[str, list[float]]:
    """Return latencies in ms by kind, gathered in alternating rounds."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        page = (await client.get("/assess")).text
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match, "no csrf token on /assess"
        form = {**FLARE, "csrf": match.group(1)}
        patients = (await client.get("/patients")).text
        found = re.search(r'href="(/patients/\d+)">DEMO-A', patients)
        assert found, "no demo patient"
        timeline = found.group(1)
        kinds: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "static": lambda: client.get("/static/style.css"),
            "submit": lambda: client.post("/assess", data=form),
            "timeline": lambda: client.get(timeline),
        }
        if only is not None:
            kinds = {k: v for k, v in kinds.items() if k == "static" or k in only}
        for send in kinds.values():  # warm-up, not counted
            await _round(send, clients * 5, clients, [])
        out: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(rounds):
            for kind, send in kinds.items():
                await _round(send, per_round, clients, out[kind])
        return out


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    """Serve, measure, print and write the section."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--only", help="comma-separated kinds besides static (not written)")
    args = parser.parse_args()
    only = frozenset(args.only.split(",")) if args.only else None
    port = _port()
    with tempfile.TemporaryDirectory() as tmp:
        exe = str(Path(sys.executable).with_name("myoguide"))
        cmd = [exe, "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(
            [*cmd, "--data-dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            out = asyncio.run(measure(base, args.rounds, args.per_round, args.clients, only))
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    static = statistics.median(out["static"])
    rows = []
    for kind, what in (
        ("static", "static file of the same app (GET /static/style.css)"),
        ("submit", "form submit to rendered answer (POST /assess, flare on MTX)"),
        ("timeline", "timeline page (GET /patients/{id}, DEMO-A, 4 visits)"),
    ):
        if kind not in out:
            continue
        med = statistics.median(out[kind])
        ratio = "1.00x (the base)" if kind == "static" else f"{med / static:.2f}x"
        rows.append(
            f"| {what} | median {med:.1f} ms, p95 {_p(out[kind], 95):.1f} ms,"
            f" {len(out[kind])} requests | {ratio} |"
        )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = [
        TITLE,
        "",
        f"Run at {when} on 2 shared cores: {args.clients} concurrent clients, {args.rounds}"
        f" alternating rounds of {args.per_round} requests per kind, one `myoguide serve` on"
        " loopback (SQLite). Ratio = median latency / the static file's median latency.",
        "",
        "| request | measured | ratio to static |",
        "|---|---|---|",
        *rows,
    ]
    print("\n".join(section))
    if only is not None:
        return
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if TITLE in text:
        # Replace this section only, up to the next "## " heading.
        head, _, rest = text.partition(TITLE)
        nxt = rest.find("\n## ")
        text = head.rstrip() + ("" if nxt < 0 else "\n\n" + rest[nxt + 1 :].rstrip())
    RESULTS.write_text(text.rstrip() + "\n\n" + "\n".join(section) + "\n")


if __name__ == "__main__":
    main()
