"""Every value the environment gives the process, read in one place (entry points only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """The environment's settings; an empty variable counts as unset."""

    # Exact names, as documented; no .env file is read.
    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore")

    secret_key: SecretStr | None = Field(default=None, validation_alias="MYOGUIDE_SECRET_KEY")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # The chain's MAC keys, newest first, comma-separated (default: the data folder's
    # chain_key file), and where the chains' heads are kept (default: the data folder).
    chain_key: SecretStr | None = Field(default=None, validation_alias="MYOGUIDE_CHAIN_KEY")
    chain_head_file: str | None = Field(default=None, validation_alias="MYOGUIDE_CHAIN_HEAD_FILE")
    # Sign-in sessions end after this many idle minutes, and this many hours after sign-in.
    session_idle_minutes: float = Field(
        default=15, gt=0, validation_alias="MYOGUIDE_SESSION_IDLE_MINUTES"
    )
    session_max_hours: float = Field(
        default=12, gt=0, validation_alias="MYOGUIDE_SESSION_MAX_HOURS"
    )
    # Log lines as JSON (for a collector) or plain (for a terminal); both carry a request id.
    log_format: Literal["plain", "json"] = Field(
        default="plain", validation_alias="MYOGUIDE_LOG_FORMAT"
    )
    # The HTTP server's deadlines (seconds) and bound on open connections (ADR 0018).
    head_timeout: float = Field(default=10.0, gt=0, validation_alias="MYOGUIDE_HEAD_TIMEOUT")
    body_timeout: float = Field(default=30.0, gt=0, validation_alias="MYOGUIDE_BODY_TIMEOUT")
    max_connections: int = Field(default=1000, ge=1, validation_alias="MYOGUIDE_MAX_CONNECTIONS")
    # CDS Hooks calls carry whole charts as prefetch: their own body limit (bytes), and the
    # totals a call's FHIR reads may add up to across pages (ADR 0019, real chart sizes).
    cds_max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1, validation_alias="MYOGUIDE_CDS_MAX_BODY_BYTES"
    )
    fhir_max_entries: int = Field(
        default=20_000, ge=1, validation_alias="MYOGUIDE_FHIR_MAX_ENTRIES"
    )
    fhir_max_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1, validation_alias="MYOGUIDE_FHIR_MAX_BYTES"
    )
    # How `myoguide serve --workers N` hands its options to each worker process (JSON).
    serve_config: str | None = Field(default=None, validation_alias="MYOGUIDE_SERVE_CONFIG")
