"""Signing-key rotation as verifiers see it: the JWKS and which tokens are accepted, step by step.

The steps run in one owner transaction (rolled back: ``signing_key`` is shared by the worker's tests); the
app under test gets a token service with its own clock and the key ring loaded from that transaction, as
an API process loads it after the rotation's NOTIFY.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.app import create_app
from api.auth.tokens import TokenService
from api.state import AppState
from domain.signing.service import ensure_signing_key, load_key_ring, rotate_signing_key
from domain.tenancy.principal import Principal

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
STALE = dt.timedelta(seconds=15)


@pytest.fixture
async def keys_session(owner_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with owner_engine.connect() as conn:
        transaction = await conn.begin()
        async with AsyncSession(bind=conn, join_transaction_mode="create_savepoint") as db:
            await db.execute(text("DELETE FROM signing_key"))
            yield db
        await transaction.rollback()


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


def partner() -> Principal:
    return Principal(
        tenant_id=uuid.uuid4(),
        subject_kind="api_client",
        subject_id=uuid.uuid4(),
        scopes=frozenset({"ingest"}),
    )


async def accepted(app_state: AppState, tokens: TokenService, token: str) -> tuple[int, str | None]:
    transport = httpx.ASGITransport(app=create_app(dataclasses.replace(app_state, tokens=tokens)))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {token}"}
        )
    return response.status_code, response.json().get(
        "error_description"
    ) if response.status_code != 200 else None


async def published(app_state: AppState, tokens: TokenService) -> list[str]:
    transport = httpx.ASGITransport(app=create_app(dataclasses.replace(app_state, tokens=tokens)))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return [key["kid"] for key in (await http.get("/.well-known/jwks.json")).json()["keys"]]


async def test_a_rotation_step_by_step_as_verifiers_see_it(
    keys_session: AsyncSession, app_state: AppState, key_encryption_key: bytes
) -> None:
    kek = key_encryption_key
    clock = Clock(T0)
    first = await ensure_signing_key(keys_session, kek, now=T0)
    assert first is not None

    async def service() -> TokenService:
        """The app's token service as an API process has it after (re)loading at the clock's time."""
        ring = await load_key_ring(keys_session, kek, now=clock.at)
        return TokenService(
            ring,
            issuer=app_state.tokens.issuer,
            audience=app_state.tokens.audience,
            ttl_seconds=900,
            max_ttl_seconds=3600,
            clock=clock,
        )

    tokens = await service()
    before = tokens.issue(partner())
    assert await published(app_state, tokens) == [first.kid]

    # 1. rotate: the new key is published at once, but the old one still signs
    clock.at = T0 + 10 * MIN
    second = await rotate_signing_key(
        keys_session, kek, now=clock.at, activate_in=5 * MIN, max_token_lifetime=HOUR, stale_for=STALE
    )
    tokens = await service()
    assert await published(app_state, tokens) == [first.kid, second.kid]
    during = tokens.issue(partner())
    assert header_kid(during) == first.kid
    assert await accepted(app_state, tokens, before) == (200, None)

    # 2. the new key activates: it signs; tokens of the old key are still accepted, both keys published
    clock.at = T0 + 15 * MIN
    after = tokens.issue(partner())
    assert header_kid(after) == second.kid
    assert await accepted(app_state, tokens, after) == (200, None)
    assert await accepted(app_state, tokens, during) == (200, None)
    assert await published(app_state, tokens) == [first.kid, second.kid]

    # 3. every token the old key signed has expired: it is retired and leaves the JWKS
    clock.at = T0 + 15 * MIN + STALE + HOUR
    assert await published(app_state, tokens) == [second.kid]
    assert await accepted(app_state, tokens, during) == (
        401,
        f"the token's signing key '{first.kid}' has been retired",
    )
    tokens = await service()  # a reload changes nothing: retirement follows the clock
    assert await published(app_state, tokens) == [second.kid]
    assert await accepted(app_state, tokens, tokens.issue(partner())) == (200, None)


async def test_retiring_a_compromised_key_refuses_its_live_tokens_at_once(
    keys_session: AsyncSession, app_state: AppState, key_encryption_key: bytes
) -> None:
    kek = key_encryption_key
    clock = Clock(T0)
    first = await ensure_signing_key(keys_session, kek, now=T0)
    assert first is not None

    async def service() -> TokenService:
        ring = await load_key_ring(keys_session, kek, now=clock.at)
        return TokenService(
            ring,
            issuer=app_state.tokens.issuer,
            audience=app_state.tokens.audience,
            ttl_seconds=900,
            clock=clock,
        )

    live = (await service()).issue(partner())
    clock.at = T0 + MIN
    second = await rotate_signing_key(
        keys_session,
        kek,
        now=clock.at,
        activate_in=5 * MIN,
        max_token_lifetime=HOUR,
        stale_for=STALE,
        retire_previous_now=True,
    )
    tokens = await service()

    assert await accepted(app_state, tokens, live) == (
        401,
        f"the token's signing key '{first.kid}' has been retired",
    )
    assert await published(app_state, tokens) == [second.kid]
    fresh = tokens.issue(partner())
    assert header_kid(fresh) == second.kid
    assert await accepted(app_state, tokens, fresh) == (200, None)


def header_kid(token: str) -> str:
    encoded = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))["kid"])
