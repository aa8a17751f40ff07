"""Token services for tests that need one slightly unlike the app's (another clock, audience or key)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from joserfc.jwk import ECKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.tokens import TokenService
from domain.signing.rules import KeyRing

LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def backdated(ring: KeyRing) -> KeyRing:
    """``ring`` with every key active since long ago, so a clock in the past still finds a signer."""
    return KeyRing([dataclasses.replace(key, activates_at=LONG_AGO) for key in ring.keys])


def token_service_like(
    tokens: TokenService,
    *,
    key: ECKey | None = None,
    audience: str | None = None,
    ttl_seconds: int | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenService:
    """A token service like ``tokens`` (same keys unless ``key``), with one thing changed."""
    return TokenService(
        KeyRing.of(key) if key is not None else backdated(tokens.keys),
        issuer=tokens.issuer,
        audience=audience or tokens.audience,
        ttl_seconds=ttl_seconds or tokens.ttl_seconds,
        max_ttl_seconds=tokens.max_ttl_seconds,
        clock=clock,
    )


@asynccontextmanager
async def signing_keys_restored(owner_engine: AsyncEngine) -> AsyncIterator[None]:
    """Put ``signing_key`` back as it was: for tests that commit key rotations (the table is shared by
    every test of a worker, and the session's token service was loaded from it)."""
    async with owner_engine.connect() as conn:
        saved = (await conn.execute(text("SELECT * FROM signing_key"))).mappings().all()
    try:
        yield
    finally:
        async with owner_engine.begin() as conn:
            await conn.execute(text("DELETE FROM signing_key"))
            for row in saved:
                await conn.execute(
                    text(
                        "INSERT INTO signing_key (kid, algorithm, public_jwk, private_key_jwe, created_at, "
                        "activates_at, retire_at) VALUES (:kid, :algorithm, CAST(:public_jwk AS jsonb), "
                        ":private_key_jwe, :created_at, :activates_at, :retire_at)"
                    ),
                    {**row, "public_jwk": json.dumps(row["public_jwk"])},
                )
