"""The CDS clients' keys: fetching a JWK Set over HTTP(S) and caching it per URL.

Split from security.py (token verification), which re-exports these names. A fetch never
uses proxy variables or `.netrc` (trust_env=False), as the FHIR client does not (ADR 0018).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

_log = logging.getLogger("myoguide.adapters.cdshooks.security")

Clock = Callable[[], float]


class TokenError(Exception):
    """A bearer token was refused; `reason` is a short machine code, `message` is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class JwksFetcher(Protocol):
    """Port that fetches a JWK Set document from a URL."""

    def fetch(self, url: str) -> Mapping[str, Any]:
        """Return the JWK Set at `url`, or raise TokenError("jwks_unavailable")."""
        ...


def _unavailable(message: str) -> TokenError:
    """Build the error used whenever a JWK Set cannot be obtained."""
    return TokenError("jwks_unavailable", message)


def jwks_keys(document: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """Return the key objects of a JWK Set document, or None if it is not one."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        return None
    return [key for key in keys if isinstance(key, Mapping)]


class HttpxJwksFetcher:
    """Fetches JWK Sets over HTTP(S) with httpx, bounded in time and size."""

    def __init__(self, timeout_seconds: float = 2.0, *, max_bytes: int = 256_000) -> None:
        """Set the total time allowed per fetch and the largest document accepted."""
        if timeout_seconds <= 0 or max_bytes <= 0:
            raise ValueError("timeout_seconds and max_bytes must be positive")
        self._timeout = timeout_seconds
        self._max_bytes = max_bytes

    def fetch(self, url: str) -> Mapping[str, Any]:
        """Return the JWK Set at `url`, or raise TokenError("jwks_unavailable")."""
        # httpx timeouts apply per network operation, so a slow trickle is cut off here too.
        deadline = time.monotonic() + self._timeout
        body = bytearray()
        try:
            with httpx.stream(
                "GET",
                url,
                timeout=self._timeout,
                follow_redirects=False,
                headers={"Accept": "application/json"},
                # No proxy variables, no .netrc credentials: the trust file says where to go.
                trust_env=False,
            ) as response:
                if response.status_code != 200:
                    _log.warning("JWKS fetch from %s got HTTP %d", url, response.status_code)
                    raise _unavailable("the client's JWK Set could not be fetched")
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > self._max_bytes:
                        raise _unavailable("the client's JWK Set is too large")
                    if time.monotonic() > deadline:
                        raise _unavailable("fetching the client's JWK Set timed out")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            _log.warning("JWKS fetch from %s failed: %s", url, type(exc).__name__)
            raise _unavailable("the client's JWK Set could not be fetched") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise _unavailable("the client's JWK Set is not valid JSON") from None
        if not isinstance(document, dict) or jwks_keys(document) is None:
            raise _unavailable("the client's JWK Set has no 'keys' list")
        return document


class WouldFetch(Exception):
    """A JWK Set must be fetched, and the caller asked not to wait on the network here."""


class JwksCache:
    """Caches fetched JWK Sets per URL for a time-to-live, with rate-limited early refresh.

    Failures are cached too (for `negative_ttl_seconds`), one fetch per URL runs at a time, and
    each issuer has a fetch budget per minute: a host that is down is not asked again and again.
    """

    def __init__(
        self,
        fetcher: JwksFetcher,
        *,
        ttl_seconds: float = 300.0,
        min_refresh_interval_seconds: float = 30.0,
        negative_ttl_seconds: float = 30.0,
        max_fetches_per_minute: int = 10,
        clock: Clock = time.time,
    ) -> None:
        """Wrap `fetcher`; entries live `ttl_seconds` by `clock`."""
        if ttl_seconds <= 0 or min_refresh_interval_seconds < 0 or negative_ttl_seconds < 0:
            raise ValueError("ttl_seconds must be positive and the intervals not negative")
        if max_fetches_per_minute <= 0:
            raise ValueError("max_fetches_per_minute must be positive")
        self._fetcher = fetcher
        self._ttl = ttl_seconds
        self._min_refresh = min_refresh_interval_seconds
        self._negative_ttl = negative_ttl_seconds
        self._budget = max_fetches_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Mapping[str, Any]]] = {}
        self._failures: dict[str, tuple[float, TokenError]] = {}
        self._fetches: dict[str, deque[float]] = {}
        self._url_locks: dict[str, threading.Lock] = {}

    def get(
        self, url: str, *, refresh: bool = False, issuer: str = "", may_fetch: bool = True
    ) -> Mapping[str, Any]:
        """Return the JWK Set at `url`, fetching if absent, stale, or `refresh` is allowed now.

        With `may_fetch` False, raise WouldFetch instead of fetching (an event loop's caller).
        """
        cached = self._fresh(url, refresh)
        if cached is not None:
            return cached
        if not may_fetch:
            raise WouldFetch(url)
        with self._lock:
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        # One fetch per URL at a time: the others wait and then use its outcome.
        with url_lock:
            cached = self._fresh(url, refresh)
            if cached is not None:
                return cached
            self._spend(issuer)
            try:
                document = self._fetcher.fetch(url)
            except TokenError as exc:
                with self._lock:
                    self._failures[url] = (self._clock(), exc)
                raise
            with self._lock:
                self._entries[url] = (self._clock(), document)
                self._failures.pop(url, None)
            return document

    def _fresh(self, url: str, refresh: bool) -> Mapping[str, Any] | None:
        """Return the cached set if it may be used; raise the cached failure if one is recent."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(url)
            failure = self._failures.get(url)
        if entry is not None:
            fetched_at, document = entry
            age = now - fetched_at
            # A refresh for an unknown kid is honoured only now and then, so tokens with
            # made-up kids cannot turn into a stream of requests to the client's server.
            if age < self._ttl and not (refresh and age >= self._min_refresh):
                return document
        if failure is not None and now - failure[0] < self._negative_ttl:
            raise failure[1]
        return None

    def _spend(self, issuer: str) -> None:
        """Count one fetch against the issuer's budget, or refuse if it is used up."""
        now = self._clock()
        with self._lock:
            recent = self._fetches.setdefault(issuer, deque())
            while recent and now - recent[0] >= 60.0:
                recent.popleft()
            if len(recent) >= self._budget:
                raise _unavailable("the client's JWK Set was fetched too often; try again later")
            recent.append(now)
