"""Notification actors: the fan-out of exception changes, the senders of what is due (webhooks, e-mail)
and the digest. The network adapters (httpx, aiosmtplib) live here; the decisions live in domain.notify."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib
import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.columns import utcnow
from domain.db import TenantScope, scoped, scoped_transaction, system_transaction
from domain.notify import service
from domain.notify.models import EmailMessage as EmailRow
from domain.notify.models import Notification, WebhookDelivery
from domain.notify.rules import forbidden_address
from domain.tenancy.repository import all_tenant_ids
from domain.workflow import topics
from milepost.settings import Settings
from workers.broker import actor, current_broker, worker_context
from workers.dispatcher import Send, register_route
from workers.scheduler import periodic, send_where_due

log = structlog.get_logger("milepost.notify")

SEND_EVERY_SECONDS = 15
DIGEST_EVERY_SECONDS = 3600
PAYLOADS_PER_MESSAGE = 100
# rounds per run while they come back full; none starts after the window, so a run (a round is at most
# two send budgets and two timeouts) ends well inside the actor's 300 s time limit
SEND_ROUNDS = 3
SEND_WINDOW_SECONDS = 60


def _fan_out_route(topic: str) -> Any:
    def route(tenant_id: uuid.UUID, payloads: list[dict[str, Any]]) -> list[Send]:
        return [
            Send("notify.fan_out", (str(tenant_id), topic, payloads[start : start + PAYLOADS_PER_MESSAGE]))
            for start in range(0, len(payloads), PAYLOADS_PER_MESSAGE)
        ]

    return route


for _topic in topics.ALL_TOPICS:
    register_route(_topic, _fan_out_route(_topic))


@actor("notify.fan_out", queue_name="notify", max_attempts=5, min_backoff=1_000, time_limit=120_000)
async def fan_out(tenant_id: str, topic: str, payloads: list[dict[str, Any]]) -> None:
    """Notifications, e-mails and webhook deliveries for these changes (ids and codes only; the rows are
    reloaded). Idempotent on each payload's outbox id."""
    context = worker_context()
    scope = TenantScope(uuid.UUID(tenant_id))
    async with scoped_transaction(context.sessions(), scope) as session:
        for payload in payloads:
            await service.fan_out(
                session, scope, topic, payload, public_url=context.settings.public_url, now=utcnow()
            )
    current_broker().enqueue(send.message(tenant_id))  # deliver now rather than at the next tick


@actor("notify.send", queue_name="notify", max_attempts=3, min_backoff=1_000, time_limit=300_000)
async def send(tenant_id: str) -> None:
    """Send this tenant's due webhook deliveries and e-mails: a few rounds while rounds come back full (the
    periodic probe sends this again for the rest)."""
    context = worker_context()
    started = time.monotonic()
    for _ in range(SEND_ROUNDS):
        hooks, mails = await send_due(
            context.sessions(), context.settings, TenantScope(uuid.UUID(tenant_id)), clock=utcnow
        )
        full = max(hooks.attempted + hooks.deferred, mails.attempted + mails.deferred) >= service.CLAIM_LIMIT
        if not full or time.monotonic() - started > SEND_WINDOW_SECONDS:
            return


async def send_due(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    scope: TenantScope,
    *,
    clock: Callable[[], dt.datetime],
    resolve: Resolver | None = None,
) -> tuple[service.SendReport, service.SendReport]:
    """One round: claim what is due (a transaction), send it (none open), record what happened (another).
    A crash between the two leaves the rows claimed until their lease ends; then they go again."""
    development = settings.environment == "development"
    async with scoped_transaction(sessions, scope) as session:
        requests = await service.claim_due_webhooks(session, scope, now=clock())
    async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False) as client:
        poster = http_poster(client, allow_private=development, resolve=resolve)
        outcomes = await service.post_webhooks(requests, poster, clock=clock)
    async with scoped_transaction(sessions, scope) as session:
        hooks = await service.record_webhook_outcomes(
            session, scope, requests, outcomes, now=clock(), disable_after=settings.webhook_disable_after
        )
    async with scoped_transaction(sessions, scope) as session:
        mails = await service.claim_due_emails(session, scope, sender=settings.smtp_from, now=clock())
    sent = await service.send_emails(mails, mailer(settings))
    async with scoped_transaction(sessions, scope) as session:
        mail_report = await service.record_email_outcomes(session, scope, mails, sent, now=clock())
    return hooks, mail_report


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def http_poster(
    client: httpx.AsyncClient, *, allow_private: bool = False, resolve: Resolver | None = None
) -> service.Poster:
    """POST with httpx. Outside development a host that resolves to a private, loopback or link-local
    address is refused before connecting (the URL was checked when written; this catches names that point
    inside). A name that changes its answer between this look-up and the connection is not caught."""
    look_up = resolve or _resolve

    async def post(url: str, body: bytes, headers: Mapping[str, str]) -> service.HttpAnswer:
        if not allow_private:
            refused = await _private_target(url, look_up)
            if refused:
                return service.HttpAnswer(None, error=refused)
        try:
            response = await client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as error:
            return service.HttpAnswer(None, error=f"{type(error).__name__}: {error}"[:500])
        return service.HttpAnswer(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            response.text[:500],
        )

    return post


async def _private_target(url: str, resolve: Resolver) -> str | None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        addresses = await resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError as error:
        return f"cannot resolve {host}: {error}"[:500]
    for address in addresses:
        if forbidden_address(ipaddress.ip_address(address.split("%")[0])):
            return f"refused: {host} resolves to {address}, a private or local address"
    return None


def mailer(settings: Settings) -> service.Mailer:
    """Send through ``MILEPOST_SMTP_HOST``; without one, write the mail to the log (development, demo)."""

    async def deliver(message: EmailMessage) -> None:
        if settings.smtp_host is None:
            log.debug("mail (no SMTP host: logged, not sent)", to=message["To"], subject=message["Subject"])
            return
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            start_tls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=30,
        )

    return deliver


@actor("notify.digest", queue_name="notify", max_attempts=3, min_backoff=1_000, time_limit=300_000)
async def digest(tenant_id: str) -> None:
    scope = TenantScope(uuid.UUID(tenant_id))
    async with scoped_transaction(worker_context().sessions(), scope) as session:
        await service.queue_digests(session, scope, now=utcnow())


@periodic("notify.schedule_sends", every_seconds=SEND_EVERY_SECONDS)
async def schedule_sends(sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> None:
    """``notify.send`` for every tenant with a delivery or an e-mail due (retries come due here)."""
    async with system_transaction(sessions) as session:
        tenants = await all_tenant_ids(session)
    await send_where_due(sessions, tenants, _sends_due(now), send)


@periodic("notify.schedule_digests", every_seconds=DIGEST_EVERY_SECONDS)
async def schedule_digests(sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> None:
    async with system_transaction(sessions) as session:
        tenants = await all_tenant_ids(session)
    await send_where_due(sessions, tenants, _digests_due, digest)


def _sends_due(now: dt.datetime) -> Any:
    async def due(session: AsyncSession, scope: TenantScope) -> bool:
        hook = scoped(select(WebhookDelivery.id), WebhookDelivery, scope).where(
            WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now
        )
        mail = scoped(select(EmailRow.id), EmailRow, scope).where(
            EmailRow.status == "pending", EmailRow.next_attempt_at <= now
        )
        return any([(await session.execute(q.limit(1))).first() is not None for q in (hook, mail)])

    return due


async def _digests_due(session: AsyncSession, scope: TenantScope) -> bool:
    pending = scoped(select(Notification.id), Notification, scope).where(Notification.digest_pending)
    return (await session.execute(pending.limit(1))).first() is not None
