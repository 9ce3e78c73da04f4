"""The composition root: loads knowledge once and wires the engine, adapters and use cases.

Only entry points import this module: the command line (`adapters/cli.py`'s `main`) and the
Python API (`myoguide.recommend`). Imports of the HTTP stack and settings are made inside the
functions that need them so `myoguide recommend` starts fast.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from myoguide.adapters.clock import SystemClock
from myoguide.domain.engine import Engine
from myoguide.errors import InputError
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.model import Knowledge
from myoguide.service import (
    Auditor,
    CdsHooks,
    Feedback,
    PatientRecords,
    Service,
    report_feedback,
)
from myoguide.service.ports import MappedRecord

if TYPE_CHECKING:
    from fastapi import FastAPI

    from myoguide.adapters.batch.run import AuditOutput
    from myoguide.adapters.cdshooks.security import IssuerConfig
    from myoguide.adapters.store import RecordStore, UserStore
    from myoguide.settings import Settings


def read_fhir(
    bundle: Mapping[str, Any], *, evaluation_date: date, rxnorm_to_agent: Mapping[str, str]
) -> MappedRecord:
    """The RecordReader port: map a FHIR Bundle with adapters.fhir's bundle_to_state."""
    # Imported on first use for start-up speed: only Bundle input needs the FHIR mapping.
    from myoguide.adapters.fhir import bundle_to_state

    return bundle_to_state(bundle, evaluation_date=evaluation_date, rxnorm_to_agent=rxnorm_to_agent)


def build_service(knowledge: Knowledge | None = None) -> Service:
    """Build a Service from the given knowledge, or the packaged guideline."""
    kb = knowledge if knowledge is not None else load_packaged()
    return Service(kb, Engine(kb), reader=read_fhir, clock=SystemClock())


@cache
def default_service() -> Service:
    """Return the process-wide Service on the packaged guideline, built once."""
    return build_service()


def build_auditor(service: Service | None = None) -> Auditor:
    """Build the population audit's per-patient use case: the service and the knowledge's flags."""
    # Imported here for start-up speed: only `audit` needs the flags.
    from myoguide.knowledge.flags import load_packaged_flags

    svc = service if service is not None else default_service()
    return Auditor(svc, load_packaged_flags(svc.knowledge))


def run_audit(
    export: Path,
    out: Path,
    *,
    engine: str = "local",
    evaluation_date: date | None = None,
    min_cell: int = 11,
    workers: int = 2,
    master: str | None = None,
    err: TextIO | None = None,
) -> AuditOutput:
    """Wire the batch door with the audit use case and run it (ages at the date, default today)."""
    # Imported here for start-up speed: only `audit` needs the batch door.
    import sys

    from myoguide.adapters.batch.run import audit

    service = default_service()
    return audit(
        export,
        out,
        auditor=build_auditor(service),
        engine=engine,
        evaluation_date=evaluation_date if evaluation_date is not None else service.today(),
        min_cell=min_cell,
        workers=workers,
        master=master,
        err=err if err is not None else sys.stderr,
    )


def run_synth(out: Path, patients: int, *, seed: int, gz: bool, err: TextIO | None = None) -> str:
    """Write a synthetic Bulk Data export with the batch door; return the summary line."""
    # Imported here for start-up speed, as above.
    import sys

    from myoguide.adapters.batch.run import synth

    return synth(out, patients, seed=seed, gz=gz, err=err if err is not None else sys.stderr)


@cache
def settings() -> Settings:
    """Return the environment's settings, read once."""
    # Imported here: pydantic-settings costs start-up time `myoguide recommend` does not need.
    from myoguide.settings import Settings

    return Settings()


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
    # Imported here for start-up speed: only `serve` needs the JWT stack.
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
    """Return the store URL: --database-url, $DATABASE_URL, or SQLite in the data directory."""
    configured = config.database_url or settings().database_url
    if configured:
        return configured
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(config.data_dir / 'myoguide.db').resolve()}"


def secret_key(data_dir: Path) -> str:
    """Return the session signing key: $MYOGUIDE_SECRET_KEY, or one kept in the data directory."""
    env = settings().secret_key
    if env is not None:
        return env.get_secret_value()
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secret_key"
    if not path.exists():
        # Kept on disk so sessions survive a restart; readable by the owner only.
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


def record_stores(config: ServeConfig) -> tuple[RecordStore, UserStore]:
    """Open (and migrate) the record and user stores."""
    # Imported here for start-up speed: SQLAlchemy is only for the commands that store.
    from myoguide.adapters.store import RecordStore, UserStore, make_engine, upgrade

    url = database_url(config)
    upgrade(url)
    engine = make_engine(url)
    return RecordStore(engine, clock=SystemClock().now), UserStore(engine)


def feedback_report(config: ServeConfig) -> str:
    """Return the stored CDS Hooks feedback report, as text."""
    # Imported here for start-up speed, as above.
    from myoguide.adapters.store.sink import StoreFeedbackSink

    return report_feedback(StoreFeedbackSink.open(database_url(config)))


def build_http_app(config: ServeConfig) -> FastAPI:
    """Wire the HTTP app: service, token verifier, FHIR client, stores and pages."""
    # Imported here for start-up speed: only `serve` needs the web stack.
    from myoguide.adapters.cdshooks.security import (
        HttpxJwksFetcher,
        MemoryReplayCache,
        TokenVerifier,
    )
    from myoguide.adapters.http.app import AppDeps, HttpSettings, create_app
    from myoguide.adapters.http.fhir_client import HttpxFhirClient
    from myoguide.adapters.store.sink import StoreFeedbackSink
    from myoguide.adapters.web.demo import seed_demo
    from myoguide.adapters.web.pages import WebDeps, mount_web

    clock = SystemClock()
    service = default_service()
    verifier = None
    if not config.insecure_dev:
        verifier = TokenVerifier(
            config.issuers, fetcher=HttpxJwksFetcher(), replay_cache=MemoryReplayCache()
        )
    feedback = Feedback(
        StoreFeedbackSink.open(database_url(config)),
        service.knowledge.knowledge_version,
        clock,
    )
    app = create_app(
        AppDeps(
            service=service,
            cds=CdsHooks(service, HttpxFhirClient()),
            verifier=verifier,
            feedback=feedback,
            settings=HttpSettings(
                max_body_bytes=config.max_body_bytes,
                insecure_dev=config.insecure_dev,
                public_base_url=config.public_base_url,
            ),
        )
    )
    records, users = record_stores(config)
    if config.require_login and users.count() == 0:
        raise InputError(
            "--host", "a non-loopback address needs sign-in: first run 'myoguide user add NAME'"
        )
    if config.demo:
        seed_demo(service, records, clock.today())
    mount_web(
        app,
        WebDeps(
            service=service,
            records=PatientRecords(records, clock),
            users=users,
            secret_key=secret_key(config.data_dir),
            require_login=config.require_login,
            clock=clock,
        ),
    )
    return app
