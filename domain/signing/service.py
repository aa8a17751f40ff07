"""Signing keys: the first one, rotation, and loading the key ring. Services flush; the caller commits.

Changes are announced with ``NOTIFY`` on :data:`CREDENTIALS_CHANNEL` (delivered at commit) so every API
process reloads its key ring at once rather than at its next periodic refresh.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.signing.models import SigningKey
from domain.signing.rules import ALGORITHM, CURVE, KeyRing, KeyTimes, RingKey, retirements, signing_kid
from domain.tenancy.rules import CREDENTIALS_CHANNEL, KEYS_CHANGED

KEY_ENCRYPTION_KEY_BYTES = 32
# one writer at a time, so two processes starting together create one first key, not two
_KEYS_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('milepost.signing_key'))")
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class KeyEncryptionError(Exception):
    """A stored private key that the key-encryption key at hand does not open."""


def seal(kek: bytes, kid: str, private: ECKey) -> str:
    """``private`` as a compact JWE (``dir``, ``A256GCM``) under ``kek``; ``kid`` is in the authenticated
    header, so a sealed key cannot be passed off as another."""
    header = {"alg": "dir", "enc": "A256GCM", "kid": kid}
    return str(jwe.encrypt_compact(header, private.as_pem(private=True), OctKey.import_key(kek)))


def unseal(kek: bytes, kid: str, sealed: str) -> ECKey:
    try:
        opened = jwe.decrypt_compact(sealed, OctKey.import_key(kek))
    except (JoseError, ValueError):
        raise KeyEncryptionError(
            f"the key-encryption key does not open signing key {kid!r}: every process must use the same "
            "MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE"
        ) from None
    if opened.protected.get("kid") != kid or opened.plaintext is None:
        raise KeyEncryptionError(f"the sealed private key stored for {kid!r} belongs to another key")
    return ECKey.import_key(opened.plaintext)


def _new_row(kek: bytes, private: ECKey, activates_at: dt.datetime, now: dt.datetime) -> SigningKey:
    kid = private.thumbprint()
    return SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        public_jwk=dict(private.as_dict(private=False)),
        private_key_jwe=seal(kek, kid, private),
        created_at=now,
        activates_at=activates_at,
        retire_at=None,
    )


async def _announce(session: AsyncSession) -> None:
    await session.execute(_NOTIFY, {"channel": CREDENTIALS_CHANNEL, "payload": KEYS_CHANGED})


async def any_signing_key(session: AsyncSession) -> bool:
    return (await session.execute(select(SigningKey.kid).limit(1))).first() is not None


async def ensure_signing_key(
    session: AsyncSession, kek: bytes, *, now: dt.datetime, legacy: ECKey | None = None
) -> SigningKey | None:
    """Create the first signing key when there is none: ``legacy`` (the PEM file earlier versions signed
    with, so their tokens and cached key sets stay valid) or a new one. Returns it, or ``None`` when keys
    existed already."""
    await session.execute(_KEYS_LOCK)
    if await any_signing_key(session):
        return None
    private = legacy or ECKey.generate_key(CURVE, private=True)
    row = _new_row(kek, private, now, now)
    session.add(row)
    await session.flush()
    await _announce(session)
    return row


async def rotate_signing_key(
    session: AsyncSession,
    kek: bytes,
    *,
    now: dt.datetime,
    activate_in: dt.timedelta,
    max_token_lifetime: dt.timedelta,
    stale_for: dt.timedelta,
    retire_previous_now: bool = False,
) -> SigningKey:
    """Add a key that is published now and signs from ``now + activate_in`` (at once when
    ``retire_previous_now``); every earlier key gets its retirement time (now when
    ``retire_previous_now``: a compromised key, whose tokens must stop working at once). Private halves
    of keys that sign no more are erased."""
    await session.execute(_KEYS_LOCK)
    rows = list((await session.execute(select(SigningKey).with_for_update())).scalars())
    for row in rows:
        # a key sealed under another KEK would be one the API processes cannot open: refuse before that
        if row.private_key_jwe is not None:
            unseal(kek, row.kid, row.private_key_jwe)
    activates_at = now if retire_previous_now else now + activate_in
    deadlines = retirements(
        [KeyTimes(row.kid, row.activates_at, row.retire_at) for row in rows],
        new_activates_at=activates_at,
        max_token_lifetime=max_token_lifetime,
        stale_for=stale_for,
        now=now,
        at_once=retire_previous_now,
    )
    ring = [KeyTimes(row.kid, row.activates_at, deadlines.get(row.kid, row.retire_at)) for row in rows]
    still_signing = signing_kid(ring, now)
    for row in rows:
        row.retire_at = deadlines.get(row.kid, row.retire_at)
        if row.kid != still_signing and row.activates_at <= now:
            row.private_key_jwe = None
    row = _new_row(kek, ECKey.generate_key(CURVE, private=True), activates_at, now)
    session.add(row)
    await session.flush()
    await _announce(session)
    return row


async def list_signing_keys(session: AsyncSession) -> list[SigningKey]:
    """Every stored key, retired ones included, oldest first."""
    statement = select(SigningKey).order_by(SigningKey.activates_at, SigningKey.kid)
    return list((await session.execute(statement)).scalars())


async def load_key_ring(
    session: AsyncSession, kek: bytes, *, now: dt.datetime, known: Mapping[str, RingKey] | None = None
) -> KeyRing:
    """Every key, the private halves of unretired ones opened with ``kek``. Retired keys stay in the ring
    (public half only) so a token they signed is refused as signed by a retired key, not an unknown one;
    the JWKS leaves them out. ``known`` (the previous ring's keys) spares opening again what was opened
    before."""
    rows = (await session.execute(select(SigningKey))).scalars()
    keys = []
    for row in rows:
        before = (known or {}).get(row.kid)
        retired = row.retire_at is not None and row.retire_at <= now
        private: ECKey | None = None
        if row.private_key_jwe is not None and not retired:
            private = (
                before.private
                if before is not None and before.private is not None
                else unseal(kek, row.kid, row.private_key_jwe)
            )
        public = before.public if before is not None else ECKey.import_key(row.public_jwk)
        keys.append(RingKey(row.kid, public, private, row.activates_at, row.retire_at))
    return KeyRing(keys)
