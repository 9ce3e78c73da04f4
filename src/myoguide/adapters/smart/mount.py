"""Mounting the SMART App Launch door: its own FHIR client per registered EHR, and its routes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from myoguide.adapters.smart.config import SmartEhrs
    from myoguide.adapters.web.ports import SessionStore
    from myoguide.service import PatientRecords
    from myoguide.service.assess import Service
    from myoguide.service.ports import ChartHandoffs, FhirClient, RecordGatherer, ReplayCache


@dataclass(frozen=True)
class SmartParts:
    """The parts of the HTTP app a SMART launch shares: reader, hand-offs, sessions, replays."""

    service: Service
    templates: Mapping[str, str]
    handoffs: ChartHandoffs
    sessions: SessionStore
    replay: ReplayCache
    records: PatientRecords
    # The gatherer over a given FHIR client, with the read caps the composition root set.
    gatherer_for: Callable[[FhirClient], RecordGatherer]


def mount_smart_app(
    app: FastAPI,
    ehrs: SmartEhrs,
    parts: SmartParts,
    base_url: str,
    secret: str,
    max_body_bytes: int,
) -> None:
    """Add SMART App Launch for the registered EHRs: its own FHIR client, keyed by each iss."""
    from myoguide.adapters.cdshooks.security import FhirServer
    from myoguide.adapters.fhir.drafts import read_draft_order
    from myoguide.adapters.http.fhir_client import HttpxFhirClient
    from myoguide.adapters.smart.config import same_url
    from myoguide.adapters.smart.launch import SmartDeps, mount_smart
    from myoguide.adapters.smart.link import PatientLinks
    from myoguide.adapters.smart.pending import PendingLaunches
    from myoguide.service import CdsHooks

    servers: dict[str | None, tuple[FhirServer, ...]] = {
        same_url(e.iss): (FhirServer(e.iss, e.allow_http, e.allow_private),) for e in ehrs
    }
    # Bound per launch to that EHR and patient; the use case supplies the reader.
    fhir = HttpxFhirClient(servers, templates=parts.templates)
    mount_smart(
        app,
        SmartDeps(
            ehrs=ehrs,
            cds=CdsHooks(parts.service, parts.gatherer_for(fhir), read_draft_order),
            fhir=fhir,
            handoffs=parts.handoffs,
            sessions=parts.sessions,
            public_base_url=base_url,
            secure_cookies=base_url.startswith("https://"),
            # The launch cookie is signed with the pages' key; a state is used once in the store.
            pending=PendingLaunches(secret, parts.replay),
            records=parts.records,
            # The local record of an EHR patient is keyed by an HMAC under the same key.
            links=PatientLinks(secret),
        ),
        max_body_bytes,
    )
