"""Our attempt counter, backoff and dead letters, with a real worker and database; replays."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db import TenantScope, scoped_transaction
from domain.jobs.models import DeadLetter
from domain.jobs.service import AlreadyReplayed, list_dead_letters, replay_dead_letter
from milepost.database import Database
from milepost.settings import Settings
from tests.workers.support import JobRecorder, new_tenant, only, poll
from workers.broker import configure_workers, create_broker, start_in_process_worker
from workers.dispatcher import Dispatcher
from workers.retries import backoff_ms, describe_error, message_tenant


def test_backoff_doubles_up_to_the_cap_and_jitters_in_the_upper_half() -> None:
    assert [backoff_ms(attempt, 100, 1_000, jitter=1.0) for attempt in range(1, 7)] == [
        100,
        200,
        400,
        800,
        1_000,
        1_000,
    ]
    assert [backoff_ms(attempt, 100, 1_000, jitter=0.0) for attempt in range(1, 7)] == [
        50,
        100,
        200,
        400,
        500,
        500,
    ]
    assert backoff_ms(1, 1, 10, jitter=0.0) == 1  # never zero


def test_the_tenant_is_the_tenant_id_keyword_or_the_first_argument() -> None:
    tenant = uuid.uuid4()
    assert message_tenant([str(tenant), ["a"]], {}) == tenant
    assert message_tenant(["x"], {"tenant_id": str(tenant)}) == tenant
    assert message_tenant([], {}) is None
    assert message_tenant(["not-a-uuid"], {}) is None


def test_an_error_is_described_by_type_message_and_innermost_frames() -> None:
    def fail() -> None:
        raise KeyError("BK-1")

    try:
        fail()
    except KeyError as error:
        text = describe_error(error)
    assert text.startswith("KeyError: 'BK-1'\n\nTraceback (most recent call last):\n")
    assert 'in fail\n    raise KeyError("BK-1")' in text
    assert len(describe_error(RuntimeError("x" * 10_000))) == 4_000


async def _pending(sessions: async_sessionmaker[AsyncSession], scope: TenantScope) -> list[DeadLetter] | None:
    async with scoped_transaction(sessions, scope) as session:
        found = await list_dead_letters(session, scope, limit=10)
    return found or None


async def test_a_failing_job_is_retried_with_growing_backoff_then_dead_lettered_and_replayed(
    settings: Settings, database: Database, sessions: async_sessionmaker[AsyncSession]
) -> None:
    broker = create_broker(None)
    configure_workers(settings, database.app_url)
    recorder = JobRecorder(broker, max_attempts=3, min_backoff=20, max_backoff=10_000)
    recorder.failing.set()
    scope, bystander = await new_tenant(sessions), await new_tenant(sessions)
    worker = start_in_process_worker(broker, threads=1)
    try:
        message = recorder.actor.send(str(scope.tenant_id), ["s1"])
        [dead_letter] = await poll(lambda: _pending(sessions, scope))
        runs = list(recorder.runs)
        assert [(run.message_id, run.attempt) for run in runs] == [(message.message_id, n) for n in (1, 2, 3)]
        first_wait, second_wait = runs[1].backoff_ms, runs[2].backoff_ms
        assert runs[0].backoff_ms is None
        assert first_wait is not None
        assert second_wait is not None
        assert 10 <= first_wait <= 20 <= second_wait <= 40
        assert (
            dead_letter.actor_name,
            dead_letter.queue_name,
            dead_letter.message_id,
            dead_letter.args,
            dead_letter.kwargs,
            dead_letter.attempts,
            dead_letter.replayed_at,
        ) == (recorder.name, recorder.queue, message.message_id, [str(scope.tenant_id), ["s1"]], {}, 3, None)
        assert dead_letter.error.startswith("RuntimeError: the carrier's API said no\n\nTraceback")
        assert await _pending(sessions, bystander) is None

        recorder.failing.clear()
        async with scoped_transaction(sessions, scope) as session:
            replayed = await replay_dead_letter(session, scope, dead_letter.id, now=dead_letter.failed_at)
        assert await Dispatcher(sessions, broker=broker, tenant_ids=only(scope)).dispatch_all() == 1
        runs = await recorder.wait_for_runs(4)
    finally:
        worker.stop()
    assert (runs[3].message_id, runs[3].attempt, runs[3].ids) == (replayed.replay_message_id, 1, ["s1"])
    assert await _pending(sessions, scope) is None
    async with scoped_transaction(sessions, scope) as session:
        with pytest.raises(AlreadyReplayed, match=rf"dead letter {dead_letter.id} was already replayed at"):
            await replay_dead_letter(session, scope, dead_letter.id, now=dead_letter.failed_at)


async def test_a_message_without_a_tenant_goes_to_the_brokers_own_dead_letters(
    settings: Settings, database: Database
) -> None:
    broker = create_broker(None)
    configure_workers(settings, database.app_url)
    recorder = JobRecorder(broker, max_attempts=1)
    recorder.failing.set()
    worker = start_in_process_worker(broker, threads=1)
    try:
        message = recorder.actor.send("no-tenant-here", ["s1"])
        broker.join(recorder.queue, timeout=30_000, fail_fast=False)
    finally:
        worker.stop()
    assert [m.message_id for m in broker.dead_letters] == [message.message_id]  # type: ignore[attr-defined]
