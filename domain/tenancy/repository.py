from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import any_, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped
from domain.tenancy.models import (
    ApiClient,
    CredentialRevocation,
    RevocationKind,
    Team,
    TeamMember,
    Tenant,
    User,
)
from domain.tenancy.rules import Revocations


async def current_tenant(session: AsyncSession, scope: TenantScope) -> Tenant | None:
    return (await session.execute(scoped(select(Tenant), Tenant, scope))).scalar_one_or_none()


async def all_tenant_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Every tenant's id, for a background task in a ``domain.db.system_transaction`` (the only way the
    application role may list tenants); the task then scopes to each tenant for the real work."""
    return list((await session.execute(select(Tenant.id).order_by(Tenant.id))).scalars())


async def users_by_id(
    session: AsyncSession, scope: TenantScope, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, User]:
    """Users of the tenant (staff and shippers alike; callers decide what a principal may see of them)."""
    statement = scoped(select(User), User, TenantScope(scope.tenant_id)).where(User.id.in_(list(ids)))
    return {row.id: row for row in (await session.execute(statement)).scalars()}


async def teams_by_id(
    session: AsyncSession, scope: TenantScope, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Team]:
    statement = scoped(select(Team), Team, scope).where(Team.id.in_(list(ids)))
    return {row.id: row for row in (await session.execute(statement)).scalars()}


async def team_members(
    session: AsyncSession, scope: TenantScope, team_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Each team's member user ids (one query)."""
    rows = await session.execute(
        scoped(select(TeamMember.team_id, TeamMember.user_id), TeamMember, scope)
        .where(TeamMember.team_id.in_(list(team_ids)))
        .order_by(TeamMember.team_id, TeamMember.user_id)
    )
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    for team_id, user_id in rows:
        found.setdefault(team_id, []).append(user_id)
    return found


async def list_teams(session: AsyncSession, scope: TenantScope) -> list[Team]:
    return list((await session.execute(scoped(select(Team), Team, scope).order_by(Team.name))).scalars())


async def active_admins(session: AsyncSession, scope: TenantScope) -> list[User]:
    """The tenant's active staff admins, by id: who hears when nobody else is named."""
    statement = scoped(select(User), User, TenantScope(scope.tenant_id)).where(
        User.is_active, User.account_id.is_(None), literal("admin") == any_(User.roles)
    )
    return list((await session.execute(statement.order_by(User.id))).scalars())


async def list_api_clients(
    session: AsyncSession, scope: TenantScope, *, include_revoked: bool = False
) -> list[ApiClient]:
    """The tenant's API clients, oldest first (one query). The scope's account, if any, narrows it to
    that account's clients."""
    statement = scoped(select(ApiClient), ApiClient, scope)
    if not include_revoked:
        statement = statement.where(ApiClient.revoked_at.is_(None))
    return list((await session.execute(statement.order_by(ApiClient.created_at, ApiClient.id))).scalars())


async def api_clients_by_id(
    session: AsyncSession, scope: TenantScope, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ApiClient]:
    statement = scoped(select(ApiClient), ApiClient, scope).where(ApiClient.id.in_(list(ids)))
    return {row.id: row for row in (await session.execute(statement)).scalars()}


async def revocations_in_force(session: AsyncSession, now: dt.datetime) -> Revocations:
    """Every tenant's revocations that still concern a live token, for bearer checks in an API process.
    Must run in a ``domain.db.system_transaction`` (the policy lets it read across tenants there)."""
    rows = await session.execute(
        select(CredentialRevocation.kind, CredentialRevocation.subject).where(
            CredentialRevocation.expires_at > now
        )
    )
    clients: set[uuid.UUID] = set()
    tokens: set[str] = set()
    for kind, subject in rows:
        if kind == RevocationKind.CLIENT:
            clients.add(uuid.UUID(subject))
        else:
            tokens.add(subject)
    return Revocations(frozenset(clients), frozenset(tokens))
