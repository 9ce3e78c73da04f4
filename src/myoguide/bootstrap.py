"""The composition root: loads knowledge once and wires the engine behind one service."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from myoguide.domain.engine import Engine
from myoguide.domain.result import RecommendationSet
from myoguide.domain.state import PatientState, parse_state
from myoguide.errors import InputError
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.model import Knowledge

if TYPE_CHECKING:
    from fastapi import FastAPI

    from myoguide.adapters.cdshooks.security import IssuerConfig


@dataclass(frozen=True)
class Service:
    """The application service every door calls: validate, then evaluate."""

    knowledge: Knowledge
    engine: Engine

    def parse(self, raw: object) -> PatientState:
        """Validate raw patient-state data; raises InputError naming the field."""
        return parse_state(raw, self.knowledge)

    def recommend(self, raw: object) -> RecommendationSet:
        """Validate raw patient-state data and return its RecommendationSet."""
        return self.engine.recommend(parse_state(raw, self.knowledge))


def build_service(knowledge: Knowledge | None = None) -> Service:
    """Build a Service from the given knowledge, or the packaged guideline."""
    kb = knowledge if knowledge is not None else load_packaged()
    return Service(kb, Engine(kb))


@cache
def default_service() -> Service:
    """Return the process-wide Service on the packaged guideline, built once."""
    return build_service()


# ---- the HTTP service -------------------------------------------------------------------


@dataclass(frozen=True)
class ServeConfig:
    """How `myoguide serve` was asked to run."""

    issuers: tuple[IssuerConfig, ...]
    insecure_dev: bool
    database_url: str | None
    data_dir: Path
    public_base_url: str | None = None
    max_body_bytes: int = 1_000_000


def load_trust(path: Path) -> tuple[IssuerConfig, ...]:
    """Read the trusted CDS clients: issuers with a JWKS file and/or allowed `jku` URLs."""
    from myoguide.adapters.cdshooks.security import IssuerConfig

    try:
        doc = json.loads(path.read_text())
        issuers = []
        for i, item in enumerate(doc["issuers"]):
            jwks = None
            if "jwks_file" in item:
                jwks = json.loads((path.parent / item["jwks_file"]).read_text())
            elif "jwks" in item:
                jwks = item["jwks"]
            issuers.append(IssuerConfig(str(item["iss"]), jwks, tuple(item.get("jku", ()))))
            if jwks is None and not item.get("jku"):
                raise InputError(f"--trust: issuers[{i}]", "needs jwks_file, jwks or jku")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError("--trust", f"cannot read trusted issuers from {path}: {exc}") from None
    return tuple(issuers)


def database_url(config: ServeConfig) -> str:
    """Return the store URL: the configured one, or SQLite in the data directory."""
    if config.database_url:
        return config.database_url
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(config.data_dir / 'myoguide.db').resolve()}"


def build_http_app(config: ServeConfig) -> FastAPI:
    """Wire the HTTP app: service, token verifier, FHIR client and feedback store."""
    from myoguide.adapters.cdshooks.security import (
        HttpxJwksFetcher,
        MemoryReplayCache,
        TokenVerifier,
    )
    from myoguide.adapters.http.app import AppDeps, HttpSettings, create_app
    from myoguide.adapters.http.fhir_client import HttpxFhirClient
    from myoguide.adapters.store.sink import StoreFeedbackSink

    verifier = None
    if not config.insecure_dev:
        verifier = TokenVerifier(
            config.issuers, fetcher=HttpxJwksFetcher(), replay_cache=MemoryReplayCache()
        )
    deps = AppDeps(
        service=default_service(),
        verifier=verifier,
        fhir=HttpxFhirClient(),
        feedback=StoreFeedbackSink.open(database_url(config)),
        today=lambda: datetime.now(UTC).date(),
        settings=HttpSettings(
            max_body_bytes=config.max_body_bytes,
            insecure_dev=config.insecure_dev,
            public_base_url=config.public_base_url,
        ),
    )
    return create_app(deps)
