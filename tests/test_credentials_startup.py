"""Start-up of signing (``milepost.credentials``): the key-encryption key file and its mistakes."""

from __future__ import annotations

import base64
import stat
import uuid
from pathlib import Path

import asyncpg
import pytest
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from milepost.credentials import (
    CredentialsError,
    create_key_encryption_key,
    legacy_signing_key,
    prepare_signing,
    read_key_encryption_key,
    token_service,
)
from milepost.database import Database, libpq_url
from milepost.settings import Settings


def test_a_new_key_encryption_key_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "kek"

    kek = create_key_encryption_key(path)

    assert len(kek) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_encryption_key(path) == kek
    # a second process creating it at the same moment gets the first one's
    assert create_key_encryption_key(path) == kek


def test_a_malformed_key_encryption_key_is_named(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text(base64.urlsafe_b64encode(b"x" * 16).decode())
    garbage = tmp_path / "garbage"
    garbage.write_text("not base64 at all!")

    with pytest.raises(CredentialsError) as too_short:
        read_key_encryption_key(short)
    with pytest.raises(CredentialsError) as unreadable:
        read_key_encryption_key(garbage)

    assert str(too_short.value) == (
        f"MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE ({short}) must hold 32 random bytes, base64url-encoded "
        "(it holds 16)"
    )
    assert str(unreadable.value).startswith(f"MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE ({garbage}) ")
    assert read_key_encryption_key(tmp_path / "missing") is None


def test_a_legacy_signing_key_that_is_not_a_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "jwt-signing-key.pem"
    path.write_text("-----BEGIN NOTHING-----\n")
    pem = tmp_path / "real.pem"
    key = ECKey.generate_key("P-256", private=True)
    pem.write_bytes(key.as_pem(private=True))

    with pytest.raises(
        CredentialsError, match=r"MILEPOST_JWT_SIGNING_KEY_FILE \(.*\) is not an EC private key"
    ):
        legacy_signing_key(path)
    loaded = legacy_signing_key(pem)
    assert loaded is not None
    assert loaded.thumbprint() == key.thumbprint()


async def test_a_process_without_the_shared_key_encryption_key_refuses_to_start(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], key_encryption_key: bytes, tmp_path: Path
) -> None:
    elsewhere = settings.model_copy(update={"jwt_key_encryption_key_file": tmp_path / "missing.key"})
    other = tmp_path / "other.key"
    create_key_encryption_key(other)
    mismatched = settings.model_copy(update={"jwt_key_encryption_key_file": other})

    with pytest.raises(CredentialsError) as missing:
        await prepare_signing(elsewhere, sessions)
    with pytest.raises(CredentialsError) as wrong:
        await token_service(mismatched, sessions, read_key_encryption_key(other) or b"")

    assert str(missing.value) == (
        f"MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE ({tmp_path / 'missing.key'}) does not exist, but the database "
        "holds signing keys sealed with a key-encryption key: give this process the file the other processes use"
    )
    assert not (tmp_path / "missing.key").exists()  # no new key next to keys it could not open
    assert "the key-encryption key does not open signing key" in str(wrong.value)
    # the right one works, and creates nothing new
    assert await prepare_signing(settings, sessions) == key_encryption_key


async def test_a_database_without_the_signing_tables_asks_for_migrate(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    # the application role on a database where this revision's tables do not exist
    name = f"milepost_unmigrated_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(libpq_url(database.owner_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        engine = create_async_engine(database.owner_url.set(database=name))
        try:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            fresh = settings.model_copy(update={"jwt_key_encryption_key_file": tmp_path / "kek"})
            with pytest.raises(CredentialsError) as refused:
                await prepare_signing(fresh, sessions)
        finally:
            await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    assert str(refused.value) == (
        'cannot read the signing keys (relation "signing_key" does not exist): is the database migrated? '
        "run `milepost migrate`"
    )
