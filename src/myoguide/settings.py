"""Every value the environment gives the process, read in one place (entry points only).

Each field names its variable, its `serve` option (if any) and what it sets: the settings
object is the one source of docs/configuration.md (scripts/configuration_doc.py writes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from myoguide.errors import InputError


def _doc(what: str, *, cli: str | None = None, default: str | None = None) -> dict[str, Any]:
    """Return a field's reference-page entry: what it sets, its option, its default in words."""
    extra: dict[str, Any] = {"doc": what}
    if cli is not None:
        extra["cli"] = cli
    if default is not None:
        extra["default_text"] = default
    return extra


class Settings(BaseSettings):
    """The environment's settings, under the command line's options; empty counts as unset."""

    # Exact names, as documented; no .env file is read. Fields may also be given by name
    # (the command line's options, which win over the environment).
    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    # ---- `myoguide serve` options ------------------------------------------------------
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        validation_alias="MYOGUIDE_HOST",
        json_schema_extra=_doc(
            "Address to listen on. Anything but loopback needs sign-in (`myoguide user add`).",
            cli="--host",
        ),
    )
    port: int = Field(
        default=8000,
        ge=0,
        le=65535,
        validation_alias="MYOGUIDE_PORT",
        json_schema_extra=_doc("TCP port to listen on (0: any free port).", cli="--port"),
    )
    trust: str | None = Field(
        default=None,
        validation_alias="MYOGUIDE_TRUST",
        json_schema_extra=_doc(
            "JSON file of trusted CDS Hooks clients (and SMART EHRs). Without it every CDS "
            "Hooks call is refused.",
            cli="--trust",
            default="none",
        ),
    )
    public_url: str | None = Field(
        default=None,
        validation_alias="MYOGUIDE_PUBLIC_URL",
        json_schema_extra=_doc(
            "The base URL clients call (the CDS tokens' audience, SMART's redirect). Needed "
            "with `--trust` off loopback. An `https://` URL turns on secure cookies and "
            "Strict-Transport-Security.",
            cli="--public-url",
            default="none",
        ),
    )
    data_dir: str = Field(
        default="data",
        min_length=1,
        validation_alias="MYOGUIDE_DATA_DIR",
        json_schema_extra=_doc(
            "The data folder (created 0700): the SQLite database, keys and the chains' head "
            "file. Also read by `user`, `record`, `feedback`, `migrate`, `backup`, `restore`.",
            cli="--data-dir",
        ),
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MYOGUIDE_DATABASE_URL", "DATABASE_URL"),
        json_schema_extra=_doc(
            "The store: a SQLite or PostgreSQL URL (`postgresql://user@host/db`). "
            "`DATABASE_URL` is read too when `MYOGUIDE_DATABASE_URL` is unset.",
            cli="--database-url",
            default="SQLite `myoguide.db` in the data folder",
        ),
    )
    max_body: int = Field(
        default=1_000_000,
        ge=1,
        validation_alias="MYOGUIDE_MAX_BODY",
        json_schema_extra=_doc(
            "Request body limit in bytes for every route but CDS Hooks "
            "(`MYOGUIDE_CDS_MAX_BODY_BYTES`).",
            cli="--max-body",
        ),
    )
    workers: int = Field(
        default=1,
        ge=1,
        validation_alias="MYOGUIDE_WORKERS",
        json_schema_extra=_doc("Worker processes; they share the database.", cli="--workers"),
    )
    demo: bool = Field(
        default=False,
        validation_alias="MYOGUIDE_DEMO",
        json_schema_extra=_doc(
            "Add clearly synthetic demo patients (`true`/`false`).", cli="--demo, --no-demo"
        ),
    )
    insecure_dev: bool = Field(
        default=False,
        validation_alias="MYOGUIDE_INSECURE_DEV",
        json_schema_extra=_doc(
            "Accept CDS Hooks calls without verifying their JWT. Development only.",
            cli="--insecure-dev, --no-insecure-dev",
        ),
    )
    migrate: bool = Field(
        default=True,
        validation_alias="MYOGUIDE_MIGRATE",
        json_schema_extra=_doc(
            "Migrate the database at start. `false` for an operator who runs "
            "`myoguide migrate` apart: the server then starts on the database as it is and "
            "`/readyz` answers 503 until the migrations are current.",
            cli="--migrate, --no-migrate",
        ),
    )

    # ---- keys, sessions, logs, limits (environment only) --------------------------------
    secret_key: SecretStr | None = Field(
        default=None,
        validation_alias="MYOGUIDE_SECRET_KEY",
        json_schema_extra=_doc(
            "Signing key of the sign-in cookie.",
            default="the data folder's `secret_key` file (made 0600 on first start)",
        ),
    )
    # The chain's MAC keys, newest first, comma-separated (default: the data folder's
    # chain_key file), and where the chains' heads are kept (default: the data folder).
    chain_key: SecretStr | None = Field(
        default=None,
        validation_alias="MYOGUIDE_CHAIN_KEY",
        json_schema_extra=_doc(
            "MAC keys of the record's chain, newest first, comma-separated. The first seals "
            "new answers and decisions; the others still verify rows sealed before a "
            "rotation (ADR 0018).",
            default="the data folder's `chain_key` file (made 0600 on first start)",
        ),
    )
    chain_head_file: str | None = Field(
        default=None,
        validation_alias="MYOGUIDE_CHAIN_HEAD_FILE",
        json_schema_extra=_doc(
            "Where the chains' newest links are kept outside the database, so "
            "`record verify` sees removed rows.",
            default="`chain_head.json` in the data folder",
        ),
    )
    # Sign-in sessions end after this many idle minutes, and this many hours after sign-in.
    session_idle_minutes: float = Field(
        default=15,
        gt=0,
        validation_alias="MYOGUIDE_SESSION_IDLE_MINUTES",
        json_schema_extra=_doc("A sign-in session ends after this many minutes without a request."),
    )
    session_max_hours: float = Field(
        default=12,
        gt=0,
        validation_alias="MYOGUIDE_SESSION_MAX_HOURS",
        json_schema_extra=_doc(
            "A sign-in session ends this many hours after sign-in, however busy."
        ),
    )
    # Log lines as JSON (for a collector) or plain (for a terminal); both carry a request id.
    log_format: Literal["plain", "json"] = Field(
        default="plain",
        validation_alias="MYOGUIDE_LOG_FORMAT",
        json_schema_extra=_doc(
            "`json`: one JSON object a line (time, level, logger, request_id, message) for a "
            "log collector; `plain`: lines for a terminal, the request id in brackets."
        ),
    )
    # The HTTP server's deadlines (seconds) and bound on open connections (ADR 0018).
    head_timeout: float = Field(
        default=10.0,
        gt=0,
        validation_alias="MYOGUIDE_HEAD_TIMEOUT",
        json_schema_extra=_doc(
            "Seconds a client has to send a whole request head (from connecting, or from the "
            "previous response); then the connection is closed."
        ),
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        validation_alias="MYOGUIDE_BODY_TIMEOUT",
        json_schema_extra=_doc("Seconds a client has to send a whole request body after its head."),
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        validation_alias="MYOGUIDE_MAX_CONNECTIONS",
        json_schema_extra=_doc(
            "Open connections (per process) beyond which new requests are answered 503."
        ),
    )
    # CDS Hooks calls carry whole charts as prefetch: their own body limit (bytes), and the
    # totals a call's FHIR reads may add up to across pages (ADR 0019, real chart sizes).
    cds_max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1,
        validation_alias="MYOGUIDE_CDS_MAX_BODY_BYTES",
        json_schema_extra=_doc(
            "Body limit of the CDS Hooks routes (`/cds-services/...`), which carry whole "
            "charts as prefetch (a Synthea chart with 1,000 orders is about 1.6 MB). Counted "
            "as the body arrives; past it the answer is 413 with a problem body naming the "
            "limit.",
            default="`16777216` (16 MB)",
        ),
    )
    fhir_max_entries: int = Field(
        default=20_000,
        ge=1,
        validation_alias="MYOGUIDE_FHIR_MAX_ENTRIES",
        json_schema_extra=_doc(
            "Entries one CDS call (or SMART launch) reads in all, prefetch and fetched pages "
            "together; past it the rest is not read and the data-quality card says so "
            "(ADR 0019)."
        ),
    )
    fhir_max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1,
        validation_alias="MYOGUIDE_FHIR_MAX_BYTES",
        json_schema_extra=_doc(
            "Bytes of FHIR pages one call fetches in all (counted as compact JSON); past it, "
            "as above. Each single answer from the FHIR server is also capped at 5 MB.",
            default="`33554432` (32 MB)",
        ),
    )
    # How `myoguide serve --workers N` hands its options to each worker process (JSON).
    serve_config: str | None = Field(
        default=None,
        validation_alias="MYOGUIDE_SERVE_CONFIG",
        json_schema_extra=_doc(
            "Internal: how `serve --workers N` hands its options to worker processes. Do not set.",
            default="set by `serve --workers N`",
        ),
    )


def variable_names(field: str) -> tuple[str, ...]:
    """Return the environment variables a field is read from, first one first."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(a) for a in alias.choices)
    return (str(alias),)


def field_of(name: str) -> str | None:
    """Return the field a name (field or variable) belongs to, or None."""
    if name in Settings.model_fields:
        return name
    for field in Settings.model_fields:
        if name in variable_names(field):
            return field
    return None


def load_settings(given: Mapping[str, object]) -> Settings:
    """Return the settings with the given options (by field; None: not given) over the environment.

    A refused value raises InputError naming the option if it was given, else the variable.
    """
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    try:
        return Settings(**options)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = field_of(str(error["loc"][0])) if error["loc"] else None
        if field is None:
            raise InputError("environment", error["msg"]) from None
        if field in options:
            extra = Settings.model_fields[field].json_schema_extra
            flag = extra.get("cli") if isinstance(extra, dict) else None
            name = str(flag).split(",")[0] if flag else field
        else:
            name = variable_names(field)[0]
        raise InputError(name, error["msg"]) from None
