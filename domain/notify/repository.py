"""Notification queries: the viewer's notifications, preferences, endpoints and their delivery log,
templates and branding. Every one is scoped; a shipper scope reaches its own account's endpoints and
deliveries only (row-level security and ``scoped`` both filter on the account)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped
from domain.notify.models import (
    EmailTemplate,
    MailBranding,
    Notification,
    NotificationPreference,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from domain.shipments.repository import PageKey, after_in_newest_first


async def notifications_page(
    session: AsyncSession,
    scope: TenantScope,
    user_id: uuid.UUID,
    *,
    unread_only: bool,
    after: PageKey | None,
    limit: int,
) -> list[Notification]:
    """Up to ``limit`` of the user's in-app notifications, newest first, after ``after``."""
    statement = scoped(select(Notification), Notification, scope).where(
        Notification.user_id == user_id, Notification.in_app
    )
    if unread_only:
        statement = statement.where(Notification.read_at.is_(None))
    if after is not None:
        statement = statement.where(after_in_newest_first(Notification, after))
    statement = statement.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


async def unread_count(session: AsyncSession, scope: TenantScope, user_id: uuid.UUID) -> int:
    statement = scoped(select(func.count()), Notification, scope).where(
        Notification.user_id == user_id, Notification.in_app, Notification.read_at.is_(None)
    )
    return int((await session.execute(statement)).scalar_one())


async def preference_of(
    session: AsyncSession, scope: TenantScope, *, user_id: uuid.UUID | None, account_id: uuid.UUID | None
) -> NotificationPreference | None:
    """A user's own preference (``user_id``) or an account's default for its users (``account_id``)."""
    owner = (
        NotificationPreference.user_id == user_id
        if user_id is not None
        else NotificationPreference.account_id == account_id
    )
    statement = scoped(select(NotificationPreference), NotificationPreference, TenantScope(scope.tenant_id))
    return (await session.execute(statement.where(owner))).scalar_one_or_none()


async def all_preferences(session: AsyncSession, scope: TenantScope) -> list[NotificationPreference]:
    statement = scoped(select(NotificationPreference), NotificationPreference, TenantScope(scope.tenant_id))
    return list((await session.execute(statement)).scalars())


async def endpoints(session: AsyncSession, scope: TenantScope) -> list[WebhookEndpoint]:
    """The endpoints the scope manages, oldest first: a tenant's all, a shipper account's its own."""
    statement = scoped(select(WebhookEndpoint), WebhookEndpoint, scope).order_by(
        WebhookEndpoint.created_at, WebhookEndpoint.id
    )
    return list((await session.execute(statement)).scalars())


async def endpoint(
    session: AsyncSession, scope: TenantScope, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint | None:
    statement = scoped(select(WebhookEndpoint), WebhookEndpoint, scope).where(
        WebhookEndpoint.id == endpoint_id
    )
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def deliveries_page(
    session: AsyncSession, scope: TenantScope, endpoint_id: uuid.UUID, *, after: PageKey | None, limit: int
) -> list[WebhookDelivery]:
    """Up to ``limit`` of an endpoint's deliveries, newest first, after ``after``."""
    statement = scoped(select(WebhookDelivery), WebhookDelivery, scope).where(
        WebhookDelivery.endpoint_id == endpoint_id
    )
    if after is not None:
        statement = statement.where(after_in_newest_first(WebhookDelivery, after))
    statement = statement.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


async def delivery(
    session: AsyncSession, scope: TenantScope, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    statement = scoped(select(WebhookDelivery), WebhookDelivery, scope).where(
        WebhookDelivery.id == delivery_id
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def attempts_by_delivery(
    session: AsyncSession, scope: TenantScope, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    """Each delivery's attempts, oldest first (one query). The caller passes deliveries the scope can see:
    attempts carry no account of their own."""
    statement = (
        scoped(select(WebhookAttempt), WebhookAttempt, TenantScope(scope.tenant_id))
        .where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempted_at, WebhookAttempt.id)
    )
    found: dict[uuid.UUID, list[WebhookAttempt]] = {}
    for row in (await session.execute(statement)).scalars():
        found.setdefault(row.delivery_id, []).append(row)
    return found


async def templates(session: AsyncSession, scope: TenantScope) -> dict[str, EmailTemplate]:
    """The tenant's template overrides by key."""
    rows = await session.execute(scoped(select(EmailTemplate), EmailTemplate, scope))
    return {row.key: row for row in rows.scalars()}


async def template(session: AsyncSession, scope: TenantScope, key: str) -> EmailTemplate | None:
    statement = scoped(select(EmailTemplate), EmailTemplate, scope).where(EmailTemplate.key == key)
    return (await session.execute(statement)).scalar_one_or_none()


async def branding(session: AsyncSession, scope: TenantScope) -> MailBranding | None:
    return (await session.execute(scoped(select(MailBranding), MailBranding, scope))).scalar_one_or_none()
