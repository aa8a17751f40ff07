"""Notifications against PostgreSQL and real peers: the fan-out to in-app notifications, e-mails and
webhooks (recipients, preferences, what shippers may see, idempotency, a second tenant and account), webhook
delivery against a local HTTP server that fails then succeeds (backoff, Retry-After, the delivery log,
disabling, replay), e-mail through a real SMTP server (aiosmtpd), templates and digests."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import apply_scope, scoped
from domain.notify import rules, service
from domain.notify.models import EmailMessage, Notification, WebhookAttempt, WebhookDelivery
from domain.notify.rules import Delivery, Preference, Template
from domain.notify.service import EndpointDraft, NotifyError, NotifyNotFound
from domain.outbox.models import OutboxMessage
from domain.outbox.service import publish
from domain.tenancy.models import Role
from domain.workflow import service as workflow
from domain.workflow import topics
from milepost.settings import Settings
from tests.domain.test_notify_rules import verify_standard_webhook
from tests.domain.test_workflow_service import T0, World, open_exception, world
from tests.factories import make_account, make_shipper_user, make_user
from workers.notify import http_poster, mailer

H = dt.timedelta(hours=1)
URL = "http://127.0.0.1:8000"


async def published(session: AsyncSession, w: World) -> list[tuple[str, dict[str, Any]]]:
    """The outbox rows written so far, as the dispatcher hands them to routes (with their outbox id)."""
    rows = await session.execute(
        scoped(select(OutboxMessage), OutboxMessage, w.scope).order_by(OutboxMessage.id)
    )
    return [(row.topic, {**row.payload, "outbox_id": row.id}) for row in rows.scalars()]


async def fan_out_all(session: AsyncSession, w: World, now: dt.datetime = T0) -> service.FanOutReport:
    total = service.FanOutReport()
    for topic, payload in await published(session, w):
        report = await service.fan_out(session, w.scope, topic, payload, public_url=URL, now=now)
        total.notifications += report.notifications
        total.emails += report.emails
        total.deliveries += report.deliveries
    return total


async def rows(session: AsyncSession, w: World, model: Any) -> list[Any]:
    return list((await session.execute(scoped(select(model), model, w.scope))).scalars())


async def test_a_change_reaches_the_team_followers_and_the_shipper_each_as_they_chose(
    session: AsyncSession,
) -> None:
    w = await world(session)
    other = await world(session)
    member = await make_user(session, w.tenant, name="Mia Member", roles=(Role.OPERATIONS,))
    follower = await make_user(session, w.tenant, name="Fred Follower", roles=(Role.CUSTOMER_SERVICE,))
    shipper = await make_shipper_user(session, w.tenant, w.account)
    await apply_scope(session, w.scope)
    team = await workflow.create_team(session, w.scope, name="Desk", member_ids=[member.id])
    row = await open_exception(session, w, severity="high")
    await service.follow(session, w.scope, row.id, follower.id)
    await service.set_preference(
        session, w.scope, user_id=follower.id, account_id=None, preference=Preference(email=False)
    )
    await workflow.assign(session, w.scope, row.id, w.actor, now=T0, user_id=None, team_id=team.id)
    await workflow.comment(session, w.scope, row.id, w.actor, now=T0, body="carrier blames the weather")
    await workflow.comment(
        session, w.scope, row.id, w.actor, now=T0, body="New ETA Friday", customer_visible=True
    )

    await fan_out_all(session, w)

    by_user: dict[uuid.UUID, list[str]] = {}
    for n in await rows(session, w, Notification):
        by_user.setdefault(n.user_id, []).append(n.body)
    assert sorted(by_user[member.id]) == sorted(
        ["DEPARTED is late.", "carrier blames the weather", "New ETA Friday"]
    )
    assert sorted(by_user[follower.id]) == sorted(by_user[member.id])
    assert by_user[shipper.id] == ["New ETA Friday"]  # the internal comment and the assignment stay inside
    mails = {(m.to_address, m.template_key) for m in await rows(session, w, EmailMessage)}
    assert mails == {
        (member.email, "exception_update"),  # high severity: staff get e-mail by default
        (member.email, "exception_commented"),
        (shipper.email, "exception_commented"),
    }  # the follower turned e-mail off
    shipper_mail = next(m for m in await rows(session, w, EmailMessage) if m.to_address == shipper.email)
    assert "New ETA Friday" in shipper_mail.text_body
    assert "weather" not in shipper_mail.text_body

    # the same changes again (a redelivered message) add nothing
    again = await fan_out_all(session, w)
    assert (again.notifications, again.emails, again.deliveries) == (0, 0, 0)
    await apply_scope(session, other.scope)
    assert await rows(session, other, Notification) == []


async def test_webhooks_get_the_staff_view_or_the_customer_view_by_owner(session: AsyncSession) -> None:
    w = await world(session)
    second_account = await make_account(session, w.tenant)
    await apply_scope(session, w.scope)
    tenant_hook = await service.create_endpoint(
        session,
        w.scope,
        EndpointDraft("https://tms.example.com/hook", ["exception.opened", "exception.commented"]),
        development=False,
    )
    own = await service.create_endpoint(
        session,
        w.scope,
        EndpointDraft(
            "https://acme.example.com/hook",
            ["exception.opened", "exception.commented"],
            account_id=w.account.id,
        ),
        development=False,
    )
    theirs = await service.create_endpoint(
        session,
        w.scope,
        EndpointDraft("https://other.example.com/hook", ["exception.opened"], account_id=second_account.id),
        development=False,
    )
    row = await open_exception(session, w)
    row.evidence = {
        "rule": {"id": "r1", "parameters": {"tolerance_hours": 6}},
        "planned_at": "2026-11-05T08:00:00+00:00",
    }
    await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
    await workflow.comment(session, w.scope, row.id, w.actor, now=T0, body="internal only")
    await fan_out_all(session, w)

    deliveries = {(d.endpoint_id, d.event_type): d.body for d in await rows(session, w, WebhookDelivery)}
    assert set(deliveries) == {
        (tenant_hook.id, "exception.opened"),
        (tenant_hook.id, "exception.commented"),
        (own.id, "exception.opened"),
    }  # not the other account's endpoint; not the internal comment to the shipper's
    assert (
        deliveries[(tenant_hook.id, "exception.opened")]["data"]["exception"]["evidence"]["rule"]["id"]
        == "r1"
    )
    customer = deliveries[(own.id, "exception.opened")]["data"]
    assert customer["exception"]["evidence"] == {"planned_at": "2026-11-05T08:00:00+00:00"}
    assert "change" not in customer
    assert theirs.id not in {d.endpoint_id for d in await rows(session, w, WebhookDelivery)}


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        (EndpointDraft("http://hooks.example.com/x", ["exception.opened"]), "url: must be https"),
        (EndpointDraft("https://hooks.example.com/x", []), "eventTypes: list at least one event type"),
        (
            EndpointDraft("https://hooks.example.com/x", ["exception.exploded"]),
            "eventTypes[0]: unknown event type 'exception.exploded'",
        ),
    ],
)
async def test_bad_endpoints_are_refused_with_the_field(
    session: AsyncSession, draft: EndpointDraft, message: str
) -> None:
    w = await world(session)
    with pytest.raises(NotifyError) as caught:
        await service.create_endpoint(session, w.scope, draft, development=False)
    assert str(caught.value).startswith(message)


async def test_a_shipper_endpoint_may_subscribe_to_customer_topics_only(session: AsyncSession) -> None:
    w = await world(session)
    draft = EndpointDraft("https://acme.example.com/hook", ["exception.escalated"], account_id=w.account.id)
    with pytest.raises(NotifyError, match=r"eventTypes\[0\]: unknown event type 'exception.escalated'"):
        await service.create_endpoint(session, w.scope, draft, development=False)


# --- delivery against a local HTTP server ----------------------------------------------------------------


@dataclass
class Receiver:
    """A local HTTP server that answers the first ``failures`` requests with ``status`` (and Retry-After),
    then 204; it records every request."""

    failures: int = 0
    status: int = 503
    retry_after: str | None = None
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            state.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            if len(state.requests) <= state.failures:
                self.send_response(state.status)
                if state.retry_after:
                    self.send_header("Retry-After", state.retry_after)
                self.end_headers()
                self.wfile.write(b"try later")
            else:
                self.send_response(204)
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


async def queued_delivery(session: AsyncSession, w: World, url: str) -> tuple[Any, WebhookDelivery]:
    endpoint = await service.create_endpoint(
        session, w.scope, EndpointDraft(url, ["exception.opened"]), development=True
    )
    row = await open_exception(session, w)
    await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
    await fan_out_all(session, w)
    [delivery] = await rows(session, w, WebhookDelivery)
    return endpoint, delivery


async def test_a_delivery_is_retried_with_backoff_honouring_retry_after_until_it_succeeds(
    session: AsyncSession, receiver: Receiver
) -> None:
    receiver.failures, receiver.retry_after = 2, "300"
    w = await world(session)
    endpoint, delivery = await queued_delivery(session, w, receiver.url)
    async with httpx.AsyncClient(timeout=5) as client:
        post = http_poster(client)
        first = await service.deliver_due_webhooks(session, w.scope, post, now=T0)
        assert (first.attempted, first.failed) == (1, 1)
        assert delivery.next_attempt_at == T0 + dt.timedelta(seconds=300)  # Retry-After beats 30 s
        assert (
            await service.deliver_due_webhooks(session, w.scope, post, now=T0 + dt.timedelta(seconds=299))
        ).attempted == 0
        second = await service.deliver_due_webhooks(
            session, w.scope, post, now=T0 + dt.timedelta(seconds=300)
        )
        assert second.failed == 1
        third = await service.deliver_due_webhooks(session, w.scope, post, now=T0 + H)
        assert third.succeeded == 1
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 204)
    attempts = sorted(await rows(session, w, WebhookAttempt), key=lambda a: a.attempted_at)
    assert [(a.status_code, a.response_excerpt) for a in attempts] == [
        (503, "try later"),
        (503, "try later"),
        (204, None),
    ]
    headers, body = receiver.requests[-1]
    assert verify_standard_webhook(endpoint.secret, headers, body)
    assert headers["webhook-id"] == f"msg_{delivery.id.hex}"
    assert json.loads(body)["type"] == "exception.opened"
    assert endpoint.consecutive_failures == 0


async def test_an_endpoint_failing_again_and_again_is_disabled_with_a_notice_and_can_be_replayed(
    session: AsyncSession, receiver: Receiver
) -> None:
    receiver.failures, receiver.status = 10_000, 500
    w = await world(session)
    endpoint, delivery = await queued_delivery(session, w, receiver.url)
    now = T0
    async with httpx.AsyncClient(timeout=5) as client:
        post = http_poster(client)
        for _ in range(3):
            await service.deliver_due_webhooks(session, w.scope, post, now=now, disable_after=3)
            now += 7 * H
    assert endpoint.enabled is False
    assert endpoint.disabled_reason == "3 failed attempts in a row (last: 500)"
    notices = [n for n in await rows(session, w, Notification) if n.topic == "webhook.endpoint_disabled"]
    assert [n.user_id for n in notices] == [w.admin.id]
    assert {
        m.template_key for m in await rows(session, w, EmailMessage) if m.to_address == w.admin.email
    } == {"endpoint_disabled"}
    with pytest.raises(NotifyError, match="the endpoint is disabled"):
        await service.replay_delivery(session, w.scope, delivery.id, now=now)
    receiver.failures = 0
    await service.update_endpoint(
        session, w.scope, endpoint.id, url=None, event_types=None, enabled=True, development=True
    )
    replay = await service.replay_delivery(session, w.scope, delivery.id, now=now)
    async with httpx.AsyncClient(timeout=5) as client:
        await service.deliver_due_webhooks(session, w.scope, http_poster(client), now=now + H)
    assert (replay.status, replay.replay_of) == ("delivered", delivery.id)
    with pytest.raises(NotifyNotFound):
        await service.replay_delivery(session, w.scope, uuid.uuid4(), now=now)


# --- e-mail through a real SMTP server -------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


async def test_mail_goes_through_a_real_smtp_server_with_the_tenants_branding_and_template(
    session: AsyncSession, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    w = await world(session, value=Decimal(1000))
    shipper = await make_shipper_user(session, w.tenant, w.account)
    await apply_scope(session, w.scope)
    await service.set_branding(
        session,
        w.scope,
        display_name="Northwind Forwarding",
        from_address="alerts@northwind.example",
        colour="#003366",
        footer="Northwind Forwarding, Rotterdam",
    )
    await service.upsert_template(
        session,
        w.scope,
        "exception_opened",
        Template(
            "{{ brand.name }}: {{ shipment.reference }} needs attention",
            "Dear {{ recipient.name }},\n{{ exception.explanation }}\n{{ brand.footer }}",
            "<p style='color: {{ brand.colour }}'>{{ exception.explanation }}</p>",
        ),
    )
    row = await open_exception(session, w)
    await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
    await fan_out_all(session, w)
    settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="milepost@localhost")
    report = await service.send_due_emails(
        session, w.scope, mailer(settings), sender=settings.smtp_from, now=T0
    )
    assert (report.attempted, report.succeeded) == (1, 1)
    for _ in range(50):
        if inbox.messages:
            break
        await asyncio.sleep(0.05)
    [message] = inbox.messages
    assert message["To"] == shipper.email
    assert message["From"] == "Northwind Forwarding <alerts@northwind.example>"
    reference = message["Subject"].split(": ")[1].split(" ")[0]
    assert message["Subject"] == f"Northwind Forwarding: {reference} needs attention"
    assert message.get_body(("plain",)).get_content().splitlines() == [  # type: ignore[union-attr]
        f"Dear {shipper.name},",
        "DEPARTED is late.",
        "Northwind Forwarding, Rotterdam",
    ]
    assert "color: #003366" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    [stored] = await rows(session, w, EmailMessage)
    assert (stored.status, stored.sent_at) == ("sent", T0)


async def test_an_smtp_failure_is_retried_then_given_up(session: AsyncSession) -> None:
    w = await world(session)
    await make_shipper_user(session, w.tenant, w.account)
    await apply_scope(session, w.scope)
    row = await open_exception(session, w)
    await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
    await fan_out_all(session, w)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    broken = mailer(Settings(smtp_host="127.0.0.1", smtp_port=dead_port))
    now = T0
    for _ in range(rules.MAX_ATTEMPTS):
        await service.send_due_emails(session, w.scope, broken, sender="x@localhost", now=now)
        now += 7 * H
    [stored] = await rows(session, w, EmailMessage)
    assert (stored.status, stored.attempts) == ("failed", rules.MAX_ATTEMPTS)
    assert stored.error is not None


async def test_a_template_naming_a_missing_field_is_refused_and_nothing_is_stored(
    session: AsyncSession,
) -> None:
    w = await world(session)
    with pytest.raises(
        NotifyError, match=r"^text: exception.cost is not a field of exception_resolved templates$"
    ):
        await service.upsert_template(
            session, w.scope, "exception_resolved", Template("x", "{{ exception.cost }}")
        )
    with pytest.raises(NotifyError, match=r"^key: unknown template 'welcome'"):
        await service.upsert_template(session, w.scope, "welcome", Template("x", "y"))
    assert (
        await service.template_for(session, w.scope, rules.TemplateKey.EXCEPTION_RESOLVED)
    ) == rules.default_template(rules.TemplateKey.EXCEPTION_RESOLVED)


async def test_digest_users_get_one_mail_with_what_accumulated(session: AsyncSession) -> None:
    w = await world(session)
    await service.set_preference(
        session, w.scope, user_id=w.ops.id, account_id=None, preference=Preference(delivery=Delivery.DIGEST)
    )
    for kind in ("MILESTONE_LATE", "NO_MOVEMENT", "CUSTOMS_HOLD"):
        row = await open_exception(session, w, kind=kind)
        await workflow.assign(session, w.scope, row.id, w.actor, now=T0, user_id=w.ops.id, team_id=None)
    await fan_out_all(session, w)
    assert [m for m in await rows(session, w, EmailMessage) if m.to_address == w.ops.email] == []
    assert await service.queue_digests(session, w.scope, now=T0 + H) == 1
    [digest] = [m for m in await rows(session, w, EmailMessage) if m.to_address == w.ops.email]
    assert digest.template_key == "digest"
    assert [line.split(" on ")[0] for line in digest.text_body.splitlines() if line.startswith("- ")] == [
        "- [high] Exception assigned: MILESTONE_LATE",
        "- [high] Exception assigned: NO_MOVEMENT",
        "- [high] Exception assigned: CUSTOMS_HOLD",
    ]
    assert await service.queue_digests(session, w.scope, now=T0 + 2 * H) == 0


async def test_following_needs_an_exception_the_caller_can_see(session: AsyncSession) -> None:
    w = await world(session)
    other = await world(session)
    theirs = await open_exception(session, other)
    await apply_scope(session, w.scope)
    with pytest.raises(NotifyNotFound, match=f"id: exception {theirs.id} not found"):
        await service.follow(session, w.scope, theirs.id, w.ops.id)
