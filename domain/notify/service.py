"""Notification use cases: fan an exception change out to in-app notifications, e-mails and webhook
deliveries; send what is due; manage endpoints, templates, preferences and followers. Flush only.

The fan-out runs in a worker after the change committed (the outbox routes every exception topic here), so a
rolled-back change notifies nobody. It is idempotent on the outbox row id: running it twice adds nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage
from typing import Any

from sqlalchemy import any_, delete, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped, tenant_condition
from domain.exceptions.models import Category, ExceptionActivity, ShipmentException
from domain.notify import rules
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
from domain.tenancy.repository import active_admins
from domain.workflow import topics


class NotifyError(ValueError):
    """A request refused at write time: the message names the field and says why."""


class NotifyNotFound(NotifyError):
    """The object does not exist for this caller (another tenant's or account's answers the same)."""


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

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
    """Turn one exception change into in-app notifications, e-mails and webhook deliveries."""
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
    exception_facts = _exception_facts(exception)
    customer = rules.customer_may_hear(topic, payload)
    comment = await _comment(session, scope, payload) if topic == topics.COMMENTED else None
    link = f"{public_url.rstrip('/')}/track/{shipment['reference']}"
    brand = await branding(session, scope)
    preferences = await _preferences(session, scope)

    for recipient in await _recipients(session, scope, exception, topic, payload, customer):
        if topic == topics.COMMENTED and recipient.shipper and not payload.get("customer_visible"):
            continue
        preference = preferences.get(("user", recipient.user.id))
        account_preference = (
            preferences.get(("account", recipient.user.account_id)) if recipient.shipper else None
        )
        how = rules.channels(
            preference,
            shipper=recipient.shipper,
            category=exception.category,
            severity=exception.severity,
            account=account_preference,
        )
        title = f"{_TITLES.get(topic, 'Exception')}: {exception.exception_type} on {shipment['reference']}"
        body = (
            comment
            if (comment and (not recipient.shipper or payload.get("customer_visible")))
            else exception.explanation
        )
        if how.in_app or how.digest:
            added = await _notify_in_app(
                session, scope, recipient.user.id, outbox_id, topic, exception, title, body, digest=how.digest
            )
            report.notifications += added
        if how.email and topic != topics.CUSTOMER_NOTICE:
            key = _TEMPLATE_OF.get(topic, TemplateKey.EXCEPTION_UPDATE)
            context = {
                "brand": brand,
                "recipient": {"name": recipient.user.name},
                "exception": exception_facts if not recipient.shipper else _customer_facts(exception_facts),
                "shipment": shipment,
                "link": link,
                "reason": payload.get("reason", ""),
                "step": payload.get("step", ""),
                "comment": comment or "",
            }
            report.emails += await _queue_email(session, scope, outbox_id, recipient.user, key, context, now)
        if how.email and topic == topics.CUSTOMER_NOTICE and recipient.shipper:
            key = TemplateKey(payload.get("template", TemplateKey.EXCEPTION_UPDATE))
            context = {
                "brand": brand,
                "recipient": {"name": recipient.user.name},
                "exception": _customer_facts(exception_facts),
                "shipment": shipment,
                "link": link,
            }
            report.emails += await _queue_email(session, scope, outbox_id, recipient.user, key, context, now)

    report.deliveries += await _queue_webhooks(
        session, scope, topic, payload, exception, shipment, customer, now
    )
    await session.flush()
    return report


def _exception_facts(row: ShipmentException) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "type": row.exception_type,
        "category": row.category,
        "severity": row.severity,
        "status": row.status,
        "key": row.milestone_code,
        "explanation": row.explanation,
        "first_seen_at": row.first_seen_at.isoformat(),
        "evidence": row.evidence,
    }


def _customer_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    return rules.customer_view(facts)


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


async def _comment(session: AsyncSession, scope: TenantScope, payload: Mapping[str, Any]) -> str | None:
    activity_id = payload.get("activity_id")
    if not activity_id:
        return None
    note = await session.execute(
        scoped(select(ExceptionActivity.note), ExceptionActivity, scope).where(
            ExceptionActivity.id == uuid.UUID(activity_id)
        )
    )
    return note.scalar_one_or_none()


async def branding(session: AsyncSession, scope: TenantScope) -> dict[str, str]:
    row = (await session.execute(scoped(select(MailBranding), MailBranding, scope))).scalar_one_or_none()
    if row is not None:
        return {
            "name": row.display_name,
            "colour": row.colour,
            "footer": row.footer,
            "from": row.from_address or "",
        }
    tenant = (await session.execute(scoped(select(Tenant), Tenant, scope))).scalar_one()
    return {"name": tenant.name, "colour": "#1f6feb", "footer": "", "from": ""}


async def _preferences(
    session: AsyncSession, scope: TenantScope
) -> dict[tuple[str, uuid.UUID | None], Preference]:
    rows = (
        await session.execute(
            scoped(select(NotificationPreference), NotificationPreference, TenantScope(scope.tenant_id))
        )
    ).scalars()
    found: dict[tuple[str, uuid.UUID | None], Preference] = {}
    for row in rows:
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
    """Staff: the assignee, the assigned team's members, followers, escalation targets. Shippers (for
    topics they may hear): the account's active shipper users."""
    staff_ids: set[uuid.UUID] = set()
    if exception.assignee_user_id:
        staff_ids.add(exception.assignee_user_id)
    if exception.assignee_team_id:
        members = await session.execute(
            scoped(select(TeamMember.user_id), TeamMember, scope).where(
                TeamMember.team_id == exception.assignee_team_id
            )
        )
        staff_ids.update(u for (u,) in members)
    followers = await session.execute(
        scoped(select(ExceptionFollower.user_id), ExceptionFollower, scope).where(
            ExceptionFollower.exception_id == exception.id
        )
    )
    follower_ids = {u for (u,) in followers}
    targets = {uuid.UUID(u) for u in payload.get("target_user_ids") or ()}
    wanted = staff_ids | follower_ids | targets
    tenant_wide = TenantScope(scope.tenant_id)
    users: list[User] = []
    if wanted:
        statement = scoped(select(User), User, tenant_wide).where(User.is_active, User.id.in_(list(wanted)))
        users = list((await session.execute(statement)).scalars())
    recipients = [Recipient(u, shipper=False) for u in users if u.account_id is None]
    # followers who are shipper users of the exception's account hear the customer topics like the account
    if customer:
        shippers = (
            await session.execute(
                scoped(select(User), User, tenant_wide).where(
                    User.is_active, User.account_id == exception.account_id
                )
            )
        ).scalars()
        recipients += [Recipient(u, shipper=True) for u in shippers]
    return sorted(recipients, key=lambda r: str(r.user.id))


async def _notify_in_app(
    session: AsyncSession,
    scope: TenantScope,
    user_id: uuid.UUID,
    outbox_id: int,
    topic: str,
    exception: ShipmentException,
    title: str,
    body: str,
    *,
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
            digest_pending=digest,
        )
        .on_conflict_do_nothing(
            index_elements=["tenant_id", "outbox_id", "user_id"], index_where=text("outbox_id IS NOT NULL")
        )
    )
    return (await session.execute(statement)).rowcount or 0  # type: ignore[attr-defined]


async def template_for(session: AsyncSession, scope: TenantScope, key: TemplateKey) -> Template:
    row = (
        await session.execute(
            scoped(select(EmailTemplate), EmailTemplate, scope).where(EmailTemplate.key == key)
        )
    ).scalar_one_or_none()
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
    mail = rules.render(await template_for(session, scope, key), context)
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
    shipment: Mapping[str, Any],
    customer: bool,
    now: dt.datetime,
) -> int:
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
    facts = _exception_facts(exception)
    for endpoint in endpoints:
        for_shipper = endpoint.account_id is not None
        if for_shipper and not customer:
            continue
        data: dict[str, Any] = {
            "exception": rules.customer_view(facts) if for_shipper else facts,
            "shipment": {k: shipment[k] for k in ("id", "reference", "mode", "origin", "destination")},
        }
        if not for_shipper:
            data["change"] = {k: v for k, v in payload.items() if k not in ("outbox_id",)}
        body = {"type": topic, "timestamp": now.isoformat(), "data": data}
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
                next_attempt_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=["tenant_id", "endpoint_id", "outbox_id"],
                index_where=text("outbox_id IS NOT NULL"),
            )
        )
        queued += (await session.execute(statement)).rowcount or 0  # type: ignore[attr-defined]
    return queued


# --- sending -------------------------------------------------------------------------------------------

Poster = Callable[
    [str, bytes, Mapping[str, str]], Awaitable[tuple[int | None, Mapping[str, str], str, str | None]]
]


@dataclass
class SendReport:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    disabled_endpoints: list[uuid.UUID] = field(default_factory=list)


DISABLE_AFTER_FAILURES = 10


async def deliver_due_webhooks(
    session: AsyncSession,
    scope: TenantScope,
    post: Poster,
    *,
    now: dt.datetime,
    limit: int = 100,
    disable_after: int = DISABLE_AFTER_FAILURES,
) -> SendReport:
    """POST the due deliveries (rows locked, others' skipped), record each attempt, schedule retries
    (exponential backoff, ``Retry-After`` honoured), and disable an endpoint after ``disable_after``
    consecutive failed attempts, with a notice to the tenant's admins."""
    report = SendReport()
    due = (
        (
            await session.execute(
                scoped(select(WebhookDelivery), WebhookDelivery, scope)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    for delivery in due:
        endpoint = (
            await session.execute(
                scoped(select(WebhookEndpoint), WebhookEndpoint, scope)
                .where(WebhookEndpoint.id == delivery.endpoint_id)
                .with_for_update()
            )
        ).scalar_one()
        if not endpoint.enabled:
            delivery.next_attempt_at = None  # waits for the endpoint to be enabled again (or a replay)
            continue
        body = json.dumps(delivery.body, separators=(",", ":"), sort_keys=True).encode()
        timestamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "Milepost-Webhooks/1",
            "webhook-id": f"msg_{delivery.id.hex}",
            "webhook-timestamp": str(timestamp),
            "webhook-signature": rules.sign(endpoint.secret, f"msg_{delivery.id.hex}", timestamp, body),
        }
        started = time.perf_counter()
        status, response_headers, excerpt, error = await post(endpoint.url, body, headers)
        duration = int((time.perf_counter() - started) * 1000)
        report.attempted += 1
        delivery.attempts += 1
        delivery.last_status_code = status
        session.add(
            WebhookAttempt(
                tenant_id=scope.tenant_id,
                id=uuid.uuid4(),
                delivery_id=delivery.id,
                attempted_at=now,
                status_code=status,
                duration_ms=duration,
                error=error,
                response_excerpt=excerpt[:500] if excerpt else None,
            )
        )
        if status is not None and 200 <= status < 300:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
            endpoint.consecutive_failures = 0
            report.succeeded += 1
            continue
        report.failed += 1
        endpoint.consecutive_failures += 1
        later = rules.next_attempt(
            delivery.attempts, now, rules.retry_after(response_headers.get("retry-after"), now)
        )
        if later is None:
            delivery.status, delivery.next_attempt_at = "failed", None
        else:
            delivery.next_attempt_at = later
        if endpoint.consecutive_failures >= disable_after and endpoint.enabled:
            reason = f"{endpoint.consecutive_failures} failed attempts in a row (last: {error or status})"
            await disable_endpoint(session, scope, endpoint, reason, now)
            report.disabled_endpoints.append(endpoint.id)
    await session.flush()
    return report


async def disable_endpoint(
    session: AsyncSession, scope: TenantScope, endpoint: WebhookEndpoint, reason: str, now: dt.datetime
) -> None:
    """Stop sending to an endpoint and tell the tenant's admins (in the app and by e-mail)."""
    endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason, now
    admins = await active_admins(session, scope)
    brand = await branding(session, scope)
    for admin in admins:
        session.add(
            Notification(
                tenant_id=scope.tenant_id,
                id=uuid.uuid4(),
                user_id=admin.id,
                topic="webhook.endpoint_disabled",
                severity="high",
                title=f"Webhook endpoint disabled: {endpoint.url}",
                body=reason,
            )
        )
        context = {
            "brand": brand,
            "recipient": {"name": admin.name},
            "endpoint": {"url": endpoint.url, "reason": reason},
        }
        await _queue_email(session, scope, None, admin, TemplateKey.ENDPOINT_DISABLED, context, now)


Mailer = Callable[[MimeMessage], Awaitable[None]]


async def send_due_emails(
    session: AsyncSession,
    scope: TenantScope,
    send: Mailer,
    *,
    sender: str,
    now: dt.datetime,
    limit: int = 100,
) -> SendReport:
    """Send the due e-mails; a failure is retried with the webhook backoff, then marked failed."""
    report = SendReport()
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
    brand = await branding(session, scope) if due else {}
    for mail in due:
        message = MimeMessage()
        message["From"] = f"{brand['name']} <{brand['from'] or sender}>"
        message["To"] = mail.to_address
        message["Subject"] = mail.subject
        message["Message-ID"] = f"<{mail.id.hex}@milepost>"
        message.set_content(mail.text_body)
        if mail.html_body:
            message.add_alternative(mail.html_body, subtype="html")
        report.attempted += 1
        mail.attempts += 1
        try:
            await send(message)
        except Exception as error:  # any failure of the mail server is retried
            report.failed += 1
            mail.error = f"{type(error).__name__}: {error}"[:1000]
            later = rules.next_attempt(mail.attempts, now, None)
            if later is None:
                mail.status, mail.next_attempt_at = EmailStatus.FAILED, None
            else:
                mail.next_attempt_at = later
            continue
        mail.status, mail.sent_at, mail.next_attempt_at, mail.error = EmailStatus.SENT, now, None, None
        report.succeeded += 1
    await session.flush()
    return report


async def queue_digests(session: AsyncSession, scope: TenantScope, *, now: dt.datetime) -> int:
    """One digest e-mail per user with notifications waiting for it; how many were queued."""
    pending = (
        (
            await session.execute(
                scoped(select(Notification), Notification, scope)
                .where(Notification.digest_pending)
                .order_by(Notification.user_id, Notification.created_at)
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
    users = {
        u.id: u
        for u in (
            await session.execute(
                scoped(select(User), User, TenantScope(scope.tenant_id)).where(User.id.in_(list(by_user)))
            )
        ).scalars()
    }
    for user_id, rows in by_user.items():
        items = rules.digest_items(
            {"title": r.title, "body": r.body, "severity": r.severity, "created_at": r.created_at.isoformat()}
            for r in rows
        )
        context = {
            "brand": brand,
            "recipient": {"name": users[user_id].name},
            "items": items,
            "count": len(items),
        }
        await _queue_email(session, scope, None, users[user_id], TemplateKey.DIGEST, context, now)
        for row in rows:
            row.digest_pending = False
    await session.flush()
    return len(by_user)


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
    allowed = rules.CUSTOMER_TOPICS if draft.account_id else rules.EVENT_TYPES
    for index, event_type in enumerate(draft.event_types):
        if event_type not in allowed:
            raise NotifyError(
                f"eventTypes[{index}]: unknown event type {event_type!r}; one of {', '.join(sorted(allowed))}"
            )
    if len(draft.description) > 500:
        raise NotifyError("description: at most 500 characters")


async def create_endpoint(
    session: AsyncSession, scope: TenantScope, draft: EndpointDraft, *, development: bool
) -> WebhookEndpoint:
    """A new endpoint with a fresh secret (shown once, by the caller)."""
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


async def endpoint(session: AsyncSession, scope: TenantScope, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    """An endpoint the scope may manage: a shipper scope reaches its own account's only."""
    statement = scoped(select(WebhookEndpoint), WebhookEndpoint, scope).where(
        WebhookEndpoint.id == endpoint_id
    )
    if scope.account_id is not None:
        statement = statement.where(WebhookEndpoint.account_id == scope.account_id)
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None:
        raise NotifyNotFound(f"id: no webhook endpoint {endpoint_id}")
    return row


async def update_endpoint(
    session: AsyncSession,
    scope: TenantScope,
    endpoint_id: uuid.UUID,
    *,
    url: str | None,
    event_types: Sequence[str] | None,
    enabled: bool | None,
    development: bool,
) -> WebhookEndpoint:
    row = await endpoint(session, scope, endpoint_id)
    draft = EndpointDraft(
        url if url is not None else row.url,
        event_types if event_types is not None else row.event_types,
        row.description,
        row.account_id,
    )
    _check_endpoint(draft, development=development)
    row.url, row.event_types = draft.url, list(dict.fromkeys(draft.event_types))
    if enabled is not None and enabled != row.enabled:
        row.enabled = enabled
        if enabled:  # a fresh start: reset the failure count and send what waited
            row.consecutive_failures, row.disabled_reason, row.disabled_at = 0, None, None
            await session.execute(
                update(WebhookDelivery)
                .where(
                    tenant_condition(WebhookDelivery, scope),
                    WebhookDelivery.endpoint_id == row.id,
                    WebhookDelivery.status == "pending",
                )
                .values(next_attempt_at=func.now())
            )
    await session.flush()
    return row


async def rotate_secret(session: AsyncSession, scope: TenantScope, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    row = await endpoint(session, scope, endpoint_id)
    row.secret = rules.new_secret()
    await session.flush()
    return row


async def delete_endpoint(session: AsyncSession, scope: TenantScope, endpoint_id: uuid.UUID) -> None:
    row = await endpoint(session, scope, endpoint_id)
    await session.delete(row)
    await session.flush()


async def replay_delivery(
    session: AsyncSession, scope: TenantScope, delivery_id: uuid.UUID, *, now: dt.datetime
) -> WebhookDelivery:
    """Send a delivery's body again as a new delivery (same event, new attempts)."""
    statement = scoped(select(WebhookDelivery), WebhookDelivery, scope).where(
        WebhookDelivery.id == delivery_id
    )
    original = (await session.execute(statement)).scalar_one_or_none()
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
        next_attempt_at=now,
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
    try:
        rules.check_template(TemplateKey(key), template)
    except rules.TemplateError as error:
        raise NotifyError(str(error)) from None
    row = (
        await session.execute(
            scoped(select(EmailTemplate), EmailTemplate, scope).where(EmailTemplate.key == key)
        )
    ).scalar_one_or_none()
    if row is None:
        row = EmailTemplate(tenant_id=scope.tenant_id, id=uuid.uuid4(), key=key)
        session.add(row)
    row.subject, row.text_body, row.html_body = template.subject, template.text, template.html
    await session.flush()
    return row


async def set_branding(
    session: AsyncSession,
    scope: TenantScope,
    *,
    display_name: str,
    from_address: str | None,
    colour: str,
    footer: str,
) -> MailBranding:
    if not display_name.strip() or len(display_name) > 200:
        raise NotifyError("displayName: 1 to 200 characters")
    if from_address is not None and not EMAIL.match(from_address):
        raise NotifyError(f"fromAddress: {from_address!r} is not an e-mail address")
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        raise NotifyError(f"colour: {colour!r} is not a #rrggbb colour")
    row = (await session.execute(scoped(select(MailBranding), MailBranding, scope))).scalar_one_or_none()
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


async def set_preference(
    session: AsyncSession,
    scope: TenantScope,
    *,
    user_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    preference: Preference,
) -> NotificationPreference:
    """A user's own preference, or (``account_id``) the default of every user of a shipper account."""
    for index, category in enumerate(sorted(preference.categories or ())):
        if category not in Category.__members__.values():
            raise NotifyError(f"categories[{index}]: unknown category {category!r}")
    tenant_wide = TenantScope(scope.tenant_id)
    owner = (
        NotificationPreference.user_id == user_id
        if user_id
        else NotificationPreference.account_id == account_id
    )
    row = (
        await session.execute(
            scoped(select(NotificationPreference), NotificationPreference, tenant_wide).where(owner)
        )
    ).scalar_one_or_none()
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


async def preference_for(
    session: AsyncSession, scope: TenantScope, *, user_id: uuid.UUID | None, account_id: uuid.UUID | None
) -> NotificationPreference | None:
    owner = (
        NotificationPreference.user_id == user_id
        if user_id
        else NotificationPreference.account_id == account_id
    )
    statement = scoped(select(NotificationPreference), NotificationPreference, TenantScope(scope.tenant_id))
    return (await session.execute(statement.where(owner))).scalar_one_or_none()


async def follow(
    session: AsyncSession, scope: TenantScope, exception_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Follow an exception the scope can see (a shipper scope: its own account's)."""
    visible = await session.execute(
        scoped(select(ShipmentException.id), ShipmentException, scope).where(
            ShipmentException.id == exception_id, ShipmentException.shadow.is_(False)
        )
    )
    if visible.first() is None:
        raise NotifyNotFound(f"id: exception {exception_id} not found")
    await session.execute(
        insert(ExceptionFollower)
        .values(tenant_id=scope.tenant_id, exception_id=exception_id, user_id=user_id)
        .on_conflict_do_nothing()
    )


async def unfollow(
    session: AsyncSession, scope: TenantScope, exception_id: uuid.UUID, user_id: uuid.UUID
) -> None:
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
    """Mark the user's notifications read (``ids`` None: all); how many changed."""
    statement = update(Notification).where(
        tenant_condition(Notification, scope), Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if ids is not None:
        statement = statement.where(Notification.id.in_(list(ids)))
    result = await session.execute(statement.values(read_at=now))
    return result.rowcount or 0  # type: ignore[attr-defined]
