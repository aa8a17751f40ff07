"""Broker selection, and real messages through Redis, RabbitMQ and the in-process broker (the brokers come
from tests/workers/conftest.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, CurrentMessage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db import TenantScope, scoped, scoped_transaction
from domain.jobs.service import replay_dead_letter
from domain.shipments.models import Milestone, MilestoneCode
from domain.shipments.service import PlannedMilestone, ShipmentDraft, create_shipment
from domain.tracking.service import NewEvent, record_event
from milepost.database import Database, libpq_url
from milepost.settings import Settings
from tests.factories import make_account, make_tenant
from tests.workers.support import add_dead_letter
from workers import broker as broker_module
from workers.actors import advance_feed
from workers.broker import WorkerDatabase, actor, create_broker, current_broker, start_in_process_worker

# -- selection ----------------------------------------------------------------------------------------


def test_no_broker_url_gives_the_in_process_broker() -> None:
    broker = create_broker(None)
    assert type(broker) is StubBroker
    names = [type(m).__name__ for m in broker.middleware]
    assert names == [
        "AgeLimit",
        "TimeLimit",
        "ShutdownNotifications",
        "Callbacks",
        "Pipelines",
        "JobRetries",
        "AsyncIO",
        "CurrentMessage",
        "WorkerDatabase",
    ]


def test_amqp_gives_rabbitmq_with_publisher_confirms() -> None:
    broker = create_broker("amqp://guest:guest@rabbit.example:5672/%2F")
    assert type(broker) is RabbitmqBroker
    assert broker.confirm_delivery is True
    assert broker.parameters.host == "rabbit.example"
    assert any(isinstance(m, AsyncIO) for m in broker.middleware)


def test_redis_gives_redis() -> None:
    broker = create_broker("redis://redis.example:6380/3")
    assert type(broker) is RedisBroker
    assert broker.client.connection_pool.connection_kwargs["host"] == "redis.example"
    assert broker.client.connection_pool.connection_kwargs["db"] == 3
    assert any(isinstance(m, CurrentMessage) for m in broker.middleware)


def test_any_other_url_is_refused() -> None:
    with pytest.raises(ValueError, match=r"must be an amqp:// \(RabbitMQ\) or redis:// URL, got 'kafka://k'"):
        create_broker("kafka://k")


def test_actor_names_are_concept_dot_verb() -> None:
    with pytest.raises(ValueError, match=r"actor names are <concept>\.<verb>, got 'advance'"):
        actor("advance")
    with pytest.raises(ValueError, match=r"actor demo\.x: unknown option\(s\) retries_please"):
        actor("demo.x", retries_please=1)(_noop)


async def _noop() -> None:
    return None


def test_the_demo_actor_is_declared_on_the_current_broker() -> None:
    assert advance_feed.actor_name == "demo.advance_feed"
    assert advance_feed.queue_name == "demo"
    assert advance_feed.broker is current_broker()
    assert current_broker().get_actor("demo.advance_feed") is advance_feed


def test_install_rebinds_declared_actors_to_the_new_broker() -> None:
    previous = current_broker()
    replacement = create_broker(None)
    try:
        assert broker_module.install(replacement) is replacement
        assert advance_feed.broker is replacement
        assert replacement.get_actor("demo.advance_feed") is advance_feed
        assert dramatiq.get_broker() is replacement
    finally:
        broker_module.install(previous)
    assert advance_feed.broker is previous


# -- round trips --------------------------------------------------------------------------------------


class Recorder:
    """An async actor on its own queue that records what it received, on which thread and message."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.queue = f"test-{uuid.uuid4().hex[:12]}"
        self.received: list[tuple[str, list[str], str]] = []
        self.threads: set[str] = set()
        self.done = threading.Event()

        async def record(tenant_id: str, ids: list[str]) -> None:
            await asyncio.sleep(0)  # a real coroutine, on the worker's event loop
            message = CurrentMessage.get_current_message()
            assert message is not None
            self.received.append((tenant_id, ids, message.message_id))
            self.threads.add(threading.current_thread().name)
            self.done.set()

        self.actor: dramatiq.Actor[[str, list[str]], None] = dramatiq.Actor(
            record,
            broker=broker,
            actor_name=f"test.record_{self.queue[5:]}",
            queue_name=self.queue,
            priority=0,
            options={},
        )

    def round_trip(self, broker: dramatiq.Broker) -> None:
        worker = start_in_process_worker(broker, threads=1)
        try:
            message = self.actor.send("tenant-1", ["a", "b"])
            assert self.done.wait(timeout=15), (
                f"the message did not come back through {type(broker).__name__}"
            )
        finally:
            worker.stop()
        assert self.received == [("tenant-1", ["a", "b"], message.message_id)]
        assert len(self.threads) == 1
        assert self.threads != {threading.current_thread().name}


def test_a_message_round_trip_through_redis(redis_broker: dramatiq.Broker) -> None:
    Recorder(redis_broker).round_trip(redis_broker)


def test_a_message_round_trip_through_rabbitmq(rabbitmq_broker: dramatiq.Broker) -> None:
    Recorder(rabbitmq_broker).round_trip(rabbitmq_broker)


def test_a_message_round_trip_in_process() -> None:
    broker = create_broker(None)
    Recorder(broker).round_trip(broker)


def test_the_worker_database_is_released_when_the_worker_stops(
    settings: Settings, database: Database
) -> None:
    broker = create_broker(None)
    context = broker_module.configure_workers(settings, database.app_url)
    engines: list[object] = []

    async def touch() -> None:
        async with context.sessions()() as session:
            await session.execute(select(1))
        engines.append(context._engine)

    dramatiq.Actor(touch, broker=broker, actor_name="test.touch", queue_name="touch", priority=0, options={})
    worker = start_in_process_worker(broker, threads=1)
    try:
        broker.enqueue(broker.get_actor("test.touch").message())
        broker.join("touch", timeout=15_000, fail_fast=True)
        assert engines[0] is not None
        assert context._engine is engines[0]
    finally:
        worker.stop()
    assert context._engine is None  # disposed on its own loop before that loop stopped
    assert any(isinstance(m, WorkerDatabase) for m in broker.middleware)


# -- `milepost worker` --------------------------------------------------------------------------------


def test_milepost_worker_refuses_to_start_without_a_broker_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER_URL", "MILEPOST_BROKER_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "milepost.cli", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr == (
        "milepost worker needs BROKER_URL; without one, `milepost serve`/`demo` run workers in-process\n"
    )


@pytest.mark.slow
async def test_milepost_worker_dispatches_the_outbox_and_its_processes_run_the_actor_through_redis(
    redis_url: str, database: Database, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """The job reaches the worker the way every job does: an outbox row (here a dead letter's replay),
    dispatched by the command's own background loop to Redis, run by a dramatiq child process."""
    base = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    async with sessions() as session, session.begin():
        tenant = await make_tenant(session)
        account = await make_account(session, tenant)
        scope = TenantScope(tenant.id)
        shipment = await create_shipment(
            session,
            scope,
            ShipmentDraft(
                account_id=account.id,
                mode="parcel",
                milestones=[
                    PlannedMilestone(code=MilestoneCode.BOOKED, planned_at=base - dt.timedelta(hours=5)),
                    PlannedMilestone(code=MilestoneCode.PICKED_UP, planned_at=base - dt.timedelta(hours=2)),
                ],
            ),
        )
        for milestone_code, at in [
            (MilestoneCode.BOOKED, base - dt.timedelta(hours=5)),
            (MilestoneCode.PICKED_UP, base - dt.timedelta(minutes=10)),
        ]:
            await record_event(
                session,
                scope,
                shipment.id,
                NewEvent(
                    source="test",
                    classifier="ACT" if milestone_code == "BOOKED" else "EST",
                    milestone_code=milestone_code,
                    occurred_at=at,
                ),
            )

    env = {k: v for k, v in os.environ.items() if k not in ("APP_DATABASE_URL", "MILEPOST_APP_DATABASE_URL")}
    env |= {
        "BROKER_URL": redis_url,
        "DATABASE_URL": libpq_url(database.owner_url),
        "MILEPOST_DATA_DIR": str(tmp_path / "data"),
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "milepost.cli", "worker", "--processes", "1", "--threads", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a hung run can be cleaned up with its dramatiq children
        )
        try:
            dead_letter = await add_dead_letter(
                sessions, scope, actor_name="demo.advance_feed", ids=[str(shipment.id)]
            )
            async with scoped_transaction(sessions, scope) as session:
                await replay_dead_letter(session, scope, dead_letter.id, now=base)
            actual = None
            deadline = time.monotonic() + 60
            while actual is None and time.monotonic() < deadline and process.returncode is None:
                await asyncio.sleep(0.3)
                async with scoped_transaction(sessions, scope) as session:
                    actual = (
                        await session.execute(
                            scoped(select(Milestone.actual_at), Milestone, scope).where(
                                Milestone.shipment_id == shipment.id, Milestone.code == "PICKED_UP"
                            )
                        )
                    ).scalar_one()
            assert actual == base - dt.timedelta(minutes=10), log_path.read_text()
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            try:
                code = await asyncio.wait_for(process.wait(), timeout=60)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                raise
    output = log_path.read_text()
    assert code == 0, output
    assert "Traceback" not in output
