"""Reads from an EHR's FHIR server with the bearer token the CDS client handed over.

Only servers the calling issuer lists in the trust file are fetched (https unless the entry
allows http; never a loopback, link-local or private address unless the entry allows it, checked
on every address the name resolves to, at connect time). The patient id is path-encoded. The
fetch runs on one shared async httpx client, on its own event loop thread, with a streamed size
cap and a total time budget per CDS call; the caller (a worker thread) waits for it, so the
server's event loop never does.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpcore
import httpx
import orjson

from myoguide.adapters.cdshooks.security import FhirServer

log = logging.getLogger("myoguide.fhir")

# The one message a caller (and so the EHR) sees: no address, port or exception is named.
NOT_FETCHED = "the data could not be fetched from the FHIR server"
_ID = "{{context.patientId}}"
_MAX_ID_CHARS = 200

# Whether the request being sent may connect to a non-public address (its trust entry says so).
_ALLOW_PRIVATE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "myoguide_fhir_allow_private", default=False
)


class _Refused(Exception):
    """A fetch refused or failed; `reason` is for the log, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_public(address: str) -> bool:
    """Tell whether an IP address is a global unicast one (IPv4-mapped and 6to4 unwrapped)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None and not is_public(str(inner)):
            return False
    return bool(ip.is_global and not ip.is_multicast)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself and connects only to addresses the request may reach."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first resolved address, once every resolved address is allowed."""
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise httpcore.ConnectError("name not resolved") from None
        addresses = [str(info[4][0]) for info in infos]
        # Every address is checked, not just the one used: a name resolving to both a public
        # and a private address is refused (DNS rebinding, split horizon).
        if not addresses or (not _ALLOW_PRIVATE.get() and not all(is_public(a) for a in addresses)):
            raise httpcore.ConnectError("address not allowed")
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        """Sleep as the inner backend does."""
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the guarded network backend under its connection pool."""

    def __init__(self) -> None:
        super().__init__(retries=0, trust_env=False)
        # httpx takes no network backend argument; its pool is rebuilt with one (same limits).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=50,
            max_keepalive_connections=20,
            keepalive_expiry=30.0,
            retries=0,
            network_backend=_GuardedBackend(),
        )


def guarded_transport(allow_private: bool) -> httpx.AsyncHTTPTransport:
    """Return an httpx transport that connects only where a trust entry allows.

    For other adapters' outbound calls to an EHR (SMART discovery, token and JWK Set requests):
    the same address check as FHIR reads; `allow_private` holds for the calling task.
    """
    _ALLOW_PRIVATE.set(allow_private)
    return _GuardedTransport()


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int
    path: str


def _origin(url: str) -> _Origin | None:
    """Parse a server base URL; None if it has userinfo, a query, a fragment or odd bytes."""
    if not url or any(ord(c) <= 32 or ord(c) == 127 for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if "@" in parts.netloc or parts.query or parts.fragment or "\\" in url:
        return None
    default = 443 if parts.scheme == "https" else 80
    return _Origin(
        parts.scheme, parts.hostname.lower(), port or default, parts.path.rstrip("/") or ""
    )


_MEDICATION = re.compile(r"Medication/([A-Za-z0-9\-.]{1,64})")
# A next-page link on the same server: a plain path and a query, no spaces or control characters.
_PAGE = re.compile(r"[A-Za-z0-9_\-./]*(\?[\x21-\x7e]*)?")


def _encode_query(query: str, patient_id: str, templates: Mapping[str, str]) -> str | None:
    """Return a query safe to send: one of the prefetch templates with the patient id
    percent-encoded, a Medication read by id, or a same-server next page; None for anything else."""
    if not patient_id or len(patient_id) > _MAX_ID_CHARS or patient_id in (".", ".."):
        return None
    encoded = quote(patient_id, safe="")
    for template in templates.values():
        if template.replace(_ID, patient_id) == query:
            return template.replace(_ID, encoded)
    med = _MEDICATION.fullmatch(query)
    if med is not None:
        return None if med.group(1) in (".", "..") else query
    path = query.split("?", 1)[0]
    if _PAGE.fullmatch(query) and ".." not in path.split("/") and not query.startswith("/"):
        return query
    return None


class HttpxFhirClient:
    """The FhirClient port over one shared async httpx client; bind it per call with `bound`."""

    def __init__(
        self,
        servers: Mapping[str | None, Sequence[FhirServer]] | None = None,
        *,
        templates: Mapping[str, str],
        timeout_seconds: float = 10.0,
        max_bytes: int = 5_000_000,
    ) -> None:
        """Allow each issuer its listed servers (the key None: calls with no verified issuer).

        `templates` are the CDS service's prefetch templates: the searches that may be sent.
        """
        self.servers = {k: tuple(v) for k, v in (servers or {}).items()}
        self.templates = templates
        self.timeout = timeout_seconds
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None

    def bound(self, issuer: str | None, patient_id: str) -> BoundFhirClient:
        """Return a client for one CDS call: this issuer's servers, this patient, one budget."""
        if issuer is None:
            # No verified caller (--insecure-dev): any server some trusted issuer lists.
            rules = tuple(r for rs in self.servers.values() for r in rs)
        else:
            rules = self.servers.get(issuer, ())
        return BoundFhirClient(self, rules, patient_id, time.monotonic() + self.timeout)

    def read(self, base_url: str, query: str, access_token: str | None) -> Mapping[str, Any]:
        """Refuse: an unbound client knows no caller to check the server against."""
        del base_url, query, access_token
        raise LookupError(NOT_FETCHED)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """Return the client's event loop, starting its thread on first use."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="myoguide-fhir", daemon=True
                )
                thread.start()
                self._loop = loop
            return self._loop

    async def _shared_client(self) -> httpx.AsyncClient:
        """Return the shared client (made on the loop thread, where it is used)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=_GuardedTransport(), follow_redirects=False, trust_env=False
            )
        return self._client

    def fetch(
        self, url: str, token: str | None, allow_private: bool, budget: float
    ) -> Mapping[str, Any]:
        """Fetch JSON at `url` within `budget` seconds from a worker thread (_Refused if not)."""
        if budget <= 0:
            raise _Refused("time budget used up")
        future = asyncio.run_coroutine_threadsafe(
            self._fetch(url, token, allow_private, budget), self._running_loop()
        )
        try:
            return future.result(timeout=budget + 1.0)
        except FutureTimeout:
            future.cancel()
            raise _Refused("timed out") from None

    async def _fetch(
        self, url: str, token: str | None, allow_private: bool, budget: float
    ) -> Mapping[str, Any]:
        """Stream the response, stopping at the size cap or the end of the time budget."""
        _ALLOW_PRIVATE.set(allow_private)
        headers = {"Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = await self._shared_client()
        body = bytearray()
        try:
            async with asyncio.timeout(budget):
                async with client.stream(
                    "GET", url, headers=headers, timeout=httpx.Timeout(budget)
                ) as response:
                    if response.status_code != 200:
                        raise _Refused(f"HTTP {response.status_code}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > self.max_bytes:
                        raise _Refused("declared too large")
                    async for chunk in response.aiter_bytes():
                        body.extend(chunk)
                        if len(body) > self.max_bytes:
                            raise _Refused("too large")
        except TimeoutError:
            raise _Refused("timed out") from None
        except (httpx.HTTPError, httpx.InvalidURL, httpcore.ConnectError) as exc:
            raise _Refused(type(exc).__name__) from None
        try:
            data = orjson.loads(body)
        except ValueError:
            raise _Refused("not JSON") from None
        if not isinstance(data, dict):
            raise _Refused("not a JSON object")
        return data


class BoundFhirClient:
    """The FhirClient port for one CDS call: the caller's servers, one patient, one deadline."""

    def __init__(
        self,
        owner: HttpxFhirClient,
        rules: tuple[FhirServer, ...],
        patient_id: str,
        deadline: float,
    ) -> None:
        self._owner = owner
        self._rules = rules
        self._patient_id = patient_id
        self._deadline = deadline

    def rule_for(self, base_url: str) -> FhirServer | None:
        """Return the trust entry that allows this server base URL, or None."""
        origin = _origin(base_url)
        if origin is None:
            return None
        for rule in self._rules:
            if _origin(rule.url) == origin and (origin.scheme == "https" or rule.allow_http):
                return rule
        return None

    def read(self, base_url: str, query: str, access_token: str | None) -> Mapping[str, Any]:
        """Return the JSON at `base_url/query`; raise LookupError (saying nothing more) if not."""
        origin = _origin(base_url)
        where = f"{origin.scheme}://{origin.host}:{origin.port}" if origin else "(unparsable)"
        try:
            rule = self.rule_for(base_url)
            if rule is None:
                raise _Refused("server not allowed for this issuer")
            rendered = _encode_query(query, self._patient_id, self._owner.templates)
            if rendered is None:
                raise _Refused("patient id cannot be sent")
            url = base_url.rstrip("/") + "/" + rendered
            return self._owner.fetch(
                url, access_token, rule.allow_private, self._deadline - time.monotonic()
            )
        except _Refused as exc:
            # The origin only: the path holds the patient id.
            log.info("FHIR fetch from %s not done: %s", where, exc.reason)
            raise LookupError(NOT_FETCHED) from None
