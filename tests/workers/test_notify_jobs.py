"""Notifications as jobs: a committed change reaches its recipients through the outbox, the dispatcher, the
notify.fan_out worker and notify.send (a signed POST to a local HTTP server, an e-mail); a change whose
transaction rolled back notifies nobody (no in-app row, no e-mail, no delivery); a second tenant hears
nothing. Also one sending round in its three transactions against committed rows."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import dramatiq
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.columns import utcnow
from domain.db import TenantScope, apply_scope, scoped, scoped_transaction
from domain.notify import service
from domain.notify.models import EmailMessage, Notification, WebhookAttempt, WebhookDelivery
from domain.outbox.models import OutboxMessage
from domain.outbox.service import publish
from domain.workflow import service as workflow
from domain.workflow import topics
from milepost.settings import Settings
from tests.domain.test_notify_rules import verify_standard_webhook
from tests.domain.test_notify_service import Receiver, receiver  # noqa: F401 - the fixture
from tests.domain.test_workflow_service import T0, World, open_exception, world
from tests.factories import make_shipper_user
from tests.workers.support import only, poll
from workers.broker import start_in_process_worker
from workers.dispatcher import Dispatcher
from workers.notify import send_due


async def committed_world(
    sessions: async_sessionmaker[AsyncSession], url: str
) -> tuple[World, uuid.UUID, str]:
    """A tenant with a shipper user and a webhook endpoint for assignments and comments; an exception
    assigned to its operations user (committed)."""
    async with sessions() as session, session.begin():
        w = await world(session)
        await make_shipper_user(session, w.tenant, w.account)
        row = await open_exception(session, w)
        await apply_scope(session, w.scope)
        endpoint = await service.create_endpoint(
            session,
            w.scope,
            service.EndpointDraft(url, ["exception.assigned", "exception.commented"]),
            development=True,
        )
        await workflow.assign(session, w.scope, row.id, w.actor, now=utcnow(), user_id=w.ops.id, team_id=None)
    return w, row.id, endpoint.secret


async def all_rows(sessions: async_sessionmaker[AsyncSession], scope: TenantScope, model: Any) -> list[Any]:
    async with scoped_transaction(sessions, scope) as session:
        return list((await session.execute(scoped(select(model), model, scope))).scalars())


class Boom(Exception):
    pass


async def test_committed_changes_notify_and_rolled_back_ones_do_not(
    sessions: async_sessionmaker[AsyncSession],
    process_broker: dramatiq.Broker,
    receiver: Receiver,  # noqa: F811
) -> None:
    w, exception_id, secret = await committed_world(sessions, receiver.url)
    other, _, _ = await committed_world(sessions, receiver.url)

    async def comment_then_fail() -> None:
        async with scoped_transaction(sessions, w.scope) as session:
            await workflow.comment(
                session,
                w.scope,
                exception_id,
                w.actor,
                now=utcnow(),
                body="never said",
                customer_visible=True,
            )
            raise Boom

    with pytest.raises(Boom):
        await comment_then_fail()
    dispatcher = Dispatcher(sessions, broker=process_broker, tenant_ids=only(w.scope))
    worker = start_in_process_worker(process_broker, threads=1)
    try:
        await dispatcher.dispatch_all()

        async def delivered() -> list[WebhookDelivery] | None:
            found = await all_rows(sessions, w.scope, WebhookDelivery)
            return found if found and all(d.status == "delivered" for d in found) else None

        [delivery] = await poll(delivered)

        async def mailed() -> list[EmailMessage] | None:
            found = await all_rows(sessions, w.scope, EmailMessage)
            return found if found and all(m.status == "sent" for m in found) else None

        mails = await poll(mailed)
    finally:
        worker.stop()
    # the assignment, to the assignee (high severity: in the app and by e-mail) and to the endpoint
    assert delivery.event_type == "exception.assigned"
    [(headers, body)] = receiver.requests
    assert verify_standard_webhook(secret, headers, body)
    assert json.loads(body)["data"]["change"]["assignee_user_id"] == str(w.ops.id)
    assert [(m.to_address, m.template_key) for m in mails] == [(w.ops.email, "exception_update")]
    notices = await all_rows(sessions, w.scope, Notification)
    assert [(n.user_id, n.topic) for n in notices] == [(w.ops.id, "exception.assigned")]
    # the rolled-back comment: not in the app, not mailed (to the shipper), not posted
    assert "never said" not in json.dumps([n.body for n in notices] + [m.text_body for m in mails])
    assert all(
        d.event_type != "exception.commented" for d in await all_rows(sessions, w.scope, WebhookDelivery)
    )
    for model in (Notification, EmailMessage, WebhookDelivery):  # not dispatched: nothing ran for it
        assert await all_rows(sessions, other.scope, model) == []


async def test_one_sending_round_claims_posts_and_records_in_separate_transactions(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    receiver: Receiver,  # noqa: F811
) -> None:
    receiver.failures, receiver.retry_after = 1, "Sun, 01 Nov 2026 08:10:00 GMT"
    async with sessions() as session, session.begin():
        w = await world(session)
        row = await open_exception(session, w)
        await apply_scope(session, w.scope)
        await service.create_endpoint(
            session, w.scope, service.EndpointDraft(receiver.url, ["exception.opened"]), development=True
        )
        await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
    async with scoped_transaction(sessions, w.scope) as session:
        outbox = await session.execute(scoped(select(OutboxMessage), OutboxMessage, w.scope))
        [change] = [{**o.payload, "outbox_id": o.id} for o in outbox.scalars()]
        await service.fan_out(session, w.scope, topics.OPENED, change, public_url="http://x", now=T0)

    hooks, _ = await send_due(sessions, settings, w.scope, clock=lambda: T0)
    assert (hooks.attempted, hooks.failed) == (1, 1)
    [delivery] = await all_rows(sessions, w.scope, WebhookDelivery)
    assert delivery.next_attempt_at == T0 + dt.timedelta(minutes=10)  # the HTTP date in Retry-After
    hooks, _ = await send_due(sessions, settings, w.scope, clock=lambda: T0 + dt.timedelta(minutes=10))
    assert hooks.succeeded == 1
    attempts = await all_rows(sessions, w.scope, WebhookAttempt)
    assert sorted((a.attempted_at, a.status_code) for a in attempts) == [
        (T0, 503),
        (T0 + dt.timedelta(minutes=10), 204),
    ]
    async with scoped_transaction(sessions, w.scope) as session:
        count = await session.execute(scoped(select(func.count()), WebhookDelivery, w.scope))
        assert count.scalar_one() == 1
