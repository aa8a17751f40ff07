"""Each API process's credentials watch: a revocation or key rotation committed elsewhere (another API
process, the CLI) is in force here within milliseconds by NOTIFY, or at the next periodic reload."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.auth.tokens import InvalidToken, TokenService
from api.auth.watch import CredentialWatch
from api.live import listen_dsn
from domain.db import TenantScope, scoped_transaction
from domain.signing.service import rotate_signing_key
from domain.tenancy.principal import Principal
from domain.tenancy.service import principal_for_client, revoke_api_client, revoke_token
from milepost.credentials import token_service
from milepost.database import Database
from milepost.settings import Settings
from tests.api.live_support import free_port, poll
from tests.api.test_key_rotation import header_kid
from tests.auth_support import signing_keys_restored
from tests.factories import make_api_client, make_tenant


@asynccontextmanager
async def watching(
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    database: Database,
    kek: bytes,
    *,
    refresh_seconds: float,
    port: int | None = None,
) -> AsyncIterator[CredentialWatch]:
    url = database.app_url if port is None else database.app_url.set(port=port)
    watch = CredentialWatch(tokens, sessions, listen_dsn(url), kek, refresh_seconds=refresh_seconds)
    stopping = asyncio.Event()
    running = asyncio.create_task(watch.run(stopping))
    try:
        yield watch
    finally:
        stopping.set()
        await asyncio.wait_for(running, timeout=10)


def refused(tokens: TokenService, token: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            tokens.verify(token)
        except InvalidToken:
            return True
        return False

    return check


async def committed_client(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[TenantScope, Principal, uuid.UUID]:
    async with sessions() as session, session.begin():
        tenant = await make_tenant(session)
        issued = await make_api_client(session, tenant)
    return TenantScope(tenant.id), principal_for_client(issued.client), issued.client.id


async def test_a_revocation_elsewhere_is_in_force_here_by_notify(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    database: Database,
    key_encryption_key: bytes,
) -> None:
    here = await token_service(settings, sessions, key_encryption_key)
    scope, principal, client_row_id = await committed_client(sessions)
    client_token, other_token = here.issue(principal), here.issue(principal)
    _, bystander, _ = await committed_client(sessions)
    bystander_token = here.issue(bystander)
    # an hour between periodic reloads: only the NOTIFY can make it in time
    async with watching(here, sessions, database, key_encryption_key, refresh_seconds=3600) as watch:
        await poll(lambda: watch.listening and watch.reloads >= 1, "the watch to listen")

        started = time.monotonic()
        async with scoped_transaction(sessions, scope) as session:
            await revoke_api_client(
                session,
                scope,
                client_row_id,
                now=dt.datetime.now(dt.UTC),
                max_token_lifetime=dt.timedelta(hours=1),
            )
        await poll(refused(here, client_token), "the client's tokens to be refused", seconds=5)
        latency = time.monotonic() - started

        assert latency < 2
        assert refused(here, other_token)()
        assert not refused(here, bystander_token)()
        with pytest.raises(InvalidToken, match="the token's client has been revoked"):
            here.verify(client_token)

        # one token, by jti
        verified = here.decode(bystander_token)
        async with scoped_transaction(sessions, TenantScope(bystander.tenant_id)) as session:
            await revoke_token(
                session,
                TenantScope(bystander.tenant_id),
                jti=verified.jti,
                expires_at=dt.datetime.fromtimestamp(verified.expires_at, dt.UTC),
                now=dt.datetime.now(dt.UTC),
            )
        await poll(refused(here, bystander_token), "the token to be refused", seconds=5)


async def test_without_listen_the_periodic_reload_still_catches_up(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    database: Database,
    key_encryption_key: bytes,
) -> None:
    here = await token_service(settings, sessions, key_encryption_key)
    scope, principal, client_row_id = await committed_client(sessions)
    token = here.issue(principal)
    # LISTEN goes to a port where nothing answers; reloads (through the pool) still run every 0.2 s
    async with watching(
        here, sessions, database, key_encryption_key, refresh_seconds=0.2, port=free_port()
    ) as watch:
        async with scoped_transaction(sessions, scope) as session:
            await revoke_api_client(
                session,
                scope,
                client_row_id,
                now=dt.datetime.now(dt.UTC),
                max_token_lifetime=dt.timedelta(hours=1),
            )
        await poll(refused(here, token), "the periodic reload", seconds=5)
        assert not watch.listening


async def test_a_key_rotation_elsewhere_reaches_this_process(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    database: Database,
    key_encryption_key: bytes,
    owner_engine: AsyncEngine,
) -> None:
    async with signing_keys_restored(owner_engine):
        here = await token_service(settings, sessions, key_encryption_key)
        before = [key["kid"] for key in here.jwks()["keys"]]
        async with watching(here, sessions, database, key_encryption_key, refresh_seconds=3600) as watch:
            await poll(lambda: watch.listening and watch.reloads >= 1, "the watch to listen")
            async with sessions() as session, session.begin():
                added = await rotate_signing_key(
                    session,
                    key_encryption_key,
                    now=dt.datetime.now(dt.UTC),
                    activate_in=dt.timedelta(0),
                    max_token_lifetime=dt.timedelta(hours=1),
                    stale_for=dt.timedelta(seconds=15),
                )
            await poll(
                lambda: added.kid in [key["kid"] for key in here.jwks()["keys"]], "the new key", seconds=5
            )

            assert [key["kid"] for key in here.jwks()["keys"]] == [*before, added.kid]
            token = here.issue(
                Principal(tenant_id=uuid.uuid4(), subject_kind="user", subject_id=uuid.uuid4())
            )
            assert header_kid(token) == added.kid
            assert here.decode(token).principal.subject_kind == "user"
