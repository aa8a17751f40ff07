"""The background loop every long-running ``milepost`` process hosts once: the outbox dispatcher and the
periodic jobs (``workers.scheduler``), polling every ``MILEPOST_OUTBOX_POLL_MS``.

``milepost serve`` runs it as a background task (with or without ``BROKER_URL``); ``milepost worker``
runs it in the command's own process, once, next to the ``dramatiq`` worker processes it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.db import TenantScope, scoped_transaction, system_transaction
from domain.outbox.service import purge_dispatched
from domain.tenancy.repository import all_tenant_ids
from milepost.settings import Settings
from workers.dispatcher import Dispatcher
from workers.scheduler import JobFunction, PeriodicJob, Scheduler, registered_jobs

log = structlog.get_logger("milepost.background")

PURGE_EVERY_SECONDS = 300
PURGE_BATCH = 1_000


def outbox_purge(retention: dt.timedelta, batch: int = PURGE_BATCH) -> JobFunction:
    """A periodic job: delete dispatched outbox rows older than ``retention``, ``batch`` rows per
    transaction (short transactions, short locks)."""

    async def purge(sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> None:
        async with system_transaction(sessions) as session:
            tenant_ids = await all_tenant_ids(session)
        deleted = 0
        for tenant_id in tenant_ids:
            scope = TenantScope(tenant_id)
            while True:
                async with scoped_transaction(sessions, scope) as session:
                    count = await purge_dispatched(session, scope, now - retention, batch)
                deleted += count
                if count < batch:
                    break
        if deleted:
            log.info("dispatched outbox rows purged", rows=deleted)

    return purge


def background_jobs(settings: Settings) -> list[PeriodicJob]:
    purge = outbox_purge(dt.timedelta(days=settings.outbox_retention_days))
    return [PeriodicJob("outbox.purge", dt.timedelta(seconds=PURGE_EVERY_SECONDS), purge), *registered_jobs()]


async def run_background(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    stopping: asyncio.Event,
) -> None:
    """Dispatch the outbox and run the periodic jobs until ``stopping`` is set."""
    dispatcher = Dispatcher(sessions, batch_size=settings.outbox_batch_size)
    scheduler = Scheduler(engine, sessions, background_jobs(settings))
    interval = settings.outbox_poll_ms / 1000
    log.info("background loop started", poll_ms=settings.outbox_poll_ms)
    try:
        await asyncio.gather(
            _every(interval, stopping, "outbox dispatch", dispatcher.dispatch_all),
            _every(interval, stopping, "periodic jobs", scheduler.tick),
        )
    finally:
        await scheduler.close()
        log.info("background loop stopped")


async def _every(
    interval: float, stopping: asyncio.Event, what: str, step: Callable[[], Awaitable[object]]
) -> None:
    while not stopping.is_set():
        try:
            await step()
        except Exception:
            # a database or broker hiccup costs one round, not the loop
            log.exception("background step failed", step=what)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)
