"""Notification use cases: fan an exception change out to in-app notifications, e-mails and webhook
deliveries; send what is due; manage endpoints, templates, preferences and followers. Flush only.

The fan-out runs in a worker after the change committed (the outbox routes every exception topic here), so a
rolled-back change notifies nobody. It is idempotent on the outbox row id: running it twice adds nothing.
Sending is three steps, so no transaction is open while a network call waits: claim what is due (a short
transaction that leases the rows), send (no transaction), record the outcomes (a short transaction). The
edge (the ``notify.send`` actor) runs each step in its own transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage
from email.utils import formataddr
from typing import Any

import structlog
from sqlalchemy import ColumnElement, any_, delete, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped, tenant_condition
from domain.exceptions.models import Category, ExceptionActivity, Severity, ShipmentException
from domain.exceptions.rules import customer_sees_change, customer_view
from domain.notify import repository, rules
from domain.notify.models import (
    EmailMessage,
    EmailStatus,
    EmailTemplate,
    ExceptionFollower,
    MailBranding,
    Notification,
    NotificationPreference,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from domain.notify.rules import Preference, Template, TemplateKey
from domain.shipments.models import Shipment, ShipmentReference
from domain.tenancy.models import TeamMember, Tenant, User
from domain.tenancy.repository import active_admins, users_by_id
from domain.workflow import topics
from domain.workflow.rules import shown_to_shipper

log = structlog.get_logger("milepost.notify")


class NotifyError(ValueError):
    """A request refused at write time: the message names the field and says why."""


class NotifyNotFound(NotifyError):
    """The object does not exist for this caller (another tenant's or account's answers the same)."""


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_COLOUR = "#1f6feb"
ENDPOINT_DISABLED_TOPIC = "webhook.endpoint_disabled"

# which template an exception topic's e-mail uses
_TEMPLATE_OF = {
    topics.OPENED: TemplateKey.EXCEPTION_OPENED,
    topics.REOPENED: TemplateKey.EXCEPTION_OPENED,
    topics.UPDATED: TemplateKey.EXCEPTION_UPDATE,
    topics.ACKNOWLEDGED: TemplateKey.EXCEPTION_UPDATE,
    topics.ASSIGNED: TemplateKey.EXCEPTION_UPDATE,
    topics.STATUS_CHANGED: TemplateKey.EXCEPTION_UPDATE,
    topics.RESOLVED: TemplateKey.EXCEPTION_RESOLVED,
    topics.AUTO_RESOLVED: TemplateKey.EXCEPTION_RESOLVED,
    topics.ESCALATED: TemplateKey.EXCEPTION_ESCALATED,
    topics.COMMENTED: TemplateKey.EXCEPTION_COMMENTED,
}
_TITLES = {
    topics.OPENED: "New exception",
    topics.REOPENED: "Exception reopened",
    topics.UPDATED: "Exception updated",
    topics.ACKNOWLEDGED: "Exception acknowledged",
    topics.ASSIGNED: "Exception assigned",
    topics.STATUS_CHANGED: "Exception status changed",
    topics.RESOLVED: "Exception resolved",
    topics.AUTO_RESOLVED: "Exception resolved by itself",
    topics.ESCALATED: "Exception escalated",
    topics.COMMENTED: "New comment",
    topics.CUSTOMER_NOTICE: "Shipment update",
}


@dataclass
class FanOutReport:
    notifications: int = 0
    emails: int = 0
    deliveries: int = 0


@dataclass(frozen=True)
class Recipient:
    user: User
    shipper: bool


# --- the fan-out ---------------------------------------------------------------------------------------


async def fan_out(
    session: AsyncSession,
    scope: TenantScope,
    topic: str,
    payload: Mapping[str, Any],
    *,
    public_url: str,
    now: dt.datetime,
) -> FanOutReport:
    """Turn one exception change into in-app notifications, e-mails and webhook deliveries (rows only; the
    senders do the network calls). A shipper's part is built from the customer view alone."""
    report = FanOutReport()
    outbox_id = int(payload["outbox_id"])
    exception_id = uuid.UUID(payload["exception_id"])
    exception = (
        await session.execute(
            scoped(select(ShipmentException), ShipmentException, scope).where(
                ShipmentException.id == exception_id
            )
        )
    ).scalar_one_or_none()
    if exception is None or exception.shadow:
        return report
    shipment = await _shipment_facts(session, scope, exception.shipment_id)
    staff_facts = exception_facts(exception)
    customer_facts = customer_view(staff_facts)
    comment = await _comment(session, scope, payload) if topic == topics.COMMENTED else None
    # a comment reaches shipper users only when the entry itself is shown to them (not only the payload)
    shipper_comment = comment is not None and shown_to_shipper(comment.kind, comment.customer_visible)[1]
    customer = rules.customer_may_hear(topic, payload) and (topic != topics.COMMENTED or shipper_comment)
    link = f"{public_url.rstrip('/')}/track/{shipment['reference']}"
    brand = await branding(session, scope)
    preferences = await _preferences(session, scope)
    title = f"{_TITLES.get(topic, 'Exception')}: {exception.exception_type} on {shipment['reference']}"

    for recipient in await _recipients(session, scope, exception, topic, payload, customer):
        if comment is not None and recipient.user.id == comment.actor_user_id:
            continue  # nobody is told of their own comment
        how = rules.channels(
            preferences.get(("user", recipient.user.id)),
            shipper=recipient.shipper,
            category=exception.category,
            severity=exception.severity,
            account=preferences.get(("account", recipient.user.account_id)) if recipient.shipper else None,
        )
        body = comment.note if comment is not None and comment.note else exception.explanation
        if how.in_app or how.digest:
            report.notifications += await _notify(
                session,
                scope,
                recipient.user.id,
                outbox_id,
                topic,
                exception,
                title,
                body or "",
                in_app=how.in_app,
                digest=how.digest,
            )
        if not how.email or (topic == topics.CUSTOMER_NOTICE and not recipient.shipper):
            continue
        if topic == topics.CUSTOMER_NOTICE:
            asked = str(payload.get("template"))
            known = asked in TemplateKey.__members__.values()
            key = TemplateKey(asked) if known else TemplateKey.EXCEPTION_UPDATE
        else:
            key = _TEMPLATE_OF.get(topic, TemplateKey.EXCEPTION_UPDATE)
        context = {
            "brand": brand,
            "recipient": {"name": recipient.user.name},
            "exception": customer_facts if recipient.shipper else staff_facts,
            "shipment": shipment,
            "link": link,
            "comment": (comment.note or "") if comment is not None else "",
        }
        if not recipient.shipper:  # the step and reason of an escalation are the staff's
            context |= {"reason": payload.get("reason", ""), "step": payload.get("step", "")}
        report.emails += await _queue_email(session, scope, outbox_id, recipient.user, key, context, now)

    report.deliveries += await _queue_webhooks(
        session, scope, topic, payload, exception, staff_facts, shipment, comment, now
    )
    await session.flush()
    return report


def exception_facts(row: ShipmentException) -> dict[str, Any]:
    """An exception as the staff's notifications and webhooks carry it (``customer_view`` of it is what
    its shipper gets); field names are the exception's public ones."""

    def at(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    def of(value: uuid.UUID | None) -> str | None:
        return str(value) if value is not None else None

    return {
        "id": str(row.id),
        "type": row.exception_type,
        "category": row.category,
        "severity": row.severity,
        "status": row.status,
        "key": row.milestone_code,
        "explanation": row.explanation,
        "priority_score": row.priority_score,
        "first_seen_at": at(row.first_seen_at),
        "last_seen_at": at(row.last_seen_at),
        "resolved_at": at(row.resolved_at),
        "evidence": row.evidence,
        "rule": of(row.rule_id),
        "group": of(row.group_id),
        "assignee": of(row.assignee_user_id),
        "assignee_team": of(row.assignee_team_id),
        "respond_by": at(row.respond_by),
        "resolve_by": at(row.resolve_by),
    }


async def _shipment_facts(
    session: AsyncSession, scope: TenantScope, shipment_id: uuid.UUID
) -> dict[str, Any]:
    shipment = (
        await session.execute(scoped(select(Shipment), Shipment, scope).where(Shipment.id == shipment_id))
    ).scalar_one()
    reference = (
        await session.execute(
            scoped(select(ShipmentReference.value), ShipmentReference, scope)
            .where(ShipmentReference.shipment_id == shipment_id)
            .order_by(ShipmentReference.created_at, ShipmentReference.value)
            .limit(1)
        )
    ).scalar_one_or_none()
    return {
        "id": str(shipment.id),
        "reference": reference or str(shipment.id),
        "mode": shipment.mode,
        "origin": shipment.origin_locode or "",
        "destination": shipment.destination_locode or "",
    }


async def _comment(
    session: AsyncSession, scope: TenantScope, payload: Mapping[str, Any]
) -> ExceptionActivity | None:
    activity_id = payload.get("activity_id")
    if not activity_id:
        return None
    entry = await session.execute(
        scoped(select(ExceptionActivity), ExceptionActivity, scope).where(
            ExceptionActivity.id == uuid.UUID(activity_id)
        )
    )
    return entry.scalar_one_or_none()


async def branding(session: AsyncSession, scope: TenantScope) -> dict[str, str]:
    """The tenant's mail branding, or its name with the default colour."""
    row = await repository.branding(session, scope)
    if row is not None:
        return {
            "name": row.display_name,
            "colour": row.colour,
            "footer": row.footer,
            "from": row.from_address or "",
        }
    tenant = (await session.execute(scoped(select(Tenant), Tenant, scope))).scalar_one()
    return {"name": tenant.name, "colour": DEFAULT_COLOUR, "footer": "", "from": ""}


async def _preferences(
    session: AsyncSession, scope: TenantScope
) -> dict[tuple[str, uuid.UUID | None], Preference]:
    found: dict[tuple[str, uuid.UUID | None], Preference] = {}
    for row in await repository.all_preferences(session, scope):
        key = ("user", row.user_id) if row.user_id else ("account", row.account_id)
        found[key] = preference_of(row)
    return found


def preference_of(row: NotificationPreference) -> Preference:
    return Preference(
        categories=frozenset(row.categories) if row.categories is not None else None,
        min_severity=row.min_severity,
        email=row.email,
        in_app=row.in_app,
        delivery=rules.Delivery(row.delivery),
    )


async def _recipients(
    session: AsyncSession,
    scope: TenantScope,
    exception: ShipmentException,
    topic: str,
    payload: Mapping[str, Any],
    customer: bool,
) -> list[Recipient]:
    """Staff: the assignee and the assigned team's members (as the exception is now, and for an assignment
    also as the change named them), followers, escalation targets. Shippers (for changes they are told
    of): the account's active shipper users. Inactive users hear nothing."""
    user_ids = {exception.assignee_user_id}
    team_ids = {exception.assignee_team_id}
    if topic == topics.ASSIGNED:
        user_ids.add(_uuid(payload.get("assignee_user_id")))
        team_ids.add(_uuid(payload.get("assignee_team_id")))
    user_ids |= {_uuid(u) for u in payload.get("target_user_ids") or ()}
    teams = [t for t in team_ids if t is not None]
    if teams:
        members = await session.execute(
            scoped(select(TeamMember.user_id), TeamMember, scope).where(TeamMember.team_id.in_(teams))
        )
        user_ids.update(u for (u,) in members)
    followers = await session.execute(
        scoped(select(ExceptionFollower.user_id), ExceptionFollower, scope).where(
            ExceptionFollower.exception_id == exception.id
        )
    )
    user_ids.update(u for (u,) in followers)
    wanted = [u for u in user_ids if u is not None]
    tenant_wide = TenantScope(scope.tenant_id)
    condition: ColumnElement[bool] = User.id.in_(wanted)
    if customer:  # followers who are the account's shipper users are among these anyway
        condition = or_(condition, User.account_id == exception.account_id)
    users = (
        (await session.execute(scoped(select(User), User, tenant_wide).where(User.is_active, condition)))
        .scalars()
        .all()
    )
    recipients = [
        Recipient(u, shipper=u.account_id is not None)
        for u in users
        # staff by name; shipper users only of this exception's account and when told of the change
        if u.account_id is None or (customer and u.account_id == exception.account_id)
    ]
    return sorted(recipients, key=lambda r: str(r.user.id))


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


async def _notify(
    session: AsyncSession,
    scope: TenantScope,
    user_id: uuid.UUID,
    outbox_id: int,
    topic: str,
    exception: ShipmentException,
    title: str,
    body: str,
    *,
    in_app: bool,
    digest: bool,
) -> int:
    statement = (
        insert(Notification)
        .values(
            tenant_id=scope.tenant_id,
            id=uuid.uuid4(),
            user_id=user_id,
            outbox_id=outbox_id,
            topic=topic,
            exception_id=exception.id,
            severity=exception.severity,
            title=title,
            body=body,
            in_app=in_app,
            digest_pending=digest,
        )
        .on_conflict_do_nothing(
            index_elements=["tenant_id", "outbox_id", "user_id"], index_where=text("outbox_id IS NOT NULL")
        )
    )
    return (await session.execute(statement)).rowcount or 0  # type: ignore[attr-defined]


async def template_for(session: AsyncSession, scope: TenantScope, key: TemplateKey) -> Template:
    """The tenant's template for ``key``, else the built-in one."""
    row = await repository.template(session, scope, key.value)
    if row is None:
        return rules.default_template(key)
    return Template(row.subject, row.text_body, row.html_body)


async def _queue_email(
    session: AsyncSession,
    scope: TenantScope,
    outbox_id: int | None,
    user: User,
    key: TemplateKey,
    context: Mapping[str, Any],
    now: dt.datetime,
) -> int:
    template = await template_for(session, scope, key)
    try:
        mail = rules.render(template, context)
    except Exception as error:  # a stored template that fails on real values: the built-in one still goes
        log.error("e-mail template failed; the built-in one is used", key=key.value, error=str(error))
        mail = rules.render(rules.default_template(key), context)
    statement = (
        insert(EmailMessage)
        .values(
            tenant_id=scope.tenant_id,
            id=uuid.uuid4(),
            outbox_id=outbox_id,
            to_address=user.email,
            user_id=user.id,
            template_key=key.value,
            subject=mail.subject,
            text_body=mail.text,
            html_body=mail.html,
            status=EmailStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=["tenant_id", "outbox_id", "to_address", "template_key"],
            index_where=text("outbox_id IS NOT NULL"),
        )
    )
    return (await session.execute(statement)).rowcount or 0  # type: ignore[attr-defined]


async def _queue_webhooks(
    session: AsyncSession,
    scope: TenantScope,
    topic: str,
    payload: Mapping[str, Any],
    exception: ShipmentException,
    facts: Mapping[str, Any],
    shipment: Mapping[str, Any],
    comment: ExceptionActivity | None,
    now: dt.datetime,
) -> int:
    """A delivery per enabled endpoint that subscribes to ``topic``: the tenant's (the staff view and the
    change's payload) and the exception's account's (the customer view, for changes its shipper may see)."""
    endpoints = (
        await session.execute(
            scoped(select(WebhookEndpoint), WebhookEndpoint, TenantScope(scope.tenant_id)).where(
                WebhookEndpoint.enabled,
                literal(topic) == any_(WebhookEndpoint.event_types),
                (WebhookEndpoint.account_id.is_(None)) | (WebhookEndpoint.account_id == exception.account_id),
            )
        )
    ).scalars()
    queued = 0
    for endpoint in endpoints:
        body = webhook_body(
            topic, payload, facts, shipment, comment, for_account=endpoint.account_id is not None, now=now
        )
        if body is None:
            continue
        statement = (
            insert(WebhookDelivery)
            .values(
                tenant_id=scope.tenant_id,
                id=uuid.uuid4(),
                endpoint_id=endpoint.id,
                account_id=endpoint.account_id,
                outbox_id=int(payload["outbox_id"]),
                event_type=topic,
                body=body,
                status="pending",
                attempts=0,
                # a paused endpoint gets it when its pause ends, with what waited before it
                next_attempt_at=max(now, endpoint.retry_at or now),
            )
            .on_conflict_do_nothing(
                index_elements=["tenant_id", "endpoint_id", "outbox_id"],
                index_where=text("outbox_id IS NOT NULL"),
            )
        )
        queued += (await session.execute(statement)).rowcount or 0  # type: ignore[attr-defined]
    return queued


def webhook_body(
    topic: str,
    payload: Mapping[str, Any],
    facts: Mapping[str, Any],
    shipment: Mapping[str, Any],
    comment: ExceptionActivity | None,
    *,
    for_account: bool,
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The JSON body of one event for one endpoint, or None when the endpoint may not hear of it. An
    account's endpoint gets only what its shipper may see: the customer view, the change's customer keys,
    and a comment only when shown to the customer."""
    data: dict[str, Any] = {
        "shipment": {k: shipment[k] for k in ("id", "reference", "mode", "origin", "destination")}
    }
    if for_account:
        if not customer_sees_change(topic, payload):
            return None
        if comment is not None and not shown_to_shipper(comment.kind, comment.customer_visible)[1]:
            return None
        data["exception"] = customer_view(facts)
        data["change"] = rules.customer_change(payload)
    else:
        data["exception"] = dict(facts)
        data["change"] = {k: v for k, v in payload.items() if k != "outbox_id"}
    if comment is not None:
        data["comment"] = {
            "id": str(comment.id),
            "body": comment.note or "",
            "customer_visible": comment.customer_visible,
            "created_at": comment.created_at.isoformat(),
        }
    return {"type": topic, "timestamp": now.isoformat(), "data": data}


# --- sending webhooks: claim (short transaction), POST (no transaction), record (short transaction) -----

Poster = Callable[[str, bytes, Mapping[str, str]], Awaitable["HttpAnswer"]]


@dataclass(frozen=True)
class HttpAnswer:
    """What one POST got: the status (None: no answer), its headers (lower-case), the start of its body,
    or the network error."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    excerpt: str = ""
    error: str | None = None


@dataclass(frozen=True)
class WebhookRequest:
    """A claimed delivery, signed and ready to POST."""

    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class WebhookOutcome:
    request: WebhookRequest
    answer: HttpAnswer
    attempted_at: dt.datetime
    duration_ms: int


@dataclass
class SendReport:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    deferred: int = 0  # claimed but not tried this round (their endpoint failed, or time ran out)
    disabled_endpoints: list[uuid.UUID] = field(default_factory=list)


DISABLE_AFTER_FAILURES = 10
CLAIM_LIMIT = 100
# a claimed row is not claimed again for this long: sending it must end by then (the send budget, the
# longest timeout and a margin), else it is sent again (at least once; its webhook-id stays the same)
SEND_BUDGET = dt.timedelta(seconds=60)
LEASE = SEND_BUDGET + dt.timedelta(seconds=120)


async def claim_due_webhooks(
    session: AsyncSession,
    scope: TenantScope,
    *,
    now: dt.datetime,
    limit: int = CLAIM_LIMIT,
    lease: dt.timedelta = LEASE,
) -> list[WebhookRequest]:
    """Claim up to ``limit`` due deliveries (oldest first; rows others hold are skipped) and sign them.
    Claimed rows are due again only after ``lease``, so the POSTs happen outside any transaction. A due
    delivery of a paused endpoint waits for the end of the pause; one of a disabled endpoint waits for it
    to be enabled."""
    due = (
        await session.execute(
            scoped(select(WebhookDelivery, WebhookEndpoint), WebhookDelivery, scope)
            .join(
                WebhookEndpoint,
                (WebhookEndpoint.tenant_id == WebhookDelivery.tenant_id)
                & (WebhookEndpoint.id == WebhookDelivery.endpoint_id),
            )
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        )
    ).all()
    claimed: list[WebhookRequest] = []
    for delivery, endpoint in due:
        if not endpoint.enabled:
            delivery.next_attempt_at = None
            continue
        if endpoint.retry_at is not None and endpoint.retry_at > now:
            delivery.next_attempt_at = endpoint.retry_at
            continue
        delivery.next_attempt_at = now + lease
        message_id = f"msg_{delivery.id.hex}"  # the same for every attempt: receivers deduplicate on it
        body = json.dumps(delivery.body, separators=(",", ":"), sort_keys=True).encode()
        timestamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "Milepost-Webhooks/1",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": rules.sign(endpoint.secret, message_id, timestamp, body),
        }
        claimed.append(WebhookRequest(delivery.id, endpoint.id, endpoint.url, body, headers))
    await session.flush()
    return claimed


async def post_webhooks(
    requests: Sequence[WebhookRequest],
    post: Poster,
    *,
    clock: Callable[[], dt.datetime],
    concurrency: int = 8,
    budget: dt.timedelta = SEND_BUDGET,
) -> list[WebhookOutcome]:
    """POST the requests: each endpoint's in order, one at a time, stopping at its first failure (the rest
    wait for its pause); endpoints side by side, at most ``concurrency`` at once. Nothing new starts once
    ``budget`` is spent. Returns what was tried; the caller records it."""
    by_endpoint: dict[uuid.UUID, list[WebhookRequest]] = {}
    for request in requests:
        by_endpoint.setdefault(request.endpoint_id, []).append(request)
    gate = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + budget.total_seconds()
    outcomes: list[WebhookOutcome] = []

    async def endpoint_queue(queue: list[WebhookRequest]) -> None:
        async with gate:
            for request in queue:
                if time.monotonic() >= deadline:
                    return
                attempted_at = clock()
                started = time.perf_counter()
                answer = await post(request.url, request.body, request.headers)
                duration = int((time.perf_counter() - started) * 1000)
                outcomes.append(WebhookOutcome(request, answer, attempted_at, duration))
                if not _succeeded(answer):
                    return

    await asyncio.gather(*(endpoint_queue(queue) for queue in by_endpoint.values()))
    return outcomes


def _succeeded(answer: HttpAnswer) -> bool:
    return answer.status is not None and 200 <= answer.status < 300


async def record_webhook_outcomes(
    session: AsyncSession,
    scope: TenantScope,
    claimed: Sequence[WebhookRequest],
    outcomes: Sequence[WebhookOutcome],
    *,
    now: dt.datetime,
    disable_after: int = DISABLE_AFTER_FAILURES,
) -> SendReport:
    """Write each attempt to the delivery log and schedule what comes next: a delivered row is done; a
    failed one is retried on the backoff schedule (``Retry-After`` honoured) until its attempts run out,
    and its endpoint pauses as long; ``disable_after`` failures in a row disable the endpoint, and the
    tenant's admins are told. Claimed rows that were not tried are due again when their endpoint may be
    tried (now, or at the end of its pause)."""
    report = SendReport()
    if not claimed:
        return report
    endpoint_ids = sorted({r.endpoint_id for r in claimed})
    endpoints = {
        e.id: e
        for e in (
            await session.execute(
                scoped(select(WebhookEndpoint), WebhookEndpoint, scope)
                .where(WebhookEndpoint.id.in_(endpoint_ids))
                .order_by(WebhookEndpoint.id)
                .with_for_update()
            )
        ).scalars()
    }
    deliveries = {
        d.id: d
        for d in (
            await session.execute(
                scoped(select(WebhookDelivery), WebhookDelivery, scope)
                .where(WebhookDelivery.id.in_([r.delivery_id for r in claimed]))
                .with_for_update()
            )
        ).scalars()
    }
    tried = set()
    for outcome in sorted(outcomes, key=lambda o: o.attempted_at):
        delivery = deliveries.get(outcome.request.delivery_id)
        endpoint = endpoints.get(outcome.request.endpoint_id)
        if delivery is None or endpoint is None:  # the endpoint was deleted meanwhile, with its log
            continue
        tried.add(delivery.id)
        answer = outcome.answer
        report.attempted += 1
        delivery.attempts += 1
        delivery.last_status_code = answer.status
        session.add(
            WebhookAttempt(
                tenant_id=scope.tenant_id,
                id=uuid.uuid4(),
                delivery_id=delivery.id,
                attempted_at=outcome.attempted_at,
                status_code=answer.status,
                duration_ms=outcome.duration_ms,
                error=answer.error,
                response_excerpt=answer.excerpt[:500] if answer.excerpt else None,
            )
        )
        if _succeeded(answer):
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
            endpoint.consecutive_failures, endpoint.retry_at = 0, None
            report.succeeded += 1
            continue
        report.failed += 1
        endpoint.consecutive_failures += 1
        wait = rules.retry_after(answer.headers.get("retry-after"), now)
        later = rules.next_attempt(delivery.attempts, now, wait)
        if later is None:
            delivery.status, delivery.next_attempt_at = "failed", None
        else:
            delivery.next_attempt_at = later
        endpoint.retry_at = rules.endpoint_pause(endpoint.consecutive_failures, now, wait)
        if endpoint.consecutive_failures >= disable_after and endpoint.enabled:
            last = f"HTTP {answer.status}" if answer.status is not None else answer.error
            reason = f"{endpoint.consecutive_failures} failed attempts in a row (last: {last})"
            await disable_endpoint(session, scope, endpoint, reason, now)
            report.disabled_endpoints.append(endpoint.id)
    for request in claimed:
        delivery = deliveries.get(request.delivery_id)
        endpoint = endpoints.get(request.endpoint_id)
        if delivery is None or endpoint is None or delivery.id in tried or delivery.status != "pending":
            continue
        report.deferred += 1
        if not endpoint.enabled:
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = max(now, endpoint.retry_at or now)
    await session.flush()
    return report


async def disable_endpoint(
    session: AsyncSession, scope: TenantScope, endpoint: WebhookEndpoint, reason: str, now: dt.datetime
) -> None:
    """Stop sending to an endpoint (its pending deliveries wait until it is enabled again) and tell the
    tenant's admins, in the app and by e-mail."""
    endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now
    await session.execute(
        update(WebhookDelivery)
        .where(
            tenant_condition(WebhookDelivery, scope),
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status == "pending",
        )
        .values(next_attempt_at=None)
        .execution_options(synchronize_session="fetch")
    )
    admins = await active_admins(session, scope)
    brand = await branding(session, scope)
    owner = f" (account {endpoint.account_id})" if endpoint.account_id else ""
    for admin in admins:
        session.add(
            Notification(
                tenant_id=scope.tenant_id,
                id=uuid.uuid4(),
                user_id=admin.id,
                topic=ENDPOINT_DISABLED_TOPIC,
                severity="high",
                title=f"Webhook endpoint disabled: {endpoint.url}{owner}",
                body=reason,
                in_app=True,
            )
        )
        context = {
            "brand": brand,
            "recipient": {"name": admin.name},
            "endpoint": {"url": endpoint.url, "reason": reason},
        }
        await _queue_email(session, scope, None, admin, TemplateKey.ENDPOINT_DISABLED, context, now)


# --- sending e-mail: the same three steps ----------------------------------------------------------------

Mailer = Callable[[MimeMessage], Awaitable[None]]


@dataclass(frozen=True)
class OutgoingMail:
    id: uuid.UUID
    message: MimeMessage


@dataclass(frozen=True)
class MailOutcome:
    id: uuid.UUID
    error: str | None  # None: the server took it


async def claim_due_emails(
    session: AsyncSession,
    scope: TenantScope,
    *,
    sender: str,
    now: dt.datetime,
    limit: int = CLAIM_LIMIT,
    lease: dt.timedelta = LEASE,
) -> list[OutgoingMail]:
    """Claim up to ``limit`` due e-mails (rows others hold are skipped) as MIME messages from the tenant's
    sender; they are due again only after ``lease``."""
    due = (
        (
            await session.execute(
                scoped(select(EmailMessage), EmailMessage, scope)
                .where(EmailMessage.status == EmailStatus.PENDING, EmailMessage.next_attempt_at <= now)
                .order_by(EmailMessage.next_attempt_at, EmailMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    if not due:
        return []
    brand = await branding(session, scope)
    claimed = []
    for mail in due:
        mail.next_attempt_at = now + lease
        message = MimeMessage()
        message["From"] = formataddr((brand["name"], brand["from"] or sender))
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message["Message-ID"] = f"<{mail.id.hex}@milepost>"
        message.set_content(mail.text_body)
        if mail.html_body:
            message.add_alternative(mail.html_body, subtype="html")
        claimed.append(OutgoingMail(mail.id, message))
    await session.flush()
    return claimed


async def send_emails(
    mails: Sequence[OutgoingMail], send: Mailer, *, budget: dt.timedelta = SEND_BUDGET
) -> list[MailOutcome]:
    """Hand the messages to the mail server one by one until ``budget`` is spent; what each got."""
    deadline = time.monotonic() + budget.total_seconds()
    outcomes = []
    for mail in mails:
        if time.monotonic() >= deadline:
            break
        try:
            await send(mail.message)
        except Exception as error:  # any failure of the mail server is retried
            outcomes.append(MailOutcome(mail.id, f"{type(error).__name__}: {error}"[:1000]))
        else:
            outcomes.append(MailOutcome(mail.id, None))
    return outcomes


async def record_email_outcomes(
    session: AsyncSession,
    scope: TenantScope,
    claimed: Sequence[OutgoingMail],
    outcomes: Sequence[MailOutcome],
    *,
    now: dt.datetime,
) -> SendReport:
    """Sent mail is done; a failure is retried on the webhook schedule, then marked failed; what was not
    tried is due again now."""
    report = SendReport()
    if not claimed:
        return report
    rows = {
        m.id: m
        for m in (
            await session.execute(
                scoped(select(EmailMessage), EmailMessage, scope)
                .where(EmailMessage.id.in_([c.id for c in claimed]))
                .with_for_update()
            )
        ).scalars()
    }
    for outcome in outcomes:
        mail = rows.pop(outcome.id, None)
        if mail is None:
            continue
        report.attempted += 1
        mail.attempts += 1
        if outcome.error is None:
            mail.status, mail.sent_at, mail.next_attempt_at, mail.error = EmailStatus.SENT, now, None, None
            report.succeeded += 1
            continue
        report.failed += 1
        mail.error = outcome.error
        later = rules.next_attempt(mail.attempts, now, None)
        if later is None:
            mail.status, mail.next_attempt_at = EmailStatus.FAILED, None
        else:
            mail.next_attempt_at = later
    for mail in rows.values():  # claimed, not tried
        report.deferred += 1
        mail.next_attempt_at = now
    await session.flush()
    return report


async def queue_digests(session: AsyncSession, scope: TenantScope, *, now: dt.datetime) -> int:
    """One digest e-mail per user with notifications waiting for it; how many were queued."""
    pending = (
        (
            await session.execute(
                scoped(select(Notification), Notification, scope)
                .where(Notification.digest_pending)
                .order_by(Notification.user_id, Notification.created_at, Notification.id)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    by_user: dict[uuid.UUID, list[Notification]] = {}
    for row in pending:
        by_user.setdefault(row.user_id, []).append(row)
    if not by_user:
        return 0
    brand = await branding(session, scope)
    users = await users_by_id(session, scope, list(by_user))
    queued = 0
    for user_id, rows in by_user.items():
        for row in rows:
            row.digest_pending = False
        user = users.get(user_id)
        if user is None or not user.is_active:
            continue
        items = rules.digest_items(
            {"title": r.title, "body": r.body, "severity": r.severity, "created_at": r.created_at.isoformat()}
            for r in rows
        )
        context = {"brand": brand, "recipient": {"name": user.name}, "items": items, "count": len(items)}
        await _queue_email(session, scope, None, user, TemplateKey.DIGEST, context, now)
        queued += 1
    await session.flush()
    return queued


# --- managing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointDraft:
    url: str
    event_types: Sequence[str]
    description: str = ""
    account_id: uuid.UUID | None = None


def _check_endpoint(draft: EndpointDraft, *, development: bool) -> None:
    problem = rules.check_url(draft.url, development=development)
    if problem:
        raise NotifyError(problem)
    if not draft.event_types:
        raise NotifyError("eventTypes: list at least one event type")
    allowed = rules.ACCOUNT_EVENT_TYPES if draft.account_id else rules.EVENT_TYPES
    for index, event_type in enumerate(draft.event_types):
        if event_type not in allowed:
            whose = "an account's endpoint" if draft.account_id else "an endpoint"
            raise NotifyError(
                f"eventTypes[{index}]: {event_type!r} is not an event type {whose} may receive; "
                f"one of {', '.join(sorted(allowed))}"
            )
    if len(draft.description) > 500:
        raise NotifyError("description: at most 500 characters")


async def create_endpoint(
    session: AsyncSession, scope: TenantScope, draft: EndpointDraft, *, development: bool
) -> WebhookEndpoint:
    """A new endpoint with a fresh secret (shown once, by the caller). ``draft.account_id`` must be an
    account of the tenant (the caller checks who may name which)."""
    _check_endpoint(draft, development=development)
    row = WebhookEndpoint(
        tenant_id=scope.tenant_id,
        id=uuid.uuid4(),
        account_id=draft.account_id,
        url=draft.url,
        description=draft.description,
        event_types=list(dict.fromkeys(draft.event_types)),
        secret=rules.new_secret(),
        enabled=True,
        consecutive_failures=0,
    )
    session.add(row)
    await session.flush()
    return row


async def endpoint(
    session: AsyncSession, scope: TenantScope, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint:
    """An endpoint the scope may manage: a shipper scope reaches its own account's only."""
    row = await repository.endpoint(session, scope, endpoint_id, lock=lock)
    if row is None:
        raise NotifyNotFound(f"id: no webhook endpoint {endpoint_id}")
    return row


async def update_endpoint(
    session: AsyncSession,
    scope: TenantScope,
    endpoint_id: uuid.UUID,
    *,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    development: bool,
    now: dt.datetime,
) -> WebhookEndpoint:
    """Change an endpoint. Enabling a disabled one starts afresh: no failures, no pause, and what waited
    for it is due now."""
    row = await endpoint(session, scope, endpoint_id, lock=True)
    draft = EndpointDraft(
        url if url is not None else row.url,
        event_types if event_types is not None else row.event_types,
        description if description is not None else row.description,
        row.account_id,
    )
    _check_endpoint(draft, development=development)
    row.url, row.event_types, row.description = (
        draft.url,
        list(dict.fromkeys(draft.event_types)),
        draft.description,
    )
    if enabled is not None and enabled != row.enabled:
        row.enabled = enabled
        if enabled:
            row.consecutive_failures, row.retry_at, row.disabled_reason, row.disabled_at = 0, None, None, None
            await session.execute(
                update(WebhookDelivery)
                .where(
                    tenant_condition(WebhookDelivery, scope),
                    WebhookDelivery.endpoint_id == row.id,
                    WebhookDelivery.status == "pending",
                )
                .values(next_attempt_at=now)
                .execution_options(synchronize_session="fetch")
            )
        else:
            row.disabled_reason, row.disabled_at = "disabled by a person", now
    await session.flush()
    return row


async def rotate_secret(session: AsyncSession, scope: TenantScope, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    """A new signing secret; deliveries already claimed may still go out signed with the old one."""
    row = await endpoint(session, scope, endpoint_id, lock=True)
    row.secret = rules.new_secret()
    await session.flush()
    return row


async def delete_endpoint(session: AsyncSession, scope: TenantScope, endpoint_id: uuid.UUID) -> None:
    """Remove an endpoint with its deliveries and their log."""
    row = await endpoint(session, scope, endpoint_id, lock=True)
    await session.delete(row)
    await session.flush()


async def replay_delivery(
    session: AsyncSession, scope: TenantScope, delivery_id: uuid.UUID, *, now: dt.datetime
) -> WebhookDelivery:
    """Send a delivery's body again as a new delivery (same event, its own id and attempts)."""
    original = await repository.delivery(session, scope, delivery_id)
    if original is None:
        raise NotifyNotFound(f"id: no webhook delivery {delivery_id}")
    target = await endpoint(session, scope, original.endpoint_id)
    if not target.enabled:
        raise NotifyError("id: the endpoint is disabled; enable it before replaying")
    copy = WebhookDelivery(
        tenant_id=scope.tenant_id,
        id=uuid.uuid4(),
        endpoint_id=original.endpoint_id,
        account_id=original.account_id,
        outbox_id=None,
        event_type=original.event_type,
        body=original.body,
        status="pending",
        attempts=0,
        next_attempt_at=max(now, target.retry_at or now),
        replay_of=original.id,
    )
    session.add(copy)
    await session.flush()
    return copy


async def upsert_template(
    session: AsyncSession, scope: TenantScope, key: str, template: Template
) -> EmailTemplate:
    """Store a tenant's template after checking every field it uses exists for its key."""
    if key not in TemplateKey.__members__.values():
        raise NotifyError(f"key: unknown template {key!r}; one of {', '.join(TemplateKey)}")
    if not template.subject.strip():
        raise NotifyError("subject: must not be empty")
    if not template.text.strip():
        raise NotifyError("text: must not be empty (mail clients without html show it)")
    try:
        rules.check_template(TemplateKey(key), template)
    except rules.TemplateError as error:
        raise NotifyError(str(error)) from None
    row = await repository.template(session, scope, key)
    if row is None:
        row = EmailTemplate(tenant_id=scope.tenant_id, id=uuid.uuid4(), key=key)
        session.add(row)
    row.subject, row.text_body, row.html_body = template.subject, template.text, template.html or None
    await session.flush()
    return row


async def reset_template(session: AsyncSession, scope: TenantScope, key: str) -> bool:
    """Drop the tenant's template for ``key`` (the built-in one applies again); whether there was one."""
    row = await repository.template(session, scope, key)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True


async def set_branding(
    session: AsyncSession,
    scope: TenantScope,
    *,
    display_name: str,
    from_address: str | None,
    colour: str,
    footer: str,
) -> MailBranding:
    """The tenant's sender name and address, colour and footer for every e-mail."""
    if not display_name.strip() or len(display_name) > 200:
        raise NotifyError("displayName: 1 to 200 characters")
    if from_address is not None and (len(from_address) > 320 or not EMAIL.match(from_address)):
        raise NotifyError(f"fromAddress: {from_address!r} is not an e-mail address")
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        raise NotifyError(f"colour: {colour!r} is not a #rrggbb colour")
    if len(footer) > 2000:
        raise NotifyError("footer: at most 2000 characters")
    row = await repository.branding(session, scope)
    if row is None:
        row = MailBranding(tenant_id=scope.tenant_id, id=uuid.uuid4())
        session.add(row)
    row.display_name, row.from_address, row.colour, row.footer = (
        display_name.strip(),
        from_address,
        colour,
        footer,
    )
    await session.flush()
    return row


def check_preference(preference: Preference) -> None:
    """Refuse an unknown category or severity, naming the field."""
    for index, category in enumerate(sorted(preference.categories or ())):
        if category not in Category.__members__.values():
            raise NotifyError(f"categories[{index}]: unknown category {category!r}")
    if preference.min_severity not in Severity.__members__.values():
        raise NotifyError(f"minSeverity: unknown severity {preference.min_severity!r}")


async def set_preference(
    session: AsyncSession,
    scope: TenantScope,
    *,
    user_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    preference: Preference,
) -> NotificationPreference:
    """A user's own preference, or (``account_id``) the default of every user of a shipper account. The
    user must be one of the tenant's (another tenant's answers as unknown)."""
    check_preference(preference)
    if user_id is not None and user_id not in await users_by_id(session, scope, [user_id]):
        raise NotifyNotFound(f"userId: no user {user_id}")
    row = await repository.preference_of(session, scope, user_id=user_id, account_id=account_id)
    if row is None:
        row = NotificationPreference(
            tenant_id=scope.tenant_id, id=uuid.uuid4(), user_id=user_id, account_id=account_id
        )
        session.add(row)
    row.categories = sorted(preference.categories) if preference.categories is not None else None
    row.min_severity, row.email, row.in_app, row.delivery = (
        preference.min_severity,
        preference.email,
        preference.in_app,
        preference.delivery,
    )
    await session.flush()
    return row


async def _visible_exception(session: AsyncSession, scope: TenantScope, exception_id: uuid.UUID) -> None:
    visible = await session.execute(
        scoped(select(ShipmentException.id), ShipmentException, scope).where(
            ShipmentException.id == exception_id, ShipmentException.shadow.is_(False)
        )
    )
    if visible.first() is None:
        raise NotifyNotFound(f"id: exception {exception_id} not found")


async def follow(
    session: AsyncSession, scope: TenantScope, exception_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Follow an exception the scope can see (a shipper scope: its own account's); following twice is
    following once."""
    await _visible_exception(session, scope, exception_id)
    await session.execute(
        insert(ExceptionFollower)
        .values(tenant_id=scope.tenant_id, exception_id=exception_id, user_id=user_id)
        .on_conflict_do_nothing()
    )


async def unfollow(
    session: AsyncSession, scope: TenantScope, exception_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Stop following an exception the scope can see (not following it already is fine)."""
    await _visible_exception(session, scope, exception_id)
    await session.execute(
        delete(ExceptionFollower).where(
            tenant_condition(ExceptionFollower, scope),
            ExceptionFollower.exception_id == exception_id,
            ExceptionFollower.user_id == user_id,
        )
    )


async def mark_read(
    session: AsyncSession,
    scope: TenantScope,
    user_id: uuid.UUID,
    ids: Iterable[uuid.UUID] | None,
    *,
    now: dt.datetime,
) -> int:
    """Mark the user's notifications read (``ids`` None: all); how many changed. Another user's ids are
    ignored, as unknown ones are."""
    statement = update(Notification).where(
        tenant_condition(Notification, scope), Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if ids is not None:
        statement = statement.where(Notification.id.in_(list(ids)))
    result = await session.execute(statement.values(read_at=now))
    return result.rowcount or 0  # type: ignore[attr-defined]
