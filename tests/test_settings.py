from __future__ import annotations

import pytest
from click.testing import CliRunner

from milepost.cli import main
from milepost.settings import Settings


def test_bad_settings_stop_start_up_with_one_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    monkeypatch.setenv("MILEPOST_DB_POOL_SIZE", "0")
    monkeypatch.setenv("MILEPOST_LOG_FORMAT", "xml")
    monkeypatch.setenv("BROKER_URL", "kafka://x")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "configuration error:",
        "  DATABASE_URL: Value error, must be a postgresql:// URL (got 'mysql://nope')",
        "  MILEPOST_DB_POOL_SIZE: Input should be greater than or equal to 1 (got '0')",
        "  BROKER_URL: Value error, must be an amqp:// (RabbitMQ) or redis:// URL (got 'kafka://x')",
        "  MILEPOST_LOG_FORMAT: Input should be 'json' or 'console' (got 'xml')",
    ]


def test_defaults_are_safe_for_a_newcomer(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "APP_DATABASE_URL", "BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url is None  # embedded PostgreSQL
    assert settings.broker_url is None  # in-process workers
    assert settings.environment == "development"
    assert settings.access_token_ttl_seconds == 900
    assert str(settings.signing_key_path) == ".milepost/jwt-signing-key.pem"
    assert (settings.job_max_attempts, settings.job_min_backoff_ms, settings.job_max_backoff_ms) == (
        5,
        15_000,
        3_600_000,
    )
    assert (settings.outbox_poll_ms, settings.outbox_batch_size, settings.outbox_retention_days) == (
        500,
        500,
        7,
    )


def test_job_and_outbox_settings_come_from_milepost_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILEPOST_JOB_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("MILEPOST_OUTBOX_POLL_MS", "250")
    monkeypatch.setenv("MILEPOST_OUTBOX_RETENTION_DAYS", "1.5")
    settings = Settings()
    assert (settings.job_max_attempts, settings.outbox_poll_ms, settings.outbox_retention_days) == (
        3,
        250,
        1.5,
    )


def test_subscription_settings_have_defaults_and_come_from_milepost_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings()
    assert (defaults.ws_init_timeout_seconds, defaults.subscription_queue_size) == (10.0, 10_000)
    monkeypatch.setenv("MILEPOST_WS_INIT_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("MILEPOST_SUBSCRIPTION_QUEUE_SIZE", "50")
    settings = Settings()
    assert (settings.ws_init_timeout_seconds, settings.subscription_queue_size) == (2.5, 50)
    monkeypatch.setenv("MILEPOST_SUBSCRIPTION_QUEUE_SIZE", "0")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "configuration error:",
        "  MILEPOST_SUBSCRIPTION_QUEUE_SIZE: Input should be greater than or equal to 1 (got '0')",
    ]


def test_token_and_credential_settings_have_defaults_and_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.access_token_ttl_seconds, defaults.access_token_max_ttl_seconds) == (900, 3600)
    assert (defaults.client_secret_grace_hours, defaults.credentials_refresh_seconds) == (24.0, 15.0)
    assert str(defaults.key_encryption_key_path) == ".milepost/jwt-key-encryption.key"
    monkeypatch.setenv("MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE", "/run/secrets/milepost-kek")
    monkeypatch.setenv("MILEPOST_CLIENT_SECRET_GRACE_HOURS", "2")
    settings = Settings()
    assert (str(settings.key_encryption_key_path), settings.client_secret_grace_hours) == (
        "/run/secrets/milepost-kek",
        2.0,
    )
    monkeypatch.setenv("MILEPOST_ACCESS_TOKEN_TTL_SECONDS", "1800")
    monkeypatch.setenv("MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS", "600")
    monkeypatch.setenv("MILEPOST_CREDENTIALS_REFRESH_SECONDS", "0")
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "configuration error:",
        "  MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS: Value error, must be at least "
        "MILEPOST_ACCESS_TOKEN_TTL_SECONDS (1800) (got '600')",
        "  MILEPOST_CREDENTIALS_REFRESH_SECONDS: Input should be greater than or equal to 1 (got '0')",
    ]
