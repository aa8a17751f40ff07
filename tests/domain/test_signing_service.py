"""Signing keys in the database: the first key, rotations, sealing, and the ring an API process loads.

``signing_key`` is platform data shared by every test of a worker, so these tests work in one owner
transaction that first empties the table and is rolled back at the end.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from domain.signing.models import SigningKey
from domain.signing.rules import KeyStatus, KeyTimes, key_status
from domain.signing.service import (
    KeyEncryptionError,
    ensure_signing_key,
    list_signing_keys,
    load_key_ring,
    rotate_signing_key,
    seal,
    unseal,
)

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
STALE = dt.timedelta(seconds=15)


@pytest.fixture
async def keys_session(owner_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """An owner transaction over an empty ``signing_key`` table, rolled back afterwards."""
    async with owner_engine.connect() as conn:
        transaction = await conn.begin()
        async with AsyncSession(bind=conn, join_transaction_mode="create_savepoint") as db:
            await db.execute(text("DELETE FROM signing_key"))
            yield db
        await transaction.rollback()


def statuses(rows: list[SigningKey], now: dt.datetime) -> list[tuple[str, KeyStatus]]:
    times = [KeyTimes(row.kid, row.activates_at, row.retire_at) for row in rows]
    return [(key.kid, key_status(key, times, now)) for key in times]


async def rotate(session: AsyncSession, kek: bytes, now: dt.datetime, **options: object) -> SigningKey:
    return await rotate_signing_key(
        session,
        kek,
        now=now,
        activate_in=options.pop("activate_in", 5 * MIN),  # type: ignore[arg-type]
        max_token_lifetime=HOUR,
        stale_for=STALE,
        **options,  # type: ignore[arg-type]
    )


async def test_the_first_key_is_created_once_and_sealed(keys_session: AsyncSession) -> None:
    kek = secrets.token_bytes(32)

    first = await ensure_signing_key(keys_session, kek, now=T0)
    again = await ensure_signing_key(keys_session, kek, now=T0 + HOUR)

    assert first is not None
    assert again is None
    rows = await list_signing_keys(keys_session)
    assert [(row.kid, row.algorithm, row.activates_at, row.retire_at) for row in rows] == [
        (first.kid, "ES256", T0, None)
    ]
    assert "d" not in rows[0].public_jwk
    assert rows[0].private_key_jwe is not None
    assert rows[0].private_key_jwe.count(".") == 4  # a compact JWE, not the PEM in clear
    assert "PRIVATE KEY" not in rows[0].private_key_jwe
    opened = unseal(kek, first.kid, rows[0].private_key_jwe)
    assert opened.thumbprint() == first.kid
    assert opened.as_dict(private=False) == rows[0].public_jwk


async def test_the_legacy_pem_key_becomes_the_first_key_with_its_old_kid(keys_session: AsyncSession) -> None:
    legacy = ECKey.generate_key("P-256", private=True)

    first = await ensure_signing_key(keys_session, secrets.token_bytes(32), now=T0, legacy=legacy)

    # tokens signed before the upgrade carried the thumbprint as kid: they keep verifying
    assert first is not None
    assert first.kid == legacy.thumbprint()


async def test_a_sealed_key_opens_only_with_its_kek_and_as_itself() -> None:
    kek, other = secrets.token_bytes(32), secrets.token_bytes(32)
    key = ECKey.generate_key("P-256", private=True)
    sealed = seal(kek, "kid-1", key)

    assert unseal(kek, "kid-1", sealed).thumbprint() == key.thumbprint()
    with pytest.raises(KeyEncryptionError) as wrong_kek:
        unseal(other, "kid-1", sealed)
    with pytest.raises(KeyEncryptionError) as swapped:
        unseal(kek, "kid-2", sealed)
    with pytest.raises(KeyEncryptionError):
        unseal(kek, "kid-1", "not a jwe")
    assert str(wrong_kek.value) == (
        "the key-encryption key does not open signing key 'kid-1': every process must use the same "
        "MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE"
    )
    assert str(swapped.value) == "the sealed private key stored for 'kid-2' belongs to another key"


async def test_a_rotation_step_by_step(keys_session: AsyncSession) -> None:
    kek = secrets.token_bytes(32)
    first = await ensure_signing_key(keys_session, kek, now=T0)
    assert first is not None

    # a new key is published at once and signs five minutes later
    second = await rotate(keys_session, kek, T0 + HOUR)
    rows = await list_signing_keys(keys_session)
    old_retires = T0 + HOUR + 5 * MIN + STALE + HOUR
    assert [(row.kid, row.activates_at, row.retire_at) for row in rows] == [
        (first.kid, T0, old_retires),
        (second.kid, T0 + HOUR + 5 * MIN, None),
    ]
    assert statuses(rows, T0 + HOUR) == [(first.kid, KeyStatus.SIGNING), (second.kid, KeyStatus.PENDING)]
    ring = await load_key_ring(keys_session, kek, now=T0 + HOUR)
    assert ring.signer(T0 + HOUR).kid == first.kid
    assert [entry["kid"] for entry in ring.published(T0 + HOUR)] == [first.kid, second.kid]
    assert rows[0].private_key_jwe is not None  # it still signs

    # once the new key signs, the old one only verifies; after its last token expired it is retired
    later = T0 + HOUR + 5 * MIN
    assert statuses(rows, later) == [(first.kid, KeyStatus.VERIFYING), (second.kid, KeyStatus.SIGNING)]
    assert ring.signer(later).kid == second.kid
    assert statuses(rows, old_retires) == [(first.kid, KeyStatus.RETIRED), (second.kid, KeyStatus.SIGNING)]
    assert [entry["kid"] for entry in ring.published(old_retires)] == [second.kid]
    retired_ring = await load_key_ring(keys_session, kek, now=old_retires)
    # the retired key stays known (so its tokens are refused as retired), without its private half
    assert [(key.kid, key.private is None) for key in retired_ring.keys] == [
        (first.kid, True),
        (second.kid, False),
    ]
    assert [entry["kid"] for entry in retired_ring.published(old_retires)] == [second.kid]

    # the next rotation erases the private half of the key that signs no more
    third = await rotate(keys_session, kek, later + MIN)
    rows = await list_signing_keys(keys_session)
    assert [(row.kid, row.private_key_jwe is not None) for row in rows] == [
        (first.kid, False),
        (second.kid, True),
        (third.kid, True),
    ]
    assert rows[0].retire_at == old_retires  # an earlier deadline is never moved later
    assert rows[1].retire_at == later + MIN + 5 * MIN + STALE + HOUR


async def test_retiring_the_previous_keys_now_signs_with_the_new_key_at_once(
    keys_session: AsyncSession,
) -> None:
    kek = secrets.token_bytes(32)
    first = await ensure_signing_key(keys_session, kek, now=T0)
    assert first is not None

    second = await rotate(keys_session, kek, T0 + HOUR, retire_previous_now=True)

    rows = await list_signing_keys(keys_session)
    assert [(row.kid, row.activates_at, row.retire_at, row.private_key_jwe is None) for row in rows] == [
        (first.kid, T0, T0 + HOUR, True),
        (second.kid, T0 + HOUR, None, False),
    ]
    ring = await load_key_ring(keys_session, kek, now=T0 + HOUR)
    assert [entry["kid"] for entry in ring.published(T0 + HOUR)] == [second.kid]
    assert ring.signer(T0 + HOUR).kid == second.kid


async def test_a_rotation_with_another_kek_is_refused(keys_session: AsyncSession) -> None:
    kek = secrets.token_bytes(32)
    first = await ensure_signing_key(keys_session, kek, now=T0)
    assert first is not None

    with pytest.raises(KeyEncryptionError):
        await rotate(keys_session, secrets.token_bytes(32), T0 + HOUR)

    assert [row.kid for row in (await keys_session.execute(select(SigningKey))).scalars()] == [first.kid]
