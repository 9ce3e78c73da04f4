"""A separate load process: POST patient-view requests at a fixed rate and report latencies.

Usage: python bench/load.py BASE_URL KEY_PEM REQUEST_JSON RATE SECONDS [PATH]
PATH defaults to the patient-view service; a PATH of GET route (e.g. /healthz) is fetched with
GET instead, the same schedule and client, as the trivial route the service is compared with.
Prints one JSON line: {"sent", "ok", "errors", "p50_ms", "p99_ms", "max_ms"}.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

ISSUER = "https://sandbox.cds-hooks.test"
PATH = "/cds-services/myoguide-patient-view"


async def main() -> None:
    base, key_file, body_file, rate, seconds = sys.argv[1:6]
    path = sys.argv[6] if len(sys.argv) > 6 else PATH
    get = not path.startswith("/cds-services/")
    warmup = int(float(rate) * 3)  # 3 s of requests first, not counted (reported as such)
    key = load_pem_private_key(Path(key_file).read_bytes(), password=None)
    body = Path(body_file).read_bytes()
    n = int(float(rate) * float(seconds)) + warmup
    now = int(time.time())
    # Tokens are signed up front (unique jti each) so signing does not distort the schedule.
    tokens = [
        jwt.encode(
            {
                "iss": ISSUER,
                "aud": base + path,
                "iat": now,
                "exp": now + 290,
                "jti": str(uuid.uuid4()),
            },
            key,
            algorithm="RS384",  # type: ignore[arg-type]
            headers={"kid": "test-key-1", "typ": "JWT"},
        )
        for _ in range(n)
    ]
    latencies: list[float] = []
    order: list[tuple[int, float]] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                if get:
                    res = await client.get(path)
                else:
                    res = await client.post(
                        path,
                        content=body,
                        headers={
                            "Authorization": f"Bearer {tokens[i]}",
                            "Content-Type": "application/json",
                        },
                    )
                if res.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            if i < warmup:
                return
            if i >= warmup:
                latencies.append((time.perf_counter() - start) * 1000)
                order.append((i, latencies[-1]))

        t0 = time.perf_counter()
        tasks = []
        for i in range(n):
            # Open-loop schedule: request i leaves at i/rate whatever earlier ones are doing.
            delay = t0 + i / float(rate) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    slow = sorted(order, key=lambda x: -x[1])[:15]
    print("slowest (index, ms):", slow, file=sys.stderr)
    latencies.sort()
    print(
        json.dumps(
            {
                "sent": n - warmup,
                "ok": n - warmup - errors,
                "errors": errors,
                "warmup": warmup,
                "p50_ms": round(statistics.median(latencies), 2),
                "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
                "max_ms": round(latencies[-1], 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
