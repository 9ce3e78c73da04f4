"""The composition root: loads knowledge once and wires the engine, adapters and use cases.

Only the entry points in `myoguide.entrypoints` import this module: the command line, the ASGI
app factory of `serve --workers N` and the Python API (`myoguide.recommend`). Imports of the HTTP
stack and settings are made inside the functions that need them so `myoguide recommend` starts
fast.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, TextIO

from msgspec import Struct

from myoguide.adapters.clock import SystemClock
from myoguide.domain.engine import Engine
from myoguide.errors import InputError
from myoguide.knowledge.loader import load_packaged
from myoguide.knowledge.model import Knowledge
from myoguide.service.assess import Service

if TYPE_CHECKING:
    # pathlib (with urllib.parse and ipaddress) is imported by the functions that build paths,
    # not on `myoguide recommend`'s way (issue 24).
    from pathlib import Path

    from fastapi import FastAPI, Request
    from sqlalchemy import Engine as DbEngine

    from myoguide.adapters.batch.run import AuditOutput
    from myoguide.adapters.cdshooks.security import IssuerConfig, TokenVerifier
    from myoguide.adapters.fhir.gather import FhirGatherer
    from myoguide.adapters.http.server import ServerLimits
    from myoguide.adapters.smart.config import SmartEhrs
    from myoguide.adapters.store import ChainAnchor, ChainKeys, RecordStore, SessionStore, UserStore
    from myoguide.knowledge.terminology import Terminology
    from myoguide.service import Auditor
    from myoguide.service.ports import Clock, FhirClient, MappedRecord
    from myoguide.settings import Settings


def read_fhir(
    bundle: Mapping[str, Any],
    *,
    evaluation_date: date,
    rxnorm_to_agent: Mapping[str, str],
    knowledge: Knowledge,
) -> MappedRecord:
    """The RecordReader port: map a FHIR Bundle with adapters.fhir's bundle_to_state."""
    # Imported on first use for start-up speed: only Bundle input needs the FHIR mapping.
    from myoguide.adapters.fhir import bundle_to_state

    return bundle_to_state(
        bundle,
        evaluation_date=evaluation_date,
        rxnorm_to_agent=rxnorm_to_agent,
        terminology=_packaged_terminology(),
        knowledge=knowledge,
    )


@cache
def _packaged_terminology() -> Terminology:
    """Return the packaged terminology the engine holds (from the cache), looked up once."""
    # Finding the cache folder (the home folder) costs more than a small chart's reading.
    from myoguide.knowledge.terminology import load_packaged_terminology

    return load_packaged_terminology(knowledge_cache_dir())


def knowledge_cache_dir() -> str | None:
    """Return the folder of the validated-knowledge cache, or None for no cache.

    $MYOGUIDE_CACHE_DIR when set ("" or "off" turns the cache off), else myoguide under
    $XDG_CACHE_HOME or ~/.cache. Read from the environment directly: the settings module costs
    more start-up time than the cache saves.
    """
    given = os.environ.get("MYOGUIDE_CACHE_DIR")
    if given is not None:
        return given if given.strip() and given.strip().lower() != "off" else None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return os.path.join(xdg, "myoguide")
    home = os.path.expanduser("~")
    if home == "~":  # no home folder to be found: run without a cache
        return None
    return os.path.join(home, ".cache", "myoguide")


def build_service(knowledge: Knowledge | None = None) -> Service:
    """Build a Service from the given knowledge, or the packaged guideline."""
    from myoguide.knowledge.terminology import load_packaged_terminology

    cache_dir = knowledge_cache_dir()
    kb = knowledge if knowledge is not None else load_packaged(cache_dir)
    engine = Engine(kb, load_packaged_terminology(cache_dir))
    return Service(kb, engine, reader=read_fhir, clock=SystemClock())


@cache
def default_service() -> Service:
    """Return the process-wide Service on the packaged guideline, built once."""
    return build_service()


def build_auditor(service: Service | None = None) -> Auditor:
    """Build the population audit's per-patient use case: the service and the knowledge's flags."""
    # Imported here for start-up speed: only `audit` needs the flags.
    from myoguide.knowledge.flags import load_packaged_flags
    from myoguide.service import Auditor

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
    max_line: int | None = None,
    max_gzip: int | None = None,
    err: TextIO | None = None,
) -> AuditOutput:
    """Wire the batch door with the audit use case and run it (ages at the date, default today)."""
    # Imported here for start-up speed: only `audit` needs the batch door.
    import sys

    from myoguide.adapters.batch.export import MAX_DECOMPRESSED_BYTES, MAX_LINE_BYTES
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
        max_line=max_line if max_line is not None else MAX_LINE_BYTES,
        max_gzip=max_gzip if max_gzip is not None else MAX_DECOMPRESSED_BYTES,
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
    """Return the environment's settings, read once (InputError naming a variable it refuses)."""
    return resolve_settings({})


def resolve_settings(given: Mapping[str, object]) -> Settings:
    """Return the settings: the command line's options (given, by field) over the environment's."""
    # Imported here: pydantic-settings costs start-up time `myoguide recommend` does not need.
    from myoguide.settings import load_settings

    return load_settings(given)


# ---- the HTTP service -------------------------------------------------------------------


# A msgspec Struct, not a dataclass: defining a dataclass costs the command's start (issue 24).
class ServeConfig(Struct, frozen=True):
    """How `myoguide serve` was asked to run."""

    issuers: tuple[IssuerConfig, ...]
    insecure_dev: bool
    database_url: str | None
    data_dir: Path
    public_base_url: str | None = None
    max_body_bytes: int = 1_000_000
    require_login: bool = False
    demo: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    trust_file: Path | None = None  # where issuers came from, so a worker can read them again
    migrate: bool = True  # False: start on the database as it is (`serve --no-migrate`)

    def to_json(self) -> str:
        """Return the options a worker process needs, as JSON (issuers by their file)."""
        import json  # here, as every import `recommend` does not use

        return json.dumps(
            {
                "trust_file": str(self.trust_file) if self.trust_file else None,
                "insecure_dev": self.insecure_dev,
                "database_url": self.database_url,
                "data_dir": str(self.data_dir),
                "public_base_url": self.public_base_url,
                "max_body_bytes": self.max_body_bytes,
                "require_login": self.require_login,
                "host": self.host,
                "port": self.port,
                "migrate": self.migrate,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """Return the options `to_json` wrote (demo patients are seeded by the parent only)."""
        import json
        from pathlib import Path

        from myoguide.adapters.cdshooks.trust import load_trust

        doc = json.loads(text)
        trust = Path(doc["trust_file"]) if doc["trust_file"] else None
        return cls(
            issuers=load_trust(trust) if trust else (),
            insecure_dev=bool(doc["insecure_dev"]),
            database_url=doc["database_url"],
            data_dir=Path(doc["data_dir"]),
            public_base_url=doc["public_base_url"],
            max_body_bytes=int(doc["max_body_bytes"]),
            require_login=bool(doc["require_login"]),
            host=str(doc["host"]),
            port=int(doc["port"]),
            trust_file=trust,
            migrate=bool(doc.get("migrate", True)),
        )


def is_loopback(host: str) -> bool:
    """Tell whether a bind address is loopback only."""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def public_url(config: ServeConfig) -> str | None:
    """Return the URL clients call (the tokens' audience), fixed by configuration.

    With trusted issuers it is required, except on loopback (development), where it is the
    bound address; the request's Host header is never used.
    """
    if config.public_base_url:
        return config.public_base_url.rstrip("/")
    if not config.issuers or config.insecure_dev:
        return None
    if not is_loopback(config.host):
        raise InputError(
            "--public-url", "with --trust off loopback, give the URL clients call (the audience)"
        )
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{config.port}"


def smart_url(config: ServeConfig) -> str:
    """Return the URL the EHR sends the browser back to: --public-url, or the loopback address."""
    if config.public_base_url:
        return config.public_base_url.rstrip("/")
    if not is_loopback(config.host):
        raise InputError(
            "--public-url", "with 'smart' EHRs in --trust off loopback, give the URL of the app"
        )
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{config.port}"


def load_smart(path: Path | None) -> SmartEhrs | None:
    """Read the EHRs registered for SMART App Launch (the trust file's `smart`), or None."""
    if path is None:
        return None
    import json

    from myoguide.adapters.smart.config import parse_smart

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError("--trust", f"cannot read the trust file {path}: {exc}") from None
    ehrs = parse_smart(doc) if isinstance(doc, dict) else None
    return ehrs or None


def database_url(config: ServeConfig) -> str:
    """Return the store URL: --database-url, $DATABASE_URL, or SQLite in the data directory."""
    configured = config.database_url or settings().database_url
    if configured:
        return configured
    data_folder(config.data_dir)
    return f"sqlite:///{(config.data_dir / 'myoguide.db').resolve()}"


def secret_key(data_dir: Path) -> str:
    """Return the session signing key: $MYOGUIDE_SECRET_KEY, or one kept in the data directory."""
    from myoguide.adapters.store.keyfiles import secret_key as kept

    env = settings().secret_key
    return env.get_secret_value() if env is not None else kept(data_dir)


def chain_keys(data_dir: Path) -> ChainKeys:
    """Return the record chain's MAC keys: $MYOGUIDE_CHAIN_KEY, or the data folder's key file."""
    from myoguide.adapters.store.keyfiles import chain_keys as kept

    env = settings().chain_key
    return kept(data_dir, env.get_secret_value() if env is not None else None)


def data_folder(path: Path) -> Path:
    """Create the data folder readable by the service's user only (0700), if it is not there."""
    from myoguide.adapters.store.keyfiles import data_folder as made

    return made(path)


def chain_anchor(data_dir: Path, keys: ChainKeys) -> ChainAnchor:
    """Return where the chains' heads are kept: $MYOGUIDE_CHAIN_HEAD_FILE or the data folder."""
    from myoguide.adapters.store import ChainAnchor

    given = settings().chain_head_file
    from pathlib import Path

    return ChainAnchor(Path(given) if given else data_dir / "chain_head.json", keys)


def store_engine(config: ServeConfig) -> DbEngine:
    """Migrate the store (unless the config says not to) and return an engine on it."""
    # Imported here for start-up speed: SQLAlchemy is only for the commands that store.
    from myoguide.adapters.store import make_engine, upgrade

    url = database_url(config)
    if config.migrate:
        upgrade(url, chain_key=chain_keys(config.data_dir).keys[0])
    return make_engine(url)


def record_store(
    engine: DbEngine, config: ServeConfig, clock: Clock, *, adopt: bool = True
) -> RecordStore:
    """Return the record store, sealing with the chain key and keeping the heads outside."""
    from myoguide.adapters.store import RecordStore, current_heads

    keys = chain_keys(config.data_dir)
    anchor = chain_anchor(config.data_dir, keys)
    if adopt:
        # A record first opened with a head file starts from the heads it holds now.
        anchor.adopt(current_heads(engine))
    return RecordStore(engine, clock=clock, keys=keys, anchor=anchor)


def record_stores(config: ServeConfig) -> tuple[RecordStore, UserStore]:
    """Open (and migrate) the record and user stores."""
    from myoguide.adapters.store import UserStore

    engine = store_engine(config)
    return record_store(engine, config, SystemClock()), UserStore(engine)


def verify_record(config: ServeConfig) -> tuple[bool, str]:
    """Walk the answers' and decisions' MAC chains and the kept heads; return intact, report."""
    from myoguide.adapters.store import verify_chain

    engine = store_engine(config)
    keys = chain_keys(config.data_dir)
    try:
        report = verify_chain(engine, keys, chain_anchor(config.data_dir, keys))
    finally:
        engine.dispose()
    return report.broken is None, report.text()


def change_password(config: ServeConfig, username: str, password: str) -> None:
    """Set an account's password and end its sessions (LookupError, ValueError)."""
    _, users = record_stores(config)
    users.set_password(username, password)


def feedback_report(config: ServeConfig) -> str:
    """Return the stored CDS Hooks feedback report, as text."""
    # Imported here for start-up speed, as above.
    from myoguide.adapters.store.sink import StoreFeedbackSink
    from myoguide.service import report_feedback

    return report_feedback(StoreFeedbackSink.open(database_url(config)))


def build_http_app(
    config: ServeConfig,
    *,
    service: Service | None = None,
    clock: Clock | None = None,
    engine: DbEngine | None = None,
    fhir: FhirClient | None = None,
) -> FastAPI:
    """Wire the HTTP app: service, token verifier, FHIR client, stores and pages.

    Each keyword replaces one real part (the packaged service, the system clock, the store's
    engine, the EHR's FHIR client), so tests wire fakes through here rather than by hand.
    """
    # Imported here for start-up speed: only `serve` needs the web stack.
    from myoguide.adapters.cdshooks.security import HttpxJwksFetcher, TokenVerifier
    from myoguide.adapters.fhir.drafts import read_draft_order
    from myoguide.adapters.fhir.gather import prefetch_templates
    from myoguide.adapters.http.app import AppDeps, HttpSettings, create_app
    from myoguide.adapters.http.fhir_client import HttpxFhirClient
    from myoguide.adapters.store import (
        FeedbackStore,
        SessionStore,
        SigninThrottle,
        StoreProbe,
        StoreReplayCache,
        UserStore,
        current_revision,
        head_revision,
    )
    from myoguide.adapters.store.cards import StoreCardRegistry
    from myoguide.adapters.store.handoffs import StoreChartHandoffs, WriteBehindHandoffs
    from myoguide.adapters.store.sink import StoreFeedbackSink
    from myoguide.adapters.web.demo import seed_demo
    from myoguide.adapters.web.pages import WebDeps, mount_web
    from myoguide.adapters.web.session import SignIn
    from myoguide.knowledge.terminology import load_packaged_terminology
    from myoguide.service import CdsHooks, Feedback, PatientRecords

    clock = clock if clock is not None else SystemClock()
    service = service if service is not None else default_service()
    base_url = public_url(config)
    # One engine (one connection pool) for every store in the process: they share a database.
    engine = engine if engine is not None else store_engine(config)
    current, head = current_revision(engine), head_revision()
    # Not migrated (`serve --no-migrate`): the app starts, but reads nothing from tables that may
    # not be there yet; /readyz answers 503 until `myoguide migrate` has run.
    ready = current == head
    records = record_store(engine, config, clock, adopt=ready)
    users = UserStore(engine, clock=clock)
    verifier = None
    if not config.insecure_dev:
        # The jti cache is in the store: every worker and a restart refuse a replay.
        verifier = TokenVerifier(
            config.issuers, fetcher=HttpxJwksFetcher(), replay_cache=StoreReplayCache(engine)
        )
    feedback = Feedback(
        StoreFeedbackSink(FeedbackStore(engine)), service.knowledge.knowledge_version, clock
    )
    sessions = SessionStore(
        engine,
        clock=clock,
        lifetime=timedelta(hours=settings().session_max_hours),
        idle=timedelta(minutes=settings().session_idle_minutes),
    )
    # The one place packaged data is read for the CDS service: its prefetch templates (the
    # LOINC codes the FHIR mapping reads) go to the use case, the FHIR client and discovery.
    term = load_packaged_terminology(knowledge_cache_dir())
    templates = prefetch_templates(term.weight_codes, term.height_codes)
    if fhir is None:
        fhir = HttpxFhirClient(
            {i.issuer: i.fhir_servers for i in config.issuers}, templates=templates
        )
    gatherer = _gatherer(fhir, templates)
    # One queue shared by the CDS door (writes) and the page (reads), so a page always finds
    # the hand-offs its own process issued.
    handoffs = WriteBehindHandoffs(StoreChartHandoffs(engine, clock=clock))
    app = create_app(
        AppDeps(
            service=service,
            cds=CdsHooks(service, gatherer, read_draft_order),
            verifier=verifier,
            feedback=feedback,
            settings=HttpSettings(
                max_body_bytes=config.max_body_bytes,
                cds_max_body_bytes=settings().cds_max_body_bytes,
                insecure_dev=config.insecure_dev,
                public_base_url=base_url,
            ),
            authenticate=_authenticator(config, sessions, verifier, base_url),
            store_probe=StoreProbe(engine, clock=clock).writable,
            registry=StoreCardRegistry(engine, clock),
            handoffs=handoffs,
            migrations_current=lambda: current_revision(engine) == head,
        )
    )
    # At shutdown, so a restart loses none of the links just issued.
    app.router.on_shutdown.append(handoffs.flush)
    if ready and config.require_login and users.count() == 0:
        raise InputError(
            "--host", "a non-loopback address needs sign-in: first run 'myoguide user add NAME'"
        )
    patient_records = PatientRecords(records, clock)
    if config.demo and ready:
        seed_demo(service, patient_records)
    mount_web(
        app,
        WebDeps(
            service=service,
            records=patient_records,
            users=users,
            secret_key=secret_key(config.data_dir),
            require_login=config.require_login,
            clock=clock,
            signin=SignIn(sessions, SigninThrottle(engine, clock=clock)),
            secure_cookies=bool(base_url and base_url.startswith("https://")),
            handoffs=handoffs,
        ),
    )
    smart = load_smart(config.trust_file)
    if smart is not None:
        from myoguide.adapters.smart.mount import SmartParts, mount_smart_app

        parts = SmartParts(
            service,
            templates,
            handoffs,
            sessions,
            StoreReplayCache(engine),
            patient_records,
            gatherer_for=lambda client: _gatherer(client, templates),
        )
        secret = secret_key(config.data_dir)
        mount_smart_app(app, smart, parts, smart_url(config), secret, config.max_body_bytes)
    return app


def _authenticator(
    config: ServeConfig,
    sessions: SessionStore,
    verifier: TokenVerifier | None,
    base_url: str | None,
) -> Callable[[Request], Awaitable[bool]] | None:
    """Return how an API request proves itself off loopback (None: the API is open)."""
    if not config.require_login:
        return None
    from myoguide.adapters.http.api import token_authenticator
    from myoguide.adapters.web.session import session_user

    # Off loopback the JSON API needs a signed-in session or a trusted client's token.
    by_token = token_authenticator(verifier, base_url) if verifier and base_url else None

    async def authenticate(request: Request) -> bool:
        if await session_user(request, sessions):
            return True
        return by_token is not None and await by_token(request)

    return authenticate


def _gatherer(fhir: FhirClient, templates: Mapping[str, str]) -> FhirGatherer:
    """Return the FHIR gatherer with the totals a call's reads may add up to (settings)."""
    from myoguide.adapters.fhir.gather import FhirGatherer, ReadCaps

    caps = ReadCaps(entries=settings().fhir_max_entries, bytes=settings().fhir_max_bytes)
    return FhirGatherer(fhir, templates, caps)


def serve_options() -> dict[str, Any]:
    """Return uvicorn's options for `serve`: logging, deadlines and the connection bound."""
    from myoguide.adapters.http.server import uvicorn_options

    return uvicorn_options(_server_limits(), json_logs=settings().log_format == "json")


def apply_server_limits() -> None:
    """Set this process's request deadlines from the settings (each `--workers` process)."""
    from myoguide.adapters.http.server import apply_limits

    apply_limits(_server_limits())


def _server_limits() -> ServerLimits:
    """Return the HTTP server's deadlines and bound from the environment's settings."""
    from myoguide.adapters.http.server import ServerLimits

    env = settings()
    return ServerLimits(env.head_timeout, env.body_timeout, env.max_connections)
