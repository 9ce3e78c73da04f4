"""Reads from an EHR's FHIR server with the bearer token the CDS client handed over."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class HttpxFhirClient:
    """The FhirClient port over httpx, with a short timeout and a size cap."""

    def __init__(self, timeout_seconds: float = 3.0, max_bytes: int = 5_000_000) -> None:
        self.timeout = timeout_seconds
        self.max_bytes = max_bytes

    def read(self, base_url: str, query: str, access_token: str | None) -> Mapping[str, Any]:
        """Return the JSON at `base_url/query`; raise LookupError when it cannot be had."""
        headers = {"Accept": "application/fhir+json"}
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        url = base_url.rstrip("/") + "/" + query.lstrip("/")
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
                response = client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise LookupError(f"{type(exc).__name__}") from None
        if response.status_code != 200:
            raise LookupError(f"HTTP {response.status_code}")
        if len(response.content) > self.max_bytes:
            raise LookupError("response too large")
        try:
            data = response.json()
        except ValueError:
            raise LookupError("not JSON") from None
        if not isinstance(data, dict):
            raise LookupError("not a JSON object")
        return data
