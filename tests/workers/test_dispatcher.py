"""The outbox dispatcher against the real database and real brokers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import asyncpg
import dramatiq
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.db import apply_scope, scoped_transaction
from domain.outbox.rules import CHANGES_CHANNEL, change_notifications
from domain.outbox.service import publish
from milepost.database import Database, libpq_url
from milepost.settings import Settings
from tests.workers.support import (
    JobRecorder,
    new_tenant,
    new_topic,
    only,
    outbox_ids,
    queued,
    write_outbox,
)
from workers import broker as broker_module
from workers.background import outbox_purge, run_background
from workers.broker import create_broker, current_broker, start_in_process_worker
from workers.dispatcher import Dispatcher, Send, id_batches, register_route, route, route_ids, routes_of
from workers.scheduler import register_job


def payloads(*shipment_ids: str) -> list[dict[str, Any]]:
    return [{"shipment_id": shipment_id, "status": "IN_TRANSIT"} for shipment_id in shipment_ids]


def test_id_batches_keep_first_seen_order_without_repeats() -> None:
    rows = payloads("a", "b", "a", "c", "d", "b", "e")
    assert id_batches(rows, "shipment_id", size=2) == [["a", "b"], ["c", "d"], ["e"]]
    assert id_batches([], "shipment_id") == []


def test_a_topic_may_have_a_route_per_consumer() -> None:
    topic = new_topic()
    first = route_ids(topic, "test.one", key="shipment_id")
    register_route(topic, first)  # the same route again is added once (a module imported twice)
    second = route_ids(topic, "test.two", key="shipment_id")
    assert routes_of(topic) == (first, second)


@pytest.mark.parametrize("kind", ["in-process", "redis", "rabbitmq"])
async def test_committed_outbox_rows_reach_the_actor_through_the_broker(
    kind: str, request: pytest.FixtureRequest, sessions: async_sessionmaker[AsyncSession]
) -> None:
    broker: dramatiq.Broker = (
        create_broker(None)
        if kind == "in-process"
        else request.getfixturevalue(f"{kind.replace('-', '')}_broker")
    )
    recorder = JobRecorder(broker)
    topic = new_topic()
    route_ids(topic, recorder.name, key="shipment_id", per_message=2)
    scope = await new_tenant(sessions)
    shipments = [str(uuid.uuid4()) for _ in range(3)]
    await write_outbox(sessions, scope, topic, payloads(*shipments, shipments[0]))

    assert await Dispatcher(sessions, broker=broker, tenant_ids=only(scope)).dispatch_all() == 4
    worker = start_in_process_worker(broker, threads=1)
    try:
        runs = await recorder.wait_for_runs(2)
    finally:
        worker.stop()
    assert sorted((run.tenant_id, run.ids) for run in runs) == sorted(
        [(str(scope.tenant_id), shipments[:2]), (str(scope.tenant_id), shipments[2:])]
    )
    async with scoped_transaction(sessions, scope) as session:
        assert await outbox_ids(session, scope, topic, pending=True) == []


async def test_rows_of_a_rolled_back_transaction_are_never_dispatched(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    broker = create_broker(None)
    recorder = JobRecorder(broker)
    topic = new_topic()
    route_ids(topic, recorder.name, key="shipment_id")
    scope = await new_tenant(sessions)
    async with sessions() as session, session.begin():
        await apply_scope(session, scope)
        await publish(session, scope, topic, {"shipment_id": "rolled-back"})
        await session.rollback()
    await write_outbox(sessions, scope, topic, payloads("committed"))

    assert await Dispatcher(sessions, broker=broker, tenant_ids=only(scope)).dispatch_all() == 1
    assert [message.args for message in queued(broker, recorder.queue)] == [
        (str(scope.tenant_id), ["committed"])
    ]


async def test_two_dispatchers_at_once_send_each_row_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    broker = create_broker(None)
    recorder = JobRecorder(broker)
    topic = new_topic()
    route_ids(topic, recorder.name, key="shipment_id", per_message=10)
    scope = await new_tenant(sessions)
    shipments = [f"s{n:04d}" for n in range(600)]
    await write_outbox(sessions, scope, topic, payloads(*shipments))

    first, second = (
        Dispatcher(sessions, broker=broker, batch_size=25, tenant_ids=only(scope)) for _ in range(2)
    )
    counts = await asyncio.gather(first.dispatch_all(), second.dispatch_all())

    assert sum(counts) == 600
    sent = [shipment for message in queued(broker, recorder.queue) for shipment in message.args[1]]
    assert sorted(sent) == shipments  # every row once: none twice, none missing


async def test_a_message_never_mixes_tenants(sessions: async_sessionmaker[AsyncSession]) -> None:
    broker = create_broker(None)
    recorder = JobRecorder(broker)
    topic = new_topic()
    route_ids(topic, recorder.name, key="shipment_id")
    mine, theirs = await new_tenant(sessions), await new_tenant(sessions)
    await write_outbox(sessions, mine, topic, payloads("m1", "m2"))
    await write_outbox(sessions, theirs, topic, payloads("t1"))
    await write_outbox(sessions, mine, topic, payloads("m3"))

    assert await Dispatcher(sessions, broker=broker, tenant_ids=only(mine, theirs)).dispatch_all() == 4
    assert sorted(message.args for message in queued(broker, recorder.queue)) == sorted(
        [(str(mine.tenant_id), ["m1", "m2", "m3"]), (str(theirs.tenant_id), ["t1"])]
    )


async def test_a_route_cannot_address_another_tenant(sessions: async_sessionmaker[AsyncSession]) -> None:
    broker = create_broker(None)
    recorder = JobRecorder(broker)
    topic = new_topic()
    addressee = [str(uuid.uuid4())]  # a stranger first, then the batch's own tenant

    @route(topic)
    def _addressed(_tenant_id: uuid.UUID, rows: list[dict[str, Any]]) -> list[Send]:
        return [Send(recorder.name, (addressee[0], ["x"]))]

    scope = await new_tenant(sessions)
    await write_outbox(sessions, scope, topic, payloads("x"))
    dispatcher = Dispatcher(sessions, broker=broker)
    with pytest.raises(ValueError, match=rf"without tenant {scope.tenant_id}"):
        await dispatcher.dispatch_tenant(scope.tenant_id)
    async with scoped_transaction(sessions, scope) as session:
        assert len(await outbox_ids(session, scope, topic, pending=True)) == 1
    assert queued(broker, recorder.queue) == []

    addressee[0] = str(scope.tenant_id)  # the route is fixed: the row goes out
    assert await dispatcher.dispatch_tenant(scope.tenant_id) == 1
    assert [message.args for message in queued(broker, recorder.queue)] == [(str(scope.tenant_id), ["x"])]


async def test_a_topic_without_a_route_is_marked_dispatched_not_retried(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    scope = await new_tenant(sessions)
    topic = new_topic()
    await write_outbox(sessions, scope, topic, [{"anything": 1}])
    dispatcher = Dispatcher(sessions, broker=create_broker(None), tenant_ids=only(scope))
    assert await dispatcher.dispatch_all() == 1
    assert await dispatcher.dispatch_all() == 0
    async with scoped_transaction(sessions, scope) as session:
        assert await outbox_ids(session, scope, topic, pending=True) == []


async def test_rows_stay_pending_while_the_broker_is_down_and_go_out_later(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    down = create_broker("redis://127.0.0.1:1/0")  # nothing listens on port 1
    up = create_broker(None)
    recorders = [JobRecorder(down), JobRecorder(up)]
    name = recorders[0].name
    dramatiq.Actor(
        recorders[0].actor.fn,
        broker=up,
        actor_name=name,
        queue_name=recorders[0].queue,
        priority=0,
        options={},
    )
    topic = new_topic()
    route_ids(topic, name, key="shipment_id")
    scope = await new_tenant(sessions)
    ids = await write_outbox(sessions, scope, topic, payloads("s1", "s2"))

    assert await Dispatcher(sessions, broker=down, tenant_ids=only(scope)).dispatch_all() == 0
    async with scoped_transaction(sessions, scope) as session:
        assert await outbox_ids(session, scope, topic, pending=True) == ids

    assert await Dispatcher(sessions, broker=up, tenant_ids=only(scope)).dispatch_all() == 2
    assert [message.args for message in queued(up, recorders[0].queue)] == [
        (str(scope.tenant_id), ["s1", "s2"])
    ]


async def test_each_batch_is_announced_by_notify_with_ids_only(
    sessions: async_sessionmaker[AsyncSession], database: Database
) -> None:
    scope = await new_tenant(sessions)
    topic = new_topic()
    route_ids(topic, JobRecorder(broker := create_broker(None)).name, key="shipment_id")
    ids = await write_outbox(sessions, scope, topic, payloads(*(f"s{n}" for n in range(2500))))
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(libpq_url(database.app_url))
    try:
        await listener.add_listener(CHANGES_CHANNEL, lambda *args: heard.put_nowait(args[-1]))
        dispatcher = Dispatcher(sessions, broker=broker, batch_size=2500, tenant_ids=only(scope))
        assert await dispatcher.dispatch_all() == 2500
        notified: list[int] = []
        sizes = []
        while len(notified) < len(ids):
            payload = await asyncio.wait_for(heard.get(), timeout=30)
            message = json.loads(payload)
            if message["tenant_id"] == str(scope.tenant_id):
                notified += message["topics"][topic]
                sizes.append(len(payload.encode()))
    finally:
        await listener.close()
    assert notified == ids
    # 2500 ids do not fit in one payload; each payload stays under PostgreSQL's limit
    assert len(sizes) == len(change_notifications(scope.tenant_id, [(i, topic) for i in ids])) > 1
    assert max(sizes) < 8000


async def test_dispatched_rows_past_retention_are_purged(sessions: async_sessionmaker[AsyncSession]) -> None:
    scope = await new_tenant(sessions)
    topic = new_topic()
    now = dt.datetime.now(dt.UTC)
    old = await write_outbox(sessions, scope, topic, [{"n": 1}, {"n": 2}, {"n": 3}])
    await Dispatcher(
        sessions, clock=lambda: now - dt.timedelta(days=8), tenant_ids=only(scope)
    ).dispatch_all()
    recent = (await write_outbox(sessions, scope, topic, [{"n": 4}]))[-1:]
    await Dispatcher(
        sessions, clock=lambda: now - dt.timedelta(days=6), tenant_ids=only(scope)
    ).dispatch_all()
    pending = (await write_outbox(sessions, scope, topic, [{"n": 5}]))[-1:]

    await outbox_purge(dt.timedelta(days=7), batch=2)(sessions, now)

    async with scoped_transaction(sessions, scope) as session:
        assert await outbox_ids(session, scope, topic) == recent + pending
    assert len(old) == 3


async def test_the_background_loop_dispatches_and_runs_periodic_jobs(
    settings: Settings, app_engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    previous = current_broker()
    broker = broker_module.install(create_broker(None))  # the loop sends to the process's broker
    recorder = JobRecorder(broker)
    topic = new_topic()
    route_ids(topic, recorder.name, key="shipment_id")
    ran: asyncio.Queue[dt.datetime] = asyncio.Queue()

    async def job(_sessions: async_sessionmaker[AsyncSession], now: dt.datetime) -> None:
        ran.put_nowait(now)

    register_job(f"test.job_{uuid.uuid4().hex[:12]}", 3600, job)
    scope = await new_tenant(sessions)
    await write_outbox(sessions, scope, topic, payloads("s1"))
    stopping = asyncio.Event()
    fast = settings.model_copy(update={"outbox_poll_ms": 20})
    loop = asyncio.create_task(run_background(app_engine, sessions, fast, stopping))
    worker = start_in_process_worker(broker, threads=1)
    try:
        await asyncio.wait_for(ran.get(), timeout=30)
        [run] = await recorder.wait_for_runs(1)
    finally:
        worker.stop()
        stopping.set()
        await asyncio.wait_for(loop, timeout=30)
        broker_module.install(previous)
    assert (run.tenant_id, run.ids) == (str(scope.tenant_id), ["s1"])
