"""Periodic jobs: due times on an injected clock, failures, and one leading process at a time."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from workers.scheduler import PeriodicJob, Scheduler, periodic, register_job

T0 = dt.datetime(2026, 11, 21, 8, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def lock_key() -> int:
    return random.randint(1, 2**62)  # noqa: S311 - a test's own advisory lock, not a secret


async def test_jobs_run_when_due_and_a_failure_waits_for_the_next_turn(
    app_engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    seen: list[tuple[str, dt.datetime]] = []

    async def sweep(given: async_sessionmaker[AsyncSession], now: dt.datetime) -> None:
        assert given is sessions
        seen.append(("sweep", now))

    async def broken(_sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> None:
        seen.append(("broken", now))
        raise RuntimeError("the sweep's query timed out")

    clock = Clock()
    scheduler = Scheduler(
        app_engine,
        sessions,
        [
            PeriodicJob("sweep", dt.timedelta(seconds=60), sweep),
            PeriodicJob("broken", dt.timedelta(seconds=90), broken),
        ],
        clock=clock,
        lock_key=lock_key(),
    )
    try:
        assert await scheduler.tick() == ["sweep", "broken"]
        clock.now = T0 + dt.timedelta(seconds=59)
        assert await scheduler.tick() == []
        clock.now = T0 + dt.timedelta(seconds=60)
        assert await scheduler.tick() == ["sweep"]
        clock.now = T0 + dt.timedelta(seconds=100)
        assert await scheduler.tick() == ["broken"]
    finally:
        await scheduler.close()
    assert seen == [
        ("sweep", T0),
        ("broken", T0),
        ("sweep", T0 + dt.timedelta(seconds=60)),
        ("broken", T0 + dt.timedelta(seconds=100)),
    ]


async def test_one_process_leads_and_another_takes_over_when_it_stops(
    app_engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ran: list[str] = []

    def job(name: str) -> PeriodicJob:
        async def run(_sessions: async_sessionmaker[AsyncSession], _now: dt.datetime) -> None:
            ran.append(name)

        return PeriodicJob("sweep", dt.timedelta(seconds=60), run)

    key = lock_key()
    first = Scheduler(app_engine, sessions, [job("first")], clock=Clock(), lock_key=key)
    second = Scheduler(app_engine, sessions, [job("second")], clock=Clock(), lock_key=key)
    try:
        assert await first.tick() == ["sweep"]
        assert await second.tick() == []
        await first.close()
        assert await second.tick() == ["sweep"]
        assert await first.tick() == []
    finally:
        await first.close()
        await second.close()
    assert ran == ["first", "second"]


def test_a_job_name_is_registered_once() -> None:
    @periodic("test.once", every_seconds=60)
    async def once(_sessions: async_sessionmaker[AsyncSession], _now: dt.datetime) -> None:
        return None

    register_job("test.once", 60, once)  # the same function again is fine (a module imported twice)
    with pytest.raises(ValueError, match=r"a periodic job named 'test\.once' is already registered"):
        register_job("test.once", 60, _other)
    with pytest.raises(ValueError, match=r"job test\.never: every_seconds must be positive, got 0"):
        register_job("test.never", 0, _other)


async def _other(_sessions: async_sessionmaker[AsyncSession], _now: dt.datetime) -> None:
    return None
