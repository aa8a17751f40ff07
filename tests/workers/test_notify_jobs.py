"""Notifications as jobs: a committed change reaches its recipients through the outbox, the dispatcher and
the notify.fan_out worker; a change whose transaction rolled back notifies nobody; a second tenant hears
nothing."""

from __future__ import annotations

import uuid

import dramatiq
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.columns import utcnow
from domain.db import TenantScope, apply_scope, scoped, scoped_transaction
from domain.notify.models import Notification
from domain.workflow import service as workflow
from tests.domain.test_workflow_service import World, open_exception, world
from tests.workers.support import only, poll
from workers.broker import start_in_process_worker
from workers.dispatcher import Dispatcher


async def committed_world(sessions: async_sessionmaker[AsyncSession]) -> tuple[World, uuid.UUID]:
    async with sessions() as session, session.begin():
        w = await world(session)
        row = await open_exception(session, w)
        await apply_scope(session, w.scope)
        await workflow.assign(session, w.scope, row.id, w.actor, now=utcnow(), user_id=w.ops.id, team_id=None)
    return w, row.id


async def notified(sessions: async_sessionmaker[AsyncSession], scope: TenantScope) -> int:
    async with scoped_transaction(sessions, scope) as session:
        return int((await session.execute(scoped(select(func.count()), Notification, scope))).scalar_one())


class Boom(Exception):
    pass


async def test_committed_changes_notify_and_rolled_back_ones_do_not(
    sessions: async_sessionmaker[AsyncSession], process_broker: dramatiq.Broker
) -> None:
    w, exception_id = await committed_world(sessions)
    other, _ = await committed_world(sessions)

    async def comment_then_fail() -> None:
        async with scoped_transaction(sessions, w.scope) as session:
            await workflow.comment(session, w.scope, exception_id, w.actor, now=utcnow(), body="never said")
            raise Boom

    with pytest.raises(Boom):
        await comment_then_fail()
    dispatcher = Dispatcher(sessions, broker=process_broker, tenant_ids=only(w.scope))
    worker = start_in_process_worker(process_broker, threads=1)
    try:
        await dispatcher.dispatch_all()

        async def assigned_notice() -> int | None:
            count = await notified(sessions, w.scope)
            return count or None

        assert await poll(assigned_notice) == 1  # the assignment, to the assignee; the comment never happened
    finally:
        worker.stop()
    async with scoped_transaction(sessions, w.scope) as session:
        bodies = (
            (await session.execute(scoped(select(Notification.body), Notification, w.scope))).scalars().all()
        )
    assert "never said" not in bodies
    assert await notified(sessions, other.scope) == 0  # not dispatched: nothing ran for it
