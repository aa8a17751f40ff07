"""Token services for tests that need one slightly unlike the app's (another clock, audience or key)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable

from joserfc.jwk import ECKey

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
