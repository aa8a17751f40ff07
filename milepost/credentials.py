"""Start-up of token signing: the key-encryption key file, the first signing key, the token service.

Signing keys live in the database with their private halves sealed under a key-encryption key (KEK) kept
in a file (``MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE``, default ``$MILEPOST_DATA_DIR/jwt-key-encryption.key``)
that every API process and the CLI must share. The file is created (mode 0600) only while the database
holds no key: a missing or different file next to existing keys is a configuration mistake that stops
start-up with one line, never a silent new key that other processes could not open.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import secrets
from pathlib import Path

from joserfc.jwk import ECKey
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from domain.db import system_transaction
from domain.signing.service import (
    KEY_ENCRYPTION_KEY_BYTES,
    KeyEncryptionError,
    any_signing_key,
    ensure_signing_key,
    load_key_ring,
)
from domain.tenancy.repository import revocations_in_force
from milepost.settings import Settings

KEK_VARIABLE = "MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE"


class CredentialsError(Exception):
    """Signing cannot start; the message says what to fix, in one line."""


def read_key_encryption_key(path: Path) -> bytes | None:
    if not path.exists():
        return None
    try:
        text = path.read_text().strip()
        kek = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (OSError, UnicodeError, ValueError, binascii.Error) as error:
        raise CredentialsError(f"{KEK_VARIABLE} ({path}) cannot be read: {error}") from None
    if len(kek) != KEY_ENCRYPTION_KEY_BYTES:
        raise CredentialsError(
            f"{KEK_VARIABLE} ({path}) must hold {KEY_ENCRYPTION_KEY_BYTES} random bytes, base64url-encoded "
            f"(it holds {len(kek)})"
        )
    return kek


def create_key_encryption_key(path: Path) -> bytes:
    """A new KEK written to ``path`` (mode 0600); if another process wrote one first, that one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kek = secrets.token_bytes(KEY_ENCRYPTION_KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = read_key_encryption_key(path)
        assert existing is not None
        return existing
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.urlsafe_b64encode(kek).decode().rstrip("=") + "\n")
    return kek


def legacy_signing_key(path: Path) -> ECKey | None:
    """The PEM key earlier versions signed with (``MILEPOST_JWT_SIGNING_KEY_FILE``), if there is one."""
    if not path.exists():
        return None
    try:
        return ECKey.import_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise CredentialsError(
            f"MILEPOST_JWT_SIGNING_KEY_FILE ({path}) is not an EC private key: {error}"
        ) from None


async def key_encryption_key(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], *, create: bool
) -> bytes:
    """The KEK from its file; created there when ``create`` and the database holds no signing key yet."""
    path = settings.key_encryption_key_path
    kek = read_key_encryption_key(path)
    if kek is not None:
        return kek
    async with sessions() as session, session.begin():
        has_keys = await any_signing_key(session)
    if has_keys:
        raise CredentialsError(
            f"{KEK_VARIABLE} ({path}) does not exist, but the database holds signing keys sealed with a "
            "key-encryption key: give this process the file the other processes use"
        )
    if not create:
        raise CredentialsError(f"{KEK_VARIABLE} ({path}) does not exist")
    return create_key_encryption_key(path)


async def prepare_signing(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], *, now: dt.datetime | None = None
) -> bytes:
    """The KEK, and a first signing key in the database when there is none; returns the KEK."""
    try:
        kek = await key_encryption_key(settings, sessions, create=True)
        legacy = legacy_signing_key(settings.signing_key_path)
        async with sessions() as session, session.begin():
            await ensure_signing_key(session, kek, now=now or dt.datetime.now(dt.UTC), legacy=legacy)
    except ProgrammingError as error:  # e.g. signing_key does not exist yet
        first_line = str(error.orig).splitlines()[0] if error.orig is not None else str(error)
        raise CredentialsError(
            f"cannot read the signing keys ({first_line}): is the database migrated? run `milepost migrate`"
        ) from None
    return kek


async def token_service(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    kek: bytes,
    *,
    now: dt.datetime | None = None,
) -> TokenService:
    """A token service with the key ring and revocations in force now."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        async with system_transaction(sessions) as session:
            ring = await load_key_ring(session, kek, now=now)
            revocations = await revocations_in_force(session, now)
    except KeyEncryptionError as error:
        raise CredentialsError(str(error)) from None
    return TokenService(
        ring,
        issuer=settings.public_url,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
        max_ttl_seconds=settings.access_token_max_ttl_seconds,
        revocations=revocations,
    )
