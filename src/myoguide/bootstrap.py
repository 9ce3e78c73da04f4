"""The composition root: loads knowledge once and wires the engine behind one service."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    require_login: bool = False
    demo: bool = False


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
    app = create_app(deps)
    _mount_web(app, config, deps.today)
    return app


def secret_key(data_dir: Path) -> str:
    """Return the session signing key: $MYOGUIDE_SECRET_KEY, or one kept in the data directory."""
    import os
    import secrets

    env = os.environ.get("MYOGUIDE_SECRET_KEY")
    if env:
        return env
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secret_key"
    if not path.exists():
        # Kept on disk so sessions survive a restart; readable by the owner only.
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def record_stores(config: ServeConfig) -> tuple[Any, Any]:
    """Open (and migrate) the record and user stores."""
    from myoguide.adapters.store import RecordStore, UserStore, make_engine, upgrade

    url = database_url(config)
    upgrade(url)
    engine = make_engine(url)
    return RecordStore(engine), UserStore(engine)


def _mount_web(app: FastAPI, config: ServeConfig, today: Callable[[], date]) -> None:
    from myoguide.adapters.web.demo import seed_demo
    from myoguide.adapters.web.pages import WebDeps, mount_web

    records, users = record_stores(config)
    if config.require_login and users.count() == 0:
        raise InputError(
            "--host", "a non-loopback address needs sign-in: first run 'myoguide user add NAME'"
        )
    if config.demo:
        seed_demo(default_service(), records, today())
    mount_web(
        app,
        WebDeps(
            default_service(),
            records,
            users,
            secret_key(config.data_dir),
            config.require_login,
            today,
        ),
    )
