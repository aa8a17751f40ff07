"""API client credentials in the database: lifetimes, secret rotation with a grace period, revocations."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, apply_scope
from domain.tenancy.models import ApiClient, CredentialRevocation
from domain.tenancy.repository import api_clients_by_id, list_api_clients, revocations_in_force
from domain.tenancy.rules import Revocations
from domain.tenancy.service import (
    ClientAuthentication,
    ClientNotFound,
    ClientRefusal,
    ClientRevoked,
    TenancyError,
    authenticate_client,
    create_api_client,
    expire_previous_secret,
    find_api_client,
    revoke_api_client,
    revoke_token,
    rotate_client_secret,
)
from tests.factories import make_account, make_api_client, make_tenant

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


async def system_read(session: AsyncSession, now: dt.datetime) -> Revocations:
    """As an API process reads them: across tenants, in a system transaction (then back to the tenant)."""
    tenant = (await session.execute(text("SELECT current_setting('app.tenant_id', true)"))).scalar_one()
    await session.execute(text("SELECT set_config('app.tenant_id', '', true)"))
    await session.execute(text("SELECT set_config('app.system_task', 'on', true)"))
    try:
        return await revocations_in_force(session, now)
    finally:
        await session.execute(text("SELECT set_config('app.system_task', '', true)"))
        await session.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": tenant or ""})


async def test_a_client_may_have_its_own_token_lifetime_within_bounds(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    scope = TenantScope(tenant.id)
    own = await create_api_client(
        session,
        scope,
        name="Short",
        scopes=["ingest"],
        access_token_ttl_seconds=120,
        max_token_ttl_seconds=3600,
    )
    assert own.client.access_token_ttl_seconds == 120
    for ttl in (59, 3601):
        with pytest.raises(TenancyError) as refused:
            await create_api_client(
                session,
                scope,
                name="X",
                scopes=["ingest"],
                access_token_ttl_seconds=ttl,
                max_token_ttl_seconds=3600,
            )
        assert str(refused.value) == (
            "a client's token lifetime must be 60 to 3600 seconds (MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS), "
            f"got {ttl}"
        )
    with pytest.raises(TenancyError) as nameless:
        await create_api_client(session, scope, name="  ", scopes=["ingest"])
    with pytest.raises(TenancyError) as scopeless:
        await create_api_client(session, scope, name="X", scopes=[])
    assert str(nameless.value) == "a client's name must be 1 to 200 characters"
    assert str(scopeless.value) == "a client needs at least one scope"


async def test_the_database_refuses_a_scope_outside_the_list(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    issued = await make_api_client(session, tenant, scopes=["ingest"])

    with pytest.raises(IntegrityError, match="ck_api_client_scopes"):
        async with session.begin_nested():
            await session.execute(
                update(ApiClient)
                .where(ApiClient.id == issued.client.id)
                .values(scopes=["ingest", "rules:read"])
            )


async def test_after_a_rotation_both_secrets_work_until_the_grace_ends(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    issued = await make_api_client(session, tenant, scopes=["ingest"])
    scope = TenantScope(tenant.id)
    old, client_id = issued.client_secret, issued.client.client_id

    rotated = await rotate_client_secret(session, scope, issued.client.id, now=T0, grace=24 * HOUR)
    new = rotated.client_secret

    assert new != old
    assert (rotated.client.secret_rotated_at, rotated.client.previous_secret_expires_at) == (
        T0,
        T0 + 24 * HOUR,
    )
    during = T0 + 23 * HOUR
    assert (await authenticate_client(session, client_id, new, now=during)).client is rotated.client
    assert (await authenticate_client(session, client_id, old, now=during)).client is rotated.client
    after = T0 + 24 * HOUR
    assert (await authenticate_client(session, client_id, new, now=after)).client is rotated.client
    assert await authenticate_client(session, client_id, old, now=after) == ClientAuthentication(
        None, ClientRefusal.SECRET_EXPIRED, secret_expired_at=T0 + 24 * HOUR
    )
    assert await authenticate_client(session, client_id, "wrong", now=during) == ClientAuthentication(
        None, ClientRefusal.UNKNOWN
    )

    # a second rotation: the first secret is forgotten (just wrong now), the second is in grace
    again = await rotate_client_secret(session, scope, issued.client.id, now=T0 + HOUR, grace=HOUR)
    assert (await authenticate_client(session, client_id, new, now=T0 + HOUR)).client is again.client
    assert (
        await authenticate_client(session, client_id, again.client_secret, now=T0 + HOUR)
    ).client is again.client
    assert await authenticate_client(session, client_id, old, now=T0 + HOUR) == ClientAuthentication(
        None, ClientRefusal.UNKNOWN
    )


async def test_the_previous_secret_can_be_expired_early(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    issued = await make_api_client(session, tenant, scopes=["ingest"])
    scope = TenantScope(tenant.id)
    await rotate_client_secret(session, scope, issued.client.id, now=T0, grace=24 * HOUR)

    expired = await expire_previous_secret(session, scope, issued.client.id, now=T0 + HOUR)
    unchanged = await expire_previous_secret(session, scope, issued.client.id, now=T0 + 2 * HOUR)

    assert expired.previous_secret_expires_at == T0 + HOUR
    assert unchanged.previous_secret_expires_at == T0 + HOUR  # it was over already: nothing to do
    refused = await authenticate_client(session, issued.client.client_id, issued.client_secret, now=T0 + HOUR)
    assert refused.refusal is ClientRefusal.SECRET_EXPIRED
    zero = await rotate_client_secret(session, scope, issued.client.id, now=T0, grace=dt.timedelta(0))
    assert zero.client.previous_secret_expires_at == T0


async def test_a_grace_period_outside_bounds_is_refused(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    issued = await make_api_client(session, tenant)

    with pytest.raises(TenancyError) as refused:
        await rotate_client_secret(session, TenantScope(tenant.id), issued.client.id, now=T0, grace=-HOUR)

    assert str(refused.value) == "the grace period must be 0 to 720 hours, got -1"


async def test_revoking_a_client_records_it_for_the_bearer_checks(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    issued = await make_api_client(session, tenant)
    scope = TenantScope(tenant.id)
    now = dt.datetime.now(dt.UTC)

    revoked = await revoke_api_client(session, scope, issued.client.id, now=now, max_token_lifetime=HOUR)

    assert revoked.revoked_at == now
    rows = (await session.execute(select(CredentialRevocation))).scalars().all()
    assert [(r.tenant_id, r.kind, r.subject, r.revoked_at, r.expires_at) for r in rows] == [
        (tenant.id, "client", str(issued.client.id), now, now + HOUR + dt.timedelta(minutes=5))
    ]
    assert issued.client.id in (await system_read(session, now)).clients  # with other tests' committed ones
    with pytest.raises(ClientRevoked) as again:
        await revoke_api_client(session, scope, issued.client.id, now=now, max_token_lifetime=HOUR)
    with pytest.raises(ClientRevoked):
        await rotate_client_secret(session, scope, issued.client.id, now=now, grace=HOUR)
    with pytest.raises(ClientRevoked):
        await expire_previous_secret(session, scope, issued.client.id, now=now)
    assert str(again.value) == f"API client {issued.client.client_id} was revoked at {now.isoformat()}"
    refused = await authenticate_client(session, issued.client.client_id, issued.client_secret, now=now)
    assert refused.refusal is ClientRefusal.REVOKED


async def test_revoked_tokens_are_read_across_tenants_until_they_expire(session: AsyncSession) -> None:
    first, second = await make_tenant(session), await make_tenant(session)
    now = dt.datetime.now(dt.UTC)
    await apply_scope(session, TenantScope(first.id))
    await revoke_token(session, TenantScope(first.id), jti="a" * 32, expires_at=now + HOUR, now=now)
    await revoke_token(session, TenantScope(first.id), jti="a" * 32, expires_at=now + HOUR, now=now)  # again
    await revoke_token(session, TenantScope(first.id), jti="gone", expires_at=now, now=now)  # expired already
    await apply_scope(session, TenantScope(second.id))
    await revoke_token(session, TenantScope(second.id), jti="b" * 32, expires_at=now + 2 * HOUR, now=now)

    assert (await system_read(session, now)).token_ids >= {"a" * 32, "b" * 32}
    assert "gone" not in (await system_read(session, now)).token_ids
    later = await system_read(session, now + HOUR)
    assert "a" * 32 not in later.token_ids
    assert "b" * 32 in later.token_ids

    # without the system setting nobody reads across tenants; a tenant sees only its own rows and cannot
    # write into another's
    await session.execute(text("SELECT set_config('app.tenant_id', '', true)"))
    assert (await session.execute(select(CredentialRevocation.subject))).scalars().all() == []
    await apply_scope(session, TenantScope(first.id))
    assert (await session.execute(select(CredentialRevocation.subject))).scalars().all() == ["a" * 32]
    with pytest.raises(DBAPIError, match="row-level security"):
        async with session.begin_nested():
            await revoke_token(session, TenantScope(second.id), jti="c" * 32, expires_at=now + HOUR, now=now)


async def test_expired_revocations_are_purged_when_the_tenant_revokes_again(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    scope = TenantScope(tenant.id)
    await revoke_token(session, scope, jti="old", expires_at=T0 + HOUR, now=T0)

    await revoke_token(session, scope, jti="new", expires_at=T0 + 3 * HOUR, now=T0 + 2 * HOUR)

    assert (await session.execute(select(CredentialRevocation.subject))).scalars().all() == ["new"]


async def test_another_tenants_client_cannot_be_rotated_revoked_or_listed(session: AsyncSession) -> None:
    mine, theirs = await make_tenant(session), await make_tenant(session)
    their_client = await make_api_client(session, theirs)
    account = await make_account(session, mine)
    tenant_wide = await make_api_client(session, mine)
    bound = await make_api_client(session, mine, account=account)
    await apply_scope(session, TenantScope(mine.id))
    scope = TenantScope(mine.id)

    for attempt in (
        rotate_client_secret(session, scope, their_client.client.id, now=T0, grace=HOUR),
        expire_previous_secret(session, scope, their_client.client.id, now=T0),
        revoke_api_client(session, scope, their_client.client.id, now=T0, max_token_lifetime=HOUR),
    ):
        with pytest.raises(ClientNotFound):
            await attempt

    assert [row.id for row in await list_api_clients(session, scope)] == [
        tenant_wide.client.id,
        bound.client.id,
    ]
    assert await api_clients_by_id(session, scope, [their_client.client.id]) == {}
    assert [row.id for row in await list_api_clients(session, TenantScope(mine.id, account.id))] == [
        bound.client.id
    ]
    await apply_scope(session, TenantScope(theirs.id))
    assert their_client.client.revoked_at is None


async def test_the_cli_finds_a_client_by_its_public_id_in_any_tenant(session: AsyncSession) -> None:
    mine, theirs = await make_tenant(session), await make_tenant(session)
    issued = await make_api_client(session, theirs)
    await apply_scope(session, TenantScope(mine.id))

    found = await find_api_client(session, issued.client.client_id)
    missing = await find_api_client(session, f"mp_{uuid.uuid4().hex}")

    assert found is issued.client
    assert missing is None
    tenant_setting = await session.execute(text("SELECT current_setting('app.tenant_id')"))
    assert tenant_setting.scalar_one() == str(theirs.id)
