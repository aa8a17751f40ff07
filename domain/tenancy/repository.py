from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped
from domain.tenancy.models import Tenant


async def current_tenant(session: AsyncSession, scope: TenantScope) -> Tenant | None:
    return (await session.execute(scoped(select(Tenant), Tenant, scope))).scalar_one_or_none()
