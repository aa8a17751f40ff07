"""Plain async factories for tenants with shipments; every one takes its tenant explicitly."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db import TenantScope, apply_scope
from domain.shipments.models import Shipment
from domain.shipments.service import PlannedMilestone, ShipmentDraft, create_shipment
from domain.tenancy.models import Account
from domain.tenancy.service import create_account
from tests.factories import make_tenant, unique_slug

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


@dataclass
class TenantWorld:
    scope: TenantScope
    slug: str
    accounts: list[Account] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)


def ocean_plan(start: dt.datetime) -> list[PlannedMilestone]:
    return [
        PlannedMilestone("BOOKED", start, "CNSHA"),
        PlannedMilestone("GATE_IN_ORIGIN", start + dt.timedelta(days=2), "CNSHA"),
        PlannedMilestone("DEPARTED", start + dt.timedelta(days=4), "CNSHA"),
        PlannedMilestone("ARRIVED", start + dt.timedelta(days=30), "NLRTM"),
        PlannedMilestone("DELIVERED", start + dt.timedelta(days=34), "NLRTM"),
    ]


async def add_tenant(
    session: AsyncSession, *, accounts: int = 2, shipments_per_account: int = 3, label: str = "t"
) -> TenantWorld:
    tenant = await make_tenant(session, slug=unique_slug(label))
    slug = tenant.slug
    scope = TenantScope(tenant.id)
    world = TenantWorld(scope=scope, slug=slug)
    for a in range(accounts):
        await apply_scope(session, scope)
        account = await create_account(session, scope, code=f"ACC{a}", name=f"Account {a}", sla_tier="gold")
        world.accounts.append(account)
        for n in range(shipments_per_account):
            mode = ("ocean", "air", "road")[n % 3]
            draft = ShipmentDraft(
                account_id=account.id,
                mode=mode,
                carrier_code=None,
                origin_locode="CNSHA",
                destination_locode="NLRTM",
                references=[("booking", f"BK-{slug}-{a}-{n}"), ("container", f"MSKU{a}{n:06d}")],
                milestones=ocean_plan(T0 + dt.timedelta(days=n)),
            )
            world.shipments.append(await create_shipment(session, scope, draft))
    return world


async def committed_tenant(sessions: async_sessionmaker[AsyncSession], **kwargs: object) -> TenantWorld:
    async with sessions() as session, session.begin():
        return await add_tenant(session, **kwargs)  # type: ignore[arg-type]
