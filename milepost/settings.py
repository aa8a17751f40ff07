"""All configuration, from environment variables only, validated at start-up.

A bad value stops the process with one line per problem (``milepost.cli`` prints them), never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MILEPOST_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".milepost")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "MILEPOST_DATABASE_URL"),
        description="Owner connection (runs migrations). Unset: an embedded PostgreSQL in data_dir.",
    )
    app_database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("APP_DATABASE_URL", "MILEPOST_APP_DATABASE_URL"),
        description="The application's connection. Unset: DATABASE_URL with the user set to app_role.",
    )
    app_role: str = Field(default="milepost_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    app_db_password: str | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)

    broker_url: str | None = Field(
        default=None, validation_alias=AliasChoices("BROKER_URL", "MILEPOST_BROKER_URL")
    )
    job_max_attempts: int = Field(default=5, ge=1, le=100)
    job_min_backoff_ms: int = Field(default=15_000, ge=1)
    job_max_backoff_ms: int = Field(default=3_600_000, ge=1, le=7 * 86_400_000)

    outbox_poll_ms: int = Field(default=500, ge=10, le=60_000)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_retention_days: float = Field(default=7.0, gt=0)

    public_url: str = "http://127.0.0.1:8000"
    jwt_audience: str = "milepost-api"
    # signing keys live in the database, their private halves sealed under this key (a file every API
    # process and the CLI share); the PEM of jwt_signing_key_file, if present, becomes the first key
    jwt_key_encryption_key_file: Path | None = None
    jwt_signing_key_file: Path | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    access_token_max_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    client_secret_grace_hours: float = Field(default=24.0, ge=0, le=720)
    # how old an API process's copy of revocations and signing keys may get when a NOTIFY is missed
    credentials_refresh_seconds: float = Field(default=15.0, ge=1, le=3600)

    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    graphql_max_page_size: int = Field(default=100, ge=1, le=1000)
    ws_init_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    subscription_queue_size: int = Field(default=10_000, ge=1, le=1_000_000)
    # GraphQL hardening (docs/api.md, "Limits and hardening")
    graphql_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    graphql_max_variables_bytes: int = Field(default=64 * 1024, ge=256)
    graphql_max_tokens: int = Field(default=1000, ge=50, le=100_000)
    graphql_max_depth: int = Field(default=10, ge=2, le=100)
    graphql_max_aliases: int = Field(default=30, ge=0, le=10_000)
    graphql_max_cost: int = Field(default=10_000, ge=1)
    # hot reads answered by one SQL statement building the JSON (api/graphql/compiled.py); off: field by field
    graphql_compiled_reads: bool = True
    graphql_rate_limit_per_minute: int = Field(default=600, ge=0)
    graphql_rate_limit_burst: int = Field(default=100, ge=1)
    graphql_anonymous_rate_limit_per_minute: int = Field(default=60, ge=0)
    graphql_anonymous_rate_limit_burst: int = Field(default=20, ge=1)

    # e-mail: without a host, messages are written to the log and counted as sent (development, demo)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "milepost@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    # webhooks: per-attempt timeout, and how many failed attempts in a row disable an endpoint
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_disable_after: int = Field(default=10, ge=1, le=1000)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    demo_feed_interval_seconds: float = Field(default=2.0, gt=0)

    @field_validator("database_url", "app_database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://", "postgresql+")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("amqp://", "amqps://", "redis://", "rediss://")):
            raise ValueError("must be an amqp:// (RabbitMQ) or redis:// URL")
        return value or None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s):// URL")
        return value.rstrip("/")

    @field_validator("access_token_max_ttl_seconds")
    @classmethod
    def _max_ttl(cls, value: int, info: ValidationInfo) -> int:
        default = info.data.get("access_token_ttl_seconds")
        if default is not None and value < default:
            raise ValueError(f"must be at least MILEPOST_ACCESS_TOKEN_TTL_SECONDS ({default})")
        return value

    @property
    def signing_key_path(self) -> Path:
        """The PEM key earlier versions signed with; imported as the first key when there is none."""
        return self.jwt_signing_key_file or self.data_dir / "jwt-signing-key.pem"

    @property
    def key_encryption_key_path(self) -> Path:
        return self.jwt_key_encryption_key_file or self.data_dir / "jwt-key-encryption.key"
