"""Periodic jobs (sweeps), run by the background loop next to the outbox dispatcher.

Register a job where it belongs, in a module listed in ``workers.broker.ACTOR_MODULES``::

    @periodic("exceptions.sweep", every_seconds=60)
    async def sweep(sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> None: ...

The job gets the session factory (it opens its own transactions: a ``system_transaction`` to list
tenants, then a ``scoped_transaction`` per tenant) and ``now``. It runs when the process starts leading
and then every ``every_seconds``; a failure is logged and the job runs again at its next turn.

However many processes run the loop (each ``milepost serve``, each ``milepost worker`` command), one of
them leads at a time: the one holding a PostgreSQL advisory lock on a connection of its own. When it
stops or dies, its connection closes, the lock goes with it, and another process takes over at its next
tick. So a job runs about once per interval across the deployment; it must still be safe to run twice
(a new leader starts its jobs at once).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from domain.columns import utcnow
from domain.db import TenantScope, scoped_transaction
from workers.broker import current_broker

log = structlog.get_logger("milepost.scheduler")

JobFunction = Callable[[async_sessionmaker[AsyncSession], dt.datetime], Awaitable[None]]

# the advisory lock whose holder runs the periodic jobs (locks are per database)
LEADER_LOCK = 0x6D696C65706F7374  # "milepost"


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    name: str
    every: dt.timedelta
    run: JobFunction


_jobs: dict[str, PeriodicJob] = {}


def register_job(name: str, every_seconds: float, fn: JobFunction) -> PeriodicJob:
    """Run ``fn(sessions, now)`` every ``every_seconds`` in the leading background loop."""
    if every_seconds <= 0:
        raise ValueError(f"job {name}: every_seconds must be positive, got {every_seconds}")
    registered = _jobs.get(name)
    if registered is not None and registered.run is not fn:
        raise ValueError(f"a periodic job named {name!r} is already registered")
    job = PeriodicJob(name, dt.timedelta(seconds=every_seconds), fn)
    _jobs[name] = job
    return job


def periodic(name: str, *, every_seconds: float) -> Callable[[JobFunction], JobFunction]:
    """Decorator form of :func:`register_job`."""

    def register(fn: JobFunction) -> JobFunction:
        register_job(name, every_seconds, fn)
        return fn

    return register


def registered_jobs() -> list[PeriodicJob]:
    return list(_jobs.values())


class Scheduler:
    """Runs ``jobs`` when they are due, while this process leads (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        jobs: Sequence[PeriodicJob],
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        lock_key: int = LEADER_LOCK,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.jobs = list(jobs)
        self.clock = clock
        self.lock_key = lock_key
        self._leader: AsyncConnection | None = None
        self._next_run: dict[str, dt.datetime] = {}

    async def tick(self) -> list[str]:
        """Run the jobs that are due, if this process leads; returns their names."""
        if not self.jobs or not await self._lead():
            return []
        ran = []
        for job in self.jobs:
            now = self.clock()
            if self._next_run.get(job.name, now) > now:
                continue
            self._next_run[job.name] = now + job.every
            ran.append(job.name)
            try:
                await job.run(self.sessions, now)
            except Exception:
                log.exception("periodic job failed", job=job.name)
        return ran

    async def _lead(self) -> bool:
        if self._leader is not None:
            try:
                await self._leader.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("lost the scheduler's lock connection; trying to lead again")
                await self.close()
        connection = await self.engine.connect()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            held = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.lock_key})
        except BaseException:
            await connection.close()
            raise
        if not held:
            await connection.close()
            return False
        log.info("leading the periodic jobs", jobs=[job.name for job in self.jobs])
        self._leader, self._next_run = connection, {}
        return True

    async def close(self) -> None:
        """Stop leading: the lock ends with its connection."""
        leader, self._leader = self._leader, None
        if leader is not None:
            # a broken connection has lost the lock already; closing it is all there is to do
            with contextlib.suppress(Exception):
                await leader.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.lock_key})
            with contextlib.suppress(Exception):
                await leader.close()


async def send_where_due(
    sessions: async_sessionmaker[AsyncSession],
    tenant_ids: Iterable[uuid.UUID],
    due: Callable[[AsyncSession, TenantScope], Awaitable[bool]],
    job: Any,
) -> int:
    """Send ``job(tenant_id)`` to each tenant for which ``due`` (one indexed probe) says there is work."""
    sent = 0
    for tenant_id in tenant_ids:
        scope = TenantScope(tenant_id)
        async with scoped_transaction(sessions, scope) as session:
            has_work = await due(session, scope)
        if has_work:
            current_broker().enqueue(job.message(str(tenant_id)))
            sent += 1
    return sent
