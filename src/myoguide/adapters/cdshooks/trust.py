"""The trust file's CDS clients: issuers with their keys (JWKS or `jku`) and FHIR servers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from myoguide.adapters.cdshooks.security import FhirServer, IssuerConfig
from myoguide.errors import InputError


def _fhir_servers(item: Mapping[str, Any], where: str) -> tuple[FhirServer, ...]:
    """Read an issuer's `fhir_servers`: URLs, or objects with url, allow_http, allow_private."""
    out = []
    for j, entry in enumerate(item.get("fhir_servers", ())):
        if isinstance(entry, str):
            entry = {"url": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise InputError(f"--trust: {where}.fhir_servers[{j}]", "needs a url")
        out.append(
            FhirServer(
                entry["url"],
                allow_http=entry.get("allow_http") is True,
                allow_private=entry.get("allow_private") is True,
            )
        )
    return tuple(out)


def load_trust(path: Path) -> tuple[IssuerConfig, ...]:
    """Read the trusted CDS clients: issuers with a JWKS file and/or allowed `jku` URLs."""
    try:
        doc = json.loads(path.read_text())
        issuers = []
        # A file may register only SMART EHRs (load_smart), and no CDS client.
        for i, item in enumerate(doc.get("issuers", [])):
            jwks = None
            if "jwks_file" in item:
                jwks = json.loads((path.parent / item["jwks_file"]).read_text())
            elif "jwks" in item:
                jwks = item["jwks"]
            issuers.append(
                IssuerConfig(
                    str(item["iss"]),
                    jwks,
                    tuple(item.get("jku", ())),
                    _fhir_servers(item, f"issuers[{i}]"),
                )
            )
            if jwks is None and not item.get("jku"):
                raise InputError(f"--trust: issuers[{i}]", "needs jwks_file, jwks or jku")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError("--trust", f"cannot read trusted issuers from {path}: {exc}") from None
    return tuple(issuers)
