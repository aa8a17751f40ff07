"""Plain async factories. Each takes the tenant explicitly and binds the session's transaction to it first,
so they can be mixed freely for several tenants in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, apply_scope
from domain.tenancy.models import Account, Role, SlaTier, Tenant, User
from domain.tenancy.service import (
    IssuedClient,
    create_account,
    create_api_client,
    create_tenant,
    create_user,
)

PASSWORD = "correct horse battery staple"


def unique_slug(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def make_tenant(session: AsyncSession, name: str | None = None, slug: str | None = None) -> Tenant:
    slug = slug or unique_slug()
    return await create_tenant(session, name or f"Tenant {slug}", slug)


async def _bind(session: AsyncSession, tenant: Tenant) -> TenantScope:
    scope = TenantScope(tenant.id)
    await apply_scope(session, scope)
    return scope


async def make_account(
    session: AsyncSession,
    tenant: Tenant,
    *,
    code: str | None = None,
    name: str = "Northwind Traders",
    sla_tier: str = SlaTier.STANDARD,
) -> Account:
    scope = await _bind(session, tenant)
    return await create_account(
        session, scope, code=code or f"ACC-{uuid.uuid4().hex[:8]}", name=name, sla_tier=sla_tier
    )


async def make_user(
    session: AsyncSession,
    tenant: Tenant,
    *,
    email: str | None = None,
    name: str = "Dana Ops",
    password: str = PASSWORD,
    roles: Iterable[str] = (Role.OPERATIONS,),
    account: Account | None = None,
) -> User:
    scope = await _bind(session, tenant)
    return await create_user(
        session,
        scope,
        email=email or f"user-{uuid.uuid4().hex[:8]}@example.com",
        name=name,
        password=password,
        roles=roles,
        account_id=account.id if account is not None else None,
    )


async def make_shipper_user(
    session: AsyncSession, tenant: Tenant, account: Account, *, email: str | None = None
) -> User:
    return await make_user(session, tenant, email=email, roles=(Role.SHIPPER,), account=account)


async def make_api_client(
    session: AsyncSession,
    tenant: Tenant,
    *,
    scopes: Iterable[str] = ("shipments:read",),
    name: str = "Partner TMS",
    account: Account | None = None,
) -> IssuedClient:
    scope = await _bind(session, tenant)
    return await create_api_client(
        session, scope, name=name, scopes=scopes, account_id=account.id if account is not None else None
    )
