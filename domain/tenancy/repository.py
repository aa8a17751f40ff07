from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped
from domain.tenancy.models import Tenant


async def current_tenant(session: AsyncSession, scope: TenantScope) -> Tenant | None:
    return (await session.execute(scoped(select(Tenant), Tenant, scope))).scalar_one_or_none()


async def all_tenant_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Every tenant's id, for a background task in a ``domain.db.system_transaction`` (the only way the
    application role may list tenants); the task then scopes to each tenant for the real work."""
    return list((await session.execute(select(Tenant.id).order_by(Tenant.id))).scalars())
