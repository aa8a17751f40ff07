from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, apply_scope
from domain.tenancy.models import ApiClient, Role, User
from domain.tenancy.principal import Principal
from domain.tenancy.rules import SCOPES_SORTED
from domain.tenancy.service import (
    ClientAuthentication,
    ClientRefusal,
    TenancyError,
    authenticate_client,
    authenticate_user,
    create_tenant,
    find_tenant_by_slug,
    principal_for_client,
    principal_for_user,
    slugify,
)
from tests.factories import (
    PASSWORD,
    make_account,
    make_api_client,
    make_shipper_user,
    make_tenant,
    make_user,
    unique_slug,
)


async def current_setting(session: AsyncSession, name: str) -> str:
    return str((await session.execute(text("SELECT current_setting(:n, true)"), {"n": name})).scalar_one())


async def test_create_tenant_derives_the_slug_and_binds_the_transaction(session: AsyncSession) -> None:
    suffix = unique_slug("")
    tenant = await create_tenant(session, f"Blue Anchor Logistics{suffix}")

    assert tenant.slug == f"blue-anchor-logistics{suffix}"
    assert tenant.name == f"Blue Anchor Logistics{suffix}"
    assert await current_setting(session, "app.tenant_id") == str(tenant.id)
    assert await find_tenant_by_slug(session, tenant.slug) is tenant


async def test_create_tenant_refuses_a_taken_or_invalid_slug(session: AsyncSession) -> None:
    tenant = await make_tenant(session)

    with pytest.raises(TenancyError) as taken:
        await create_tenant(session, "Copycat", tenant.slug)
    with pytest.raises(TenancyError) as invalid:
        await create_tenant(session, "Bad", "Bad_Slug")
    with pytest.raises(TenancyError) as underivable:
        slugify("!!!")

    assert str(taken.value) == f"a tenant with slug {tenant.slug!r} already exists"
    assert str(invalid.value) == "invalid tenant slug 'Bad_Slug': use 2-63 characters a-z, 0-9 and '-'"
    assert (
        str(underivable.value) == "cannot derive a slug from '!!!': give one of 2-63 characters a-z, 0-9, '-'"
    )


async def test_passwords_and_secrets_are_stored_as_argon2id_hashes(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    user = await make_user(session, tenant, password=PASSWORD)
    issued = await make_api_client(session, tenant)

    stored_user = (await session.execute(select(User.password_hash).where(User.id == user.id))).scalar_one()
    stored_client = (
        await session.execute(select(ApiClient.secret_hash).where(ApiClient.id == issued.client.id))
    ).scalar_one()

    hasher = PasswordHasher()
    assert stored_user.startswith("$argon2id$")
    assert PASSWORD not in stored_user
    assert hasher.verify(stored_user, PASSWORD) is True
    assert stored_client.startswith("$argon2id$")
    assert issued.client_secret not in stored_client
    assert hasher.verify(stored_client, issued.client_secret) is True
    assert issued.client.client_id.startswith("mp_")
    assert len(issued.client.client_id) == 27


async def test_authenticate_user_finds_only_the_right_tenants_user_with_the_right_password(
    session: AsyncSession,
) -> None:
    tenant_a = await make_tenant(session)
    user_a = await make_user(session, tenant_a, email="dana@example.com")
    tenant_b = await make_tenant(session)
    user_b = await make_user(session, tenant_b, email="dana@example.com", password="tenant b password")

    assert await authenticate_user(session, tenant_a.slug, "Dana@Example.com ", PASSWORD) is user_a
    assert await authenticate_user(session, tenant_b.slug, "dana@example.com", "tenant b password") is user_b
    assert await authenticate_user(session, tenant_a.slug, "dana@example.com", "tenant b password") is None
    assert await authenticate_user(session, tenant_b.slug, "dana@example.com", PASSWORD) is None
    assert await authenticate_user(session, tenant_a.slug, "nobody@example.com", PASSWORD) is None
    assert await authenticate_user(session, "no-such-tenant", "dana@example.com", PASSWORD) is None
    # the slug lookup clause is closed again once the tenant is found
    assert await current_setting(session, "app.tenant_slug") == ""


async def test_authenticate_user_refuses_an_inactive_user(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    user = await make_user(session, tenant)
    await session.execute(update(User).where(User.id == user.id).values(is_active=False))

    assert await authenticate_user(session, tenant.slug, user.email, PASSWORD) is None


async def test_authenticate_client_checks_secret_and_revocation(session: AsyncSession) -> None:
    tenant_a = await make_tenant(session)
    issued_a = await make_api_client(session, tenant_a, scopes=["ingest"])
    tenant_b = await make_tenant(session)
    issued_b = await make_api_client(session, tenant_b, scopes=["ingest"])
    await apply_scope(session, TenantScope(tenant_a.id))  # the lookup must work whatever is in scope

    now = dt.datetime.now(dt.UTC)
    found_b = await authenticate_client(session, issued_b.client.client_id, issued_b.client_secret, now=now)
    crossed = await authenticate_client(session, issued_a.client.client_id, issued_b.client_secret, now=now)
    unknown = await authenticate_client(session, "mp_unknown", issued_a.client_secret, now=now)

    assert found_b.client is not None
    assert (found_b.client.id, found_b.client.tenant_id) == (issued_b.client.id, tenant_b.id)
    assert crossed == ClientAuthentication(None, ClientRefusal.UNKNOWN)
    assert unknown == ClientAuthentication(None, ClientRefusal.UNKNOWN)
    assert await current_setting(session, "app.client_id") == ""

    await apply_scope(session, TenantScope(tenant_a.id))
    await session.execute(
        update(ApiClient).where(ApiClient.id == issued_a.client.id).values(revoked_at=dt.datetime.now(dt.UTC))
    )
    revoked = await authenticate_client(session, issued_a.client.client_id, issued_a.client_secret, now=now)
    assert revoked == ClientAuthentication(None, ClientRefusal.REVOKED)


async def test_row_level_security_hides_the_other_tenants_users_and_clients(session: AsyncSession) -> None:
    tenant_a = await make_tenant(session)
    user_a = await make_user(session, tenant_a)
    client_a = await make_api_client(session, tenant_a)
    tenant_b = await make_tenant(session)
    await make_user(session, tenant_b)
    await make_api_client(session, tenant_b)

    await apply_scope(session, TenantScope(tenant_a.id))
    # deliberately unscoped queries: only PostgreSQL's policies stand between tenants here
    users = (await session.execute(select(User.id))).scalars().all()
    clients = (await session.execute(select(ApiClient.id))).scalars().all()

    assert users == [user_a.id]
    assert clients == [client_a.client.id]


async def test_user_roles_and_inputs_are_validated(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    account = await make_account(session, tenant)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"roles": ["pilot"]}, "unknown role(s) pilot; expected some of " + ", ".join(Role)),
        ({"roles": []}, "a user needs at least one role"),
        ({"roles": [Role.SHIPPER]}, "a shipper user needs an account, and only shipper users have one"),
        (
            {"roles": [Role.OPERATIONS], "account": account},
            "a shipper user needs an account, and only shipper users have one",
        ),
        (
            {"roles": [Role.SHIPPER, Role.SALES], "account": account},
            "a shipper user cannot also hold staff roles",
        ),
        ({"email": "not-an-address"}, "invalid e-mail address 'not-an-address'"),
        ({"password": "short"}, "a password needs at least 10 characters"),
    ]
    for overrides, message in cases:
        with pytest.raises(TenancyError) as refused:
            await make_user(session, tenant, **overrides)
        assert str(refused.value) == message


async def test_unknown_client_scopes_are_refused(session: AsyncSession) -> None:
    tenant = await make_tenant(session)

    with pytest.raises(TenancyError) as refused:
        await make_api_client(session, tenant, scopes=["shipments:read", "everything"])

    assert str(refused.value) == "unknown scope(s) everything; expected some of " + ", ".join(SCOPES_SORTED)
    assert SCOPES_SORTED == [
        "billing:read",
        "exceptions:read",
        "exceptions:write",
        "ingest",
        "shipments:read",
        "shipments:write",
        "webhooks:manage",
    ]


async def test_principals_carry_tenant_account_roles_and_scopes(session: AsyncSession) -> None:
    tenant = await make_tenant(session)
    account = await make_account(session, tenant)
    staff = await make_user(session, tenant, roles=[Role.FINANCE, Role.ADMIN])
    shipper = await make_shipper_user(session, tenant, account)
    issued = await make_api_client(session, tenant, scopes=["ingest", "shipments:read"])

    assert principal_for_user(staff) == Principal(
        tenant_id=tenant.id, subject_kind="user", subject_id=staff.id, roles=frozenset({"admin", "finance"})
    )
    assert principal_for_user(shipper) == Principal(
        tenant_id=tenant.id,
        subject_kind="user",
        subject_id=shipper.id,
        account_id=account.id,
        roles=frozenset({"shipper"}),
    )
    assert principal_for_user(shipper).scope == TenantScope(tenant.id, account.id)
    assert principal_for_client(issued.client, ["ingest"]).scopes == frozenset({"ingest"})
    assert principal_for_client(issued.client).scopes == frozenset({"ingest", "shipments:read"})
