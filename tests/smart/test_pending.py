"""Launches in flight: kept in the browser's signed cookie, each state taken once (the store's
replay table in the app; the in-memory one here), and nothing taken from a forged cookie."""

from __future__ import annotations

from myoguide.adapters.cdshooks.security import MemoryReplayCache
from myoguide.adapters.smart.pending import PENDING_SECONDS, Pending, PendingLaunches

ENDPOINTS = {"token_endpoint": "https://ehr.example/token"}


def _pending(state: str, started: float) -> Pending:
    return Pending("https://ehr.example/fhir", state, "v" * 64, "n", ENDPOINTS, True, started)


def _launches(now: list[float]) -> PendingLaunches:
    return PendingLaunches("k" * 32, MemoryReplayCache(clock=lambda: now[0]), clock=lambda: now[0])


def test_a_state_is_taken_once_and_only_with_its_cookie() -> None:
    now = [1_000_000.0]
    launches = PendingLaunches(
        "k" * 32, MemoryReplayCache(clock=lambda: now[0]), clock=lambda: now[0]
    )
    cookie = launches.add(None, _pending("s1", now[0]))
    other = launches.add(None, _pending("s2", now[0]))
    assert launches.take(other, "s1") is None  # another browser's cookie
    assert launches.take(cookie + "x", "s1") is None  # forged
    taken = launches.take(cookie, "s1")
    assert taken is not None
    assert taken.verifier == "v" * 64
    assert launches.take(cookie, "s1") is None  # used


def test_a_browser_keeps_four_launches_and_old_ones_lapse() -> None:
    now = [1_000_000.0]
    launches = PendingLaunches(
        "k" * 32, MemoryReplayCache(clock=lambda: now[0]), clock=lambda: now[0]
    )
    cookie = None
    for n in range(5):
        cookie = launches.add(cookie, _pending(f"s{n}", now[0]))
    assert launches.take(cookie, "s0") is None  # the oldest was dropped
    assert launches.take(cookie, "s4") is not None
    now[0] += PENDING_SECONDS + 1
    assert launches.take(cookie, "s3") is None  # lapsed
