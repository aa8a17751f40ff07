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
import re
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
from domain.notify import repository, rules, service
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


async def deliver(
    session: AsyncSession,
    w: World,
    post: service.Poster,
    *,
    now: dt.datetime,
    disable_after: int = 10,
    budget: dt.timedelta = service.SEND_BUDGET,
) -> service.SendReport:
    """One sending round as ``notify.send`` runs it (claim, POST, record), here in the test's transaction."""
    claimed = await service.claim_due_webhooks(session, w.scope, now=now)
    outcomes = await service.post_webhooks(claimed, post, clock=lambda: now, budget=budget)
    return await service.record_webhook_outcomes(
        session, w.scope, claimed, outcomes, now=now, disable_after=disable_after
    )


async def send_mail(
    session: AsyncSession, w: World, mailer: service.Mailer, *, now: dt.datetime, sender: str = "x@localhost"
) -> service.SendReport:
    claimed = await service.claim_due_emails(session, w.scope, sender=sender, now=now)
    sent = await service.send_emails(claimed, mailer)
    return await service.record_email_outcomes(session, w.scope, claimed, sent, now=now)


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
    team = await workflow.create_team(session, w.scope, name="Desk", member_ids=[w.ops.id])
    row.assignee_team_id = team.id
    await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
    await workflow.comment(session, w.scope, row.id, w.actor, now=T0, body="internal only: margin is thin")
    await workflow.comment(
        session, w.scope, row.id, w.actor, now=T0, body="New ETA Friday", customer_visible=True
    )
    await fan_out_all(session, w)

    deliveries = await rows(session, w, WebhookDelivery)
    assert sorted((d.endpoint_id == own.id, d.event_type) for d in deliveries) == [
        (False, "exception.commented"),
        (False, "exception.commented"),
        (False, "exception.opened"),
        (True, "exception.commented"),
        (True, "exception.opened"),
    ]  # not the other account's endpoint; not the internal comment to the shipper's
    assert theirs.id not in {d.endpoint_id for d in deliveries}
    [staff_opened] = [
        d.body for d in deliveries if d.endpoint_id == tenant_hook.id and d.event_type == "exception.opened"
    ]
    assert staff_opened["data"]["exception"]["evidence"]["rule"]["id"] == "r1"
    assert staff_opened["data"]["exception"]["assignee_team"] == str(team.id)
    staff_comments = sorted(
        d.body["data"]["comment"]["body"]
        for d in deliveries
        if d.endpoint_id == tenant_hook.id and d.event_type == "exception.commented"
    )
    assert staff_comments == ["New ETA Friday", "internal only: margin is thin"]

    customer = {d.event_type: d.body for d in deliveries if d.endpoint_id == own.id}
    shipment = {
        "id": str(w.shipment.id),
        "reference": customer["exception.opened"]["data"]["shipment"]["reference"],
        "mode": "ocean",
        "origin": "CNSHA",
        "destination": "NLRTM",
    }
    exception = {
        "id": str(row.id),
        "type": "MILESTONE_LATE",
        "category": "delay",
        "severity": "high",
        "status": "open",
        "key": "DEPARTED",
        "explanation": "DEPARTED is late.",
        "priority_score": 60,
        "first_seen_at": T0.isoformat(),
        "last_seen_at": T0.isoformat(),
        "resolved_at": None,
        "evidence": {"planned_at": "2026-11-05T08:00:00+00:00"},
    }
    assert customer["exception.opened"]["data"] == {
        "shipment": shipment,
        "exception": exception,
        "change": {**topics.base_payload(row)},
    }
    visible = customer["exception.commented"]["data"]
    assert visible["comment"]["body"] == "New ETA Friday"
    assert "margin" not in json.dumps([d.body for d in deliveries if d.endpoint_id == own.id])


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        (EndpointDraft("http://hooks.example.com/x", ["exception.opened"]), "url: must be https"),
        (EndpointDraft("https://hooks.example.com/x", []), "eventTypes: list at least one event type"),
        (
            EndpointDraft("https://hooks.example.com/x", ["exception.exploded"]),
            "eventTypes[0]: 'exception.exploded' is not an event type an endpoint may receive",
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
    with pytest.raises(
        NotifyError,
        match=r"eventTypes\[0\]: 'exception.escalated' is not an event type an account's endpoint may receive",
    ):
        await service.create_endpoint(session, w.scope, draft, development=False)
    fine = EndpointDraft(
        "https://acme.example.com/hook", ["exception.status_changed"], account_id=w.account.id
    )
    assert (await service.create_endpoint(session, w.scope, fine, development=False)).event_types == [
        "exception.status_changed"
    ]


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
        post = http_poster(client, allow_private=True)
        first = await deliver(session, w, post, now=T0)
        assert (first.attempted, first.failed) == (1, 1)
        assert delivery.next_attempt_at == T0 + dt.timedelta(seconds=300)  # Retry-After beats 30 s
        assert endpoint.retry_at == T0 + dt.timedelta(seconds=300)
        assert (await deliver(session, w, post, now=T0 + dt.timedelta(seconds=299))).attempted == 0
        second = await deliver(session, w, post, now=T0 + dt.timedelta(seconds=300))
        assert second.failed == 1
        assert delivery.next_attempt_at == T0 + dt.timedelta(seconds=600)
        third = await deliver(session, w, post, now=T0 + H)
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
    assert (endpoint.consecutive_failures, endpoint.retry_at) == (0, None)


async def test_without_retry_after_a_delivery_backs_off_30_s_then_1_min_then_succeeds(
    session: AsyncSession, receiver: Receiver
) -> None:
    receiver.failures, receiver.status = 2, 502
    w = await world(session)
    _, delivery = await queued_delivery(session, w, receiver.url)
    async with httpx.AsyncClient(timeout=5) as client:
        post = http_poster(client, allow_private=True)
        assert (await deliver(session, w, post, now=T0)).failed == 1
        assert delivery.next_attempt_at == T0 + dt.timedelta(seconds=30)
        assert (await deliver(session, w, post, now=T0 + dt.timedelta(seconds=30))).failed == 1
        assert delivery.next_attempt_at == T0 + dt.timedelta(seconds=90)
        assert (await deliver(session, w, post, now=T0 + dt.timedelta(seconds=89))).attempted == 0
        assert (await deliver(session, w, post, now=T0 + dt.timedelta(seconds=90))).succeeded == 1
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [h["webhook-id"] for h, _ in receiver.requests] == [f"msg_{delivery.id.hex}"] * 3  # one id


async def test_a_failing_endpoint_gets_one_delivery_at_a_time_and_the_rest_wait_for_its_pause(
    session: AsyncSession, receiver: Receiver
) -> None:
    receiver.failures = 1
    w = await world(session)
    endpoint, first = await queued_delivery(session, w, receiver.url)
    for kind in ("NO_MOVEMENT", "CUSTOMS_HOLD"):
        row = await open_exception(session, w, kind=kind)
        await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
    await fan_out_all(session, w)
    queued = sorted(await rows(session, w, WebhookDelivery), key=lambda d: d.created_at)
    async with httpx.AsyncClient(timeout=5) as client:
        post = http_poster(client, allow_private=True)
        report = await deliver(session, w, post, now=T0)
        assert (report.attempted, report.failed, report.deferred) == (1, 1, 2)
        assert endpoint.retry_at == T0 + dt.timedelta(seconds=30)
        assert {d.next_attempt_at for d in queued} == {T0 + dt.timedelta(seconds=30)}
        assert [d.attempts for d in queued] == [1, 0, 0]
        # a change during the pause waits for it too, behind what was queued before
        row = await open_exception(session, w, kind="ETA_SLIPPAGE")
        await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
        await fan_out_all(session, w, now=T0 + dt.timedelta(seconds=10))
        assert (await deliver(session, w, post, now=T0 + dt.timedelta(seconds=10))).attempted == 0
        report = await deliver(session, w, post, now=T0 + dt.timedelta(seconds=30))
        assert (report.attempted, report.succeeded) == (4, 4)
    everything = sorted(await rows(session, w, WebhookDelivery), key=lambda d: d.created_at)
    assert [h["webhook-id"] for h, _ in receiver.requests] == [
        f"msg_{d.id.hex}" for d in [first, *everything]
    ]  # the failed one, then all four in the order they were queued
    assert (endpoint.consecutive_failures, endpoint.retry_at) == (0, None)


async def test_claimed_deliveries_are_leased_and_what_time_did_not_allow_is_due_again(
    session: AsyncSession, receiver: Receiver
) -> None:
    w = await world(session)
    _, delivery = await queued_delivery(session, w, receiver.url)
    claimed = await service.claim_due_webhooks(session, w.scope, now=T0)
    assert [c.delivery_id for c in claimed] == [delivery.id]
    assert delivery.next_attempt_at == T0 + service.LEASE
    assert await service.claim_due_webhooks(session, w.scope, now=T0 + service.LEASE / 2) == []
    async with httpx.AsyncClient(timeout=5) as client:
        nothing = await service.post_webhooks(
            claimed, http_poster(client, allow_private=True), clock=lambda: T0, budget=dt.timedelta(0)
        )
    assert nothing == []
    assert receiver.requests == []
    report = await service.record_webhook_outcomes(session, w.scope, claimed, nothing, now=T0)
    assert (report.attempted, report.deferred) == (0, 1)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("pending", 0, T0)
    # a claim that was never recorded (a crashed sender) comes back once its lease is over
    await service.claim_due_webhooks(session, w.scope, now=T0)
    again = await service.claim_due_webhooks(session, w.scope, now=T0 + service.LEASE)
    assert [c.delivery_id for c in again] == [delivery.id]


async def test_a_host_that_resolves_to_a_private_address_is_not_posted_to(session: AsyncSession) -> None:
    w = await world(session)
    endpoint = await service.create_endpoint(
        session,
        w.scope,
        EndpointDraft("https://hooks.example.com/x", ["exception.opened"]),
        development=False,
    )
    row = await open_exception(session, w)
    await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
    await fan_out_all(session, w)
    looked_up: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        looked_up.append((host, port))
        return ["93.184.215.14", "10.0.0.7"]

    async with httpx.AsyncClient(timeout=5) as client:
        report = await deliver(session, w, http_poster(client, resolve=resolve), now=T0)
    assert (report.attempted, report.failed) == (1, 1)
    assert looked_up == [("hooks.example.com", 443)]
    [attempt] = await rows(session, w, WebhookAttempt)
    assert (attempt.status_code, attempt.error) == (
        None,
        "refused: hooks.example.com resolves to 10.0.0.7, a private or local address",
    )
    assert endpoint.consecutive_failures == 1


async def test_an_endpoint_failing_again_and_again_is_disabled_with_a_notice_and_can_be_replayed(
    session: AsyncSession, receiver: Receiver
) -> None:
    receiver.failures, receiver.status = 10_000, 500
    w = await world(session)
    endpoint, delivery = await queued_delivery(session, w, receiver.url)
    now = T0
    async with httpx.AsyncClient(timeout=5) as client:
        post = http_poster(client, allow_private=True)
        for _ in range(3):
            await deliver(session, w, post, now=now, disable_after=3)
            now += 7 * H
    assert endpoint.enabled is False
    assert endpoint.disabled_reason == "3 failed attempts in a row (last: HTTP 500)"
    assert (delivery.status, delivery.next_attempt_at) == ("pending", None)  # waits for the endpoint
    assert (await deliver(session, w, post, now=now)).attempted == 0
    notices = [n for n in await rows(session, w, Notification) if n.topic == "webhook.endpoint_disabled"]
    assert [n.user_id for n in notices] == [w.admin.id]
    assert {
        m.template_key for m in await rows(session, w, EmailMessage) if m.to_address == w.admin.email
    } == {"endpoint_disabled"}
    with pytest.raises(NotifyError, match="the endpoint is disabled"):
        await service.replay_delivery(session, w.scope, delivery.id, now=now)
    receiver.failures = 0
    await service.update_endpoint(session, w.scope, endpoint.id, enabled=True, development=True, now=now)
    assert (endpoint.consecutive_failures, endpoint.retry_at, endpoint.disabled_reason) == (0, None, None)
    assert delivery.next_attempt_at == now  # what waited is due again
    replay = await service.replay_delivery(session, w.scope, delivery.id, now=now)
    async with httpx.AsyncClient(timeout=5) as client:
        await deliver(session, w, http_poster(client, allow_private=True), now=now + H)
    assert (replay.status, replay.replay_of) == ("delivered", delivery.id)
    assert delivery.status == "delivered"
    assert json.loads(receiver.requests[-1][1]) == replay.body
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
    report = await send_mail(session, w, mailer(settings), sender=settings.smtp_from, now=T0)
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
        await send_mail(session, w, broken, now=now)
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


# --- recipients -----------------------------------------------------------------------------------------


async def notices(session: AsyncSession, w: World) -> dict[uuid.UUID, list[tuple[str, str]]]:
    found: dict[uuid.UUID, list[tuple[str, str]]] = {}
    for n in sorted(await rows(session, w, Notification), key=lambda n: (n.created_at, n.outbox_id or 0)):
        found.setdefault(n.user_id, []).append((n.topic, n.body))
    return found


async def test_who_hears_assignments_comments_escalations_and_customer_notices(session: AsyncSession) -> None:
    w = await world(session)
    first = await make_user(session, w.tenant, name="First", roles=(Role.OPERATIONS,))
    second = await make_user(session, w.tenant, name="Second", roles=(Role.OPERATIONS,))
    shipper = await make_shipper_user(session, w.tenant, w.account)
    gone = await make_shipper_user(session, w.tenant, w.account)
    gone.is_active = False
    await apply_scope(session, w.scope)
    row = await open_exception(session, w, severity="critical")
    # assigned to one, then to another before notifications ran: each hears of their own assignment
    await workflow.assign(session, w.scope, row.id, w.actor, now=T0, user_id=first.id, team_id=None)
    await workflow.assign(session, w.scope, row.id, w.actor, now=T0, user_id=second.id, team_id=None)
    # the assignee comments: the others hear of it, not the author
    assignee = workflow.Actor("user", second.id)
    await workflow.comment(session, w.scope, row.id, assignee, now=T0, body="Asked the carrier")
    await publish(
        session,
        w.scope,
        topics.ESCALATED,
        {
            **topics.base_payload(row),
            "step": 1,
            "reason": "not acknowledged by 10:00",
            "target_user_ids": [str(w.admin.id)],
            "target_team_id": None,
        },
    )
    await publish(
        session,
        w.scope,
        topics.CUSTOMER_NOTICE,
        {**topics.base_payload(row), "template": "documents_requested", "action_id": "a1"},
    )
    await fan_out_all(session, w)

    heard = await notices(session, w)
    assert [t for t, _ in heard[first.id]] == ["exception.assigned"]
    assert [t for t, _ in heard[second.id]] == [
        "exception.assigned",
        "exception.assigned",
        "exception.escalated",
        "exception.customer_notice",
    ]
    assert [t for t, _ in heard[w.admin.id]] == ["exception.escalated"]
    assert [t for t, _ in heard[shipper.id]] == ["exception.customer_notice"]
    assert gone.id not in heard
    assert w.ops.id not in heard
    mails = {(m.to_address, m.template_key): m for m in await rows(session, w, EmailMessage)}
    assert set(mails) == {
        (first.email, "exception_update"),  # critical: staff get e-mail by default
        (second.email, "exception_update"),
        (second.email, "exception_escalated"),
        (w.admin.email, "exception_escalated"),
        (shipper.email, "documents_requested"),  # the notice's template; staff get no such mail
    }
    assert (
        "Escalation step 1: not acknowledged by 10:00."
        in mails[(w.admin.email, "exception_escalated")].text_body
    )
    assert "We need documents for shipment" in mails[(shipper.email, "documents_requested")].text_body


async def test_a_shadow_exception_notifies_nobody(session: AsyncSession) -> None:
    w = await world(session)
    await make_shipper_user(session, w.tenant, w.account)
    await apply_scope(session, w.scope)
    await service.create_endpoint(
        session, w.scope, EndpointDraft("https://tms.example.com/h", ["exception.opened"]), development=False
    )
    row = await open_exception(session, w)
    row.shadow = True
    await publish(session, w.scope, topics.OPENED, topics.base_payload(row))
    report = await fan_out_all(session, w)
    assert (report.notifications, report.emails, report.deliveries) == (0, 0, 0)


async def test_digest_without_in_app_is_not_listed_in_the_app_but_mailed(session: AsyncSession) -> None:
    w = await world(session)
    await service.set_preference(
        session,
        w.scope,
        user_id=w.ops.id,
        account_id=None,
        preference=Preference(in_app=False, delivery=Delivery.DIGEST),
    )
    row = await open_exception(session, w)
    await workflow.assign(session, w.scope, row.id, w.actor, now=T0, user_id=w.ops.id, team_id=None)
    await fan_out_all(session, w)
    [waiting] = [n for n in await rows(session, w, Notification) if n.user_id == w.ops.id]
    assert (waiting.in_app, waiting.digest_pending) == (False, True)
    assert (
        await repository.notifications_page(
            session, w.scope, w.ops.id, unread_only=False, after=None, limit=10
        )
        == []
    )
    assert await repository.unread_count(session, w.scope, w.ops.id) == 0
    assert await service.queue_digests(session, w.scope, now=T0 + H) == 1
    [digest] = [m for m in await rows(session, w, EmailMessage) if m.to_address == w.ops.email]
    assert digest.template_key == "digest"


async def test_preferences_refuse_unknown_values_and_users_of_another_tenant(session: AsyncSession) -> None:
    w = await world(session)
    other = await world(session)
    await apply_scope(session, w.scope)
    with pytest.raises(NotifyError, match=r"^minSeverity: unknown severity 'urgent'$"):
        await service.set_preference(
            session, w.scope, user_id=w.ops.id, account_id=None, preference=Preference(min_severity="urgent")
        )
    with pytest.raises(NotifyError, match=r"^categories\[0\]: unknown category 'gossip'$"):
        await service.set_preference(
            session,
            w.scope,
            user_id=w.ops.id,
            account_id=None,
            preference=Preference(categories=frozenset({"gossip"})),
        )
    with pytest.raises(NotifyNotFound, match=f"^userId: no user {other.ops.id}$"):
        await service.set_preference(
            session, w.scope, user_id=other.ops.id, account_id=None, preference=Preference()
        )
    assert await repository.all_preferences(session, w.scope) == []


async def test_branding_refuses_a_malformed_sender_or_colour(session: AsyncSession) -> None:
    w = await world(session)
    for sender, colour, message in (
        ("alerts@", "#003366", "fromAddress: 'alerts@' is not an e-mail address"),
        (
            "alerts@north wind.example",
            "#003366",
            "fromAddress: 'alerts@north wind.example' is not an e-mail address",
        ),
        (None, "navy", "colour: 'navy' is not a #rrggbb colour"),
    ):
        with pytest.raises(NotifyError, match=f"^{re.escape(message)}$"):
            await service.set_branding(
                session, w.scope, display_name="N", footer="", from_address=sender, colour=colour
            )
    assert await repository.branding(session, w.scope) is None
