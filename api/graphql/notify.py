"""Notifications in GraphQL: the viewer's in-app notifications and preferences, webhook endpoints with
their delivery log, e-mail templates and branding, following exceptions.

Tenant admins manage the tenant's endpoints (and any account's), templates and branding; a shipper user
manages its own account's endpoints and preferences and follows its own account's exceptions. Anything
outside the caller's reach answers as not found.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import strawberry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from api.graphql.context import Context
from api.graphql.permissions import require_admin, require_exception_read
from api.graphql.relay import (
    DEFAULT_PAGE_SIZE,
    Forbidden,
    Node,
    PageInfo,
    check_page_size,
    decode_cursor,
    expect_global_id,
    paginate,
    to_global_id,
)
from api.graphql.tracking.types import InvalidInputError, NotFoundError
from domain.db import TenantScope, scoped
from domain.exceptions.models import Category, Severity
from domain.notify import rules, service
from domain.notify.models import EmailTemplate as EmailTemplateRow
from domain.notify.models import Notification as NotificationRow
from domain.notify.models import NotificationPreference as PreferenceRow
from domain.notify.models import WebhookAttempt as AttemptRow
from domain.notify.models import WebhookDelivery as DeliveryRow
from domain.notify.models import WebhookEndpoint as EndpointRow
from domain.notify.service import NotifyError, NotifyNotFound
from domain.shipments.repository import PageKey, after_in_newest_first
from domain.tenancy.principal import Principal

Info = strawberry.Info[Context, None]
T = TypeVar("T")

DeliveryMode = strawberry.enum(
    rules.Delivery, name="NotificationDelivery", description="E-mail now or in a digest."
)
TemplateKey = strawberry.enum(
    rules.TemplateKey, name="EmailTemplateKey", description="Which e-mail a template is."
)


def _user(principal: Principal) -> uuid.UUID:
    if principal.subject_kind != "user":
        raise Forbidden("notifications belong to users; partner clients have webhooks")
    return principal.subject_id


def _may_manage_endpoints(principal: Principal) -> None:
    if principal.subject_kind == "user" and (principal.is_shipper or "admin" in principal.roles):
        return
    raise Forbidden("webhook endpoints are managed by tenant admins and by shipper users for their account")


async def _attempt(
    info: Info, work: Callable[[AsyncSession], Awaitable[T]]
) -> T | NotFoundError | InvalidInputError:
    try:
        return await info.context.loaders.run(work)
    except NotifyNotFound as error:
        return NotFoundError(message=str(error).partition(": ")[2] or str(error))
    except NotifyError as error:
        return InvalidInputError(field=str(error).partition(":")[0], message=str(error))


# --- types ---------------------------------------------------------------------------------------------


@strawberry.type(description="A notification in the app, for one user.")
class Notification(Node):
    row: strawberry.Private[NotificationRow]

    @strawberry.field(description="What happened, in one line.")
    def title(self) -> str:
        return self.row.title

    @strawberry.field(description="The explanation or comment behind it.")
    def body(self) -> str:
        return self.row.body

    @strawberry.field(description="The change it announces (an exception topic).")
    def topic(self) -> str:
        return self.row.topic

    @strawberry.field(description="The exception's global id, if about one.")
    def exception_id(self) -> strawberry.ID | None:
        return to_global_id("ShipmentException", self.row.exception_id) if self.row.exception_id else None

    @strawberry.field(description="Severity of what it is about.")
    def severity(self) -> str:
        return self.row.severity

    @strawberry.field(description="When it was read; null while unread.")
    def read_at(self) -> dt.datetime | None:
        return self.row.read_at

    @strawberry.field(description="When it was created.")
    def created_at(self) -> dt.datetime:
        return self.row.created_at


@strawberry.type(description="A notification in a connection, with its cursor.")
class NotificationEdge:
    cursor: str = strawberry.field(description="Opaque position; pass as `after` to continue.")
    node: Notification = strawberry.field(description="The notification.")


@strawberry.type(description="A page of the viewer's notifications, newest first.")
class NotificationConnection:
    edges: list[NotificationEdge] = strawberry.field(description="This page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")
    unread_count: int = strawberry.field(description="Unread notifications in all.")


@strawberry.type(description="What someone wants to hear and how (defaults apply where none is set).")
class NotificationPreference:
    categories: list[str] | None = strawberry.field(description="Only these categories (null: all).")
    min_severity: str = strawberry.field(description="Nothing below this severity.")
    email: bool = strawberry.field(description="E-mail on.")
    in_app: bool = strawberry.field(description="In-app notifications on.")
    delivery: DeliveryMode = strawberry.field(description="E-mail at once or in a digest.")  # type: ignore[valid-type]
    is_default: bool = strawberry.field(description="Nothing set: these are the defaults.")


def _preference(row: PreferenceRow | None, default: rules.Preference) -> NotificationPreference:
    value = service.preference_of(row) if row is not None else default
    return NotificationPreference(
        categories=sorted(value.categories) if value.categories is not None else None,
        min_severity=value.min_severity,
        email=value.email,
        in_app=value.in_app,
        delivery=value.delivery,
        is_default=row is None,
    )


@strawberry.type(description="The viewer's preference and, for shipper users, their account's.")
class NotificationPreferences:
    mine: NotificationPreference = strawberry.field(description="The viewer's own.")
    account: NotificationPreference | None = strawberry.field(
        description="The account's default for its users (shipper users only)."
    )


@strawberry.type(description="Where Milepost POSTs signed events (Standard Webhooks).")
class WebhookEndpoint(Node):
    row: strawberry.Private[EndpointRow]

    @strawberry.field(description="The URL (https; http to loopback in development only).")
    def url(self) -> str:
        return self.row.url

    @strawberry.field(description="What it is for.")
    def description(self) -> str:
        return self.row.description

    @strawberry.field(description="The event types it receives (exception topics).")
    def event_types(self) -> list[str]:
        return list(self.row.event_types)

    @strawberry.field(description="The shipper account it belongs to (null: the tenant's own).")
    def account_id(self) -> strawberry.ID | None:
        return to_global_id("Account", self.row.account_id) if self.row.account_id else None

    @strawberry.field(description="Disabled endpoints receive nothing until enabled again.")
    def enabled(self) -> bool:
        return self.row.enabled

    @strawberry.field(description="Why it was disabled.")
    def disabled_reason(self) -> str | None:
        return self.row.disabled_reason

    @strawberry.field(description="Failed attempts in a row.")
    def consecutive_failures(self) -> int:
        return self.row.consecutive_failures


@strawberry.type(description="One HTTP attempt of a delivery.")
class WebhookAttempt:
    at: dt.datetime = strawberry.field(description="When.")
    status_code: int | None = strawberry.field(description="The HTTP status (null: no answer).")
    duration_ms: int = strawberry.field(description="How long it took.")
    error: str | None = strawberry.field(description="The network error, if any.")
    response_excerpt: str | None = strawberry.field(description="The first 500 characters of the answer.")


@strawberry.type(description="One event for one endpoint, with its attempts.")
class WebhookDelivery(Node):
    row: strawberry.Private[DeliveryRow]

    @strawberry.field(description="The event type.")
    def event_type(self) -> str:
        return self.row.event_type

    @strawberry.field(description="pending, delivered or failed.")
    def status(self) -> str:
        return self.row.status

    @strawberry.field(description="The JSON body as sent.")
    def body(self) -> JSON:
        return self.row.body  # type: ignore[return-value]

    @strawberry.field(description="Attempts so far.")
    def attempt_count(self) -> int:
        return self.row.attempts

    @strawberry.field(description="When the next attempt is due.")
    def next_attempt_at(self) -> dt.datetime | None:
        return self.row.next_attempt_at

    @strawberry.field(description="When it was delivered.")
    def delivered_at(self) -> dt.datetime | None:
        return self.row.delivered_at

    @strawberry.field(description="The delivery this one replays.")
    def replay_of(self) -> strawberry.ID | None:
        return to_global_id("WebhookDelivery", self.row.replay_of) if self.row.replay_of else None

    @strawberry.field(description="The delivery log: each attempt, oldest first.")
    async def attempts(self, info: Info) -> list[WebhookAttempt]:
        scope = info.context.principal.scope
        delivery_id = self.row.id

        async def work(session: AsyncSession) -> list[AttemptRow]:
            statement = scoped(select(AttemptRow), AttemptRow, TenantScope(scope.tenant_id))
            rows = await session.execute(
                statement.where(AttemptRow.delivery_id == delivery_id).order_by(AttemptRow.attempted_at)
            )
            return list(rows.scalars())

        return [
            WebhookAttempt(
                at=a.attempted_at,
                status_code=a.status_code,
                duration_ms=a.duration_ms,
                error=a.error,
                response_excerpt=a.response_excerpt,
            )
            for a in await info.context.loaders.run(work)
        ]


@strawberry.type(description="A delivery in a connection, with its cursor.")
class WebhookDeliveryEdge:
    cursor: str = strawberry.field(description="Opaque position; pass as `after` to continue.")
    node: WebhookDelivery = strawberry.field(description="The delivery.")


@strawberry.type(description="A page of deliveries, newest first.")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge] = strawberry.field(description="This page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.type(description="An e-mail template: the tenant's override or the built-in one.")
class EmailTemplate:
    key: TemplateKey = strawberry.field(description="Which e-mail.")  # type: ignore[valid-type]
    subject: str = strawberry.field(description="Subject (jinja2).")
    text: str = strawberry.field(description="Plain-text body (jinja2).")
    html: str | None = strawberry.field(description="HTML body (jinja2, escaped).")
    built_in: bool = strawberry.field(description="Milepost's default (no tenant override).")
    fields: list[str] = strawberry.field(description="The fields it may use, e.g. `exception.explanation`.")


def _fields(key: rules.TemplateKey) -> list[str]:
    return sorted(
        f"{name}.{attribute}" if attribute else name
        for name, attributes in rules.CONTEXT[key].items()
        for attribute in (attributes or ("",))
    )


# --- payloads ------------------------------------------------------------------------------------------


@strawberry.type(description="The endpoint and, once, its signing secret.")
class WebhookEndpointSecretSuccess:
    endpoint: WebhookEndpoint = strawberry.field(description="The endpoint.")
    secret: str = strawberry.field(description="The signing secret (`whsec_...`): shown only now.")


@strawberry.type(description="The endpoint as saved.")
class WebhookEndpointSuccess:
    endpoint: WebhookEndpoint = strawberry.field(description="The endpoint.")


@strawberry.type(description="The new delivery, queued.")
class ReplayWebhookDeliverySuccess:
    delivery: WebhookDelivery = strawberry.field(description="The replay.")


@strawberry.type(description="Done.")
class NotifyDone:
    count: int = strawberry.field(description="How many rows changed.")


@strawberry.type(description="The template as saved.")
class EmailTemplateSuccess:
    template: EmailTemplate = strawberry.field(description="The template.")


@strawberry.type(description="The preference as saved.")
class NotificationPreferenceSuccess:
    preference: NotificationPreference = strawberry.field(description="The preference.")


WebhookEndpointSecretPayload = Annotated[
    WebhookEndpointSecretSuccess | NotFoundError | InvalidInputError,
    strawberry.union("WebhookEndpointSecretPayload", description="The endpoint with its secret, or why not."),
]
WebhookEndpointPayload = Annotated[
    WebhookEndpointSuccess | NotFoundError | InvalidInputError,
    strawberry.union("WebhookEndpointPayload", description="The endpoint, or why not."),
]
ReplayWebhookDeliveryPayload = Annotated[
    ReplayWebhookDeliverySuccess | NotFoundError | InvalidInputError,
    strawberry.union("ReplayWebhookDeliveryPayload", description="The replay, or why not."),
]
NotifyDonePayload = Annotated[
    NotifyDone | NotFoundError | InvalidInputError,
    strawberry.union("NotifyDonePayload", description="How many changed, or why not."),
]
EmailTemplatePayload = Annotated[
    EmailTemplateSuccess | InvalidInputError,
    strawberry.union("EmailTemplatePayload", description="The template, or why not."),
]
NotificationPreferencePayload = Annotated[
    NotificationPreferenceSuccess | InvalidInputError,
    strawberry.union("NotificationPreferencePayload", description="The preference, or why not."),
]


@strawberry.input(description="A webhook endpoint.")
class WebhookEndpointInput:
    url: str = strawberry.field(description="https URL (http to loopback in development only).")
    event_types: list[str] = strawberry.field(description="Exception topics, e.g. `exception.opened`.")
    description: str = strawberry.field(default="", description="What it is for.")
    account_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="For a shipper account (admins); shipper users' endpoints are their account's.",
    )


@strawberry.input(description="What to hear and how.")
class NotificationPreferenceInput:
    categories: list[str] | None = strawberry.field(default=None, description="Only these (null: all).")
    min_severity: str = strawberry.field(default="low", description="Nothing below this severity.")
    email: bool = strawberry.field(default=True, description="E-mail on.")
    in_app: bool = strawberry.field(default=True, description="In-app on.")
    delivery: rules.Delivery = strawberry.field(
        default=rules.Delivery.IMMEDIATE, description="Now or digest."
    )


# --- queries -------------------------------------------------------------------------------------------


async def notifications(
    info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None, unread_only: bool = False
) -> NotificationConnection:
    principal = info.context.principal
    user_id = _user(principal)
    limit = check_page_size(first, info.context.state.settings.graphql_max_page_size)
    position = decode_cursor(after) if after else None
    scope = principal.scope

    async def work(session: AsyncSession) -> tuple[list[NotificationRow], int]:
        base = scoped(select(NotificationRow), NotificationRow, scope).where(
            NotificationRow.user_id == user_id
        )
        statement = base.where(NotificationRow.read_at.is_(None)) if unread_only else base
        if position is not None:
            statement = statement.where(after_in_newest_first(NotificationRow, position))
        statement = statement.order_by(NotificationRow.created_at.desc(), NotificationRow.id.desc()).limit(
            limit + 1
        )
        unread = await session.execute(
            scoped(select(func.count()), NotificationRow, scope).where(
                NotificationRow.user_id == user_id, NotificationRow.read_at.is_(None)
            )
        )
        return list((await session.execute(statement)).scalars()), int(unread.scalar_one())

    rows, unread_count = await info.context.loaders.run(work)
    cursored, page_info = paginate(rows, limit, lambda row: PageKey(row.created_at, row.id))
    return NotificationConnection(
        edges=[
            NotificationEdge(cursor=c, node=Notification(id=to_global_id("Notification", r.id), row=r))
            for c, r in cursored
        ],
        page_info=page_info,
        unread_count=unread_count,
    )


async def notification_preferences(info: Info) -> NotificationPreferences:
    principal = info.context.principal
    user_id = _user(principal)
    scope = principal.scope

    async def work(session: AsyncSession) -> tuple[PreferenceRow | None, PreferenceRow | None]:
        mine = await service.preference_for(session, scope, user_id=user_id, account_id=None)
        account = (
            await service.preference_for(session, scope, user_id=None, account_id=principal.account_id)
            if principal.account_id
            else None
        )
        return mine, account

    mine, account = await info.context.loaders.run(work)
    default = rules.SHIPPER_DEFAULT if principal.is_shipper else rules.STAFF_DEFAULT
    return NotificationPreferences(
        mine=_preference(mine, default),
        account=_preference(account, rules.SHIPPER_DEFAULT) if principal.is_shipper else None,
    )


async def webhook_endpoints(info: Info) -> list[WebhookEndpoint]:
    principal = info.context.principal
    _may_manage_endpoints(principal)
    scope = principal.scope

    async def work(session: AsyncSession) -> list[EndpointRow]:
        statement = scoped(select(EndpointRow), EndpointRow, scope).order_by(
            EndpointRow.created_at, EndpointRow.id
        )
        if scope.account_id is not None:
            statement = statement.where(EndpointRow.account_id == scope.account_id)
        return list((await session.execute(statement)).scalars())

    return [_endpoint(row) for row in await info.context.loaders.run(work)]


def _endpoint(row: EndpointRow) -> WebhookEndpoint:
    return WebhookEndpoint(id=to_global_id("WebhookEndpoint", row.id), row=row)


def _delivery(row: DeliveryRow) -> WebhookDelivery:
    return WebhookDelivery(id=to_global_id("WebhookDelivery", row.id), row=row)


async def webhook_deliveries(
    info: Info, endpoint_id: strawberry.ID, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
) -> WebhookDeliveryConnection:
    principal = info.context.principal
    _may_manage_endpoints(principal)
    limit = check_page_size(first, info.context.state.settings.graphql_max_page_size)
    position = decode_cursor(after) if after else None
    scope = principal.scope
    value = expect_global_id(endpoint_id, "WebhookEndpoint", argument="endpointId")

    async def work(session: AsyncSession) -> list[DeliveryRow]:
        if value is None:
            return []
        try:
            await service.endpoint(session, scope, value)
        except NotifyNotFound:
            return []
        statement = scoped(select(DeliveryRow), DeliveryRow, scope).where(DeliveryRow.endpoint_id == value)
        if position is not None:
            statement = statement.where(after_in_newest_first(DeliveryRow, position))
        statement = statement.order_by(DeliveryRow.created_at.desc(), DeliveryRow.id.desc()).limit(limit + 1)
        return list((await session.execute(statement)).scalars())

    rows = await info.context.loaders.run(work)
    cursored, page_info = paginate(rows, limit, lambda row: PageKey(row.created_at, row.id))
    return WebhookDeliveryConnection(
        edges=[WebhookDeliveryEdge(cursor=c, node=_delivery(r)) for c, r in cursored], page_info=page_info
    )


async def email_templates(info: Info) -> list[EmailTemplate]:
    principal = info.context.principal
    require_admin(principal)
    scope = principal.scope

    async def work(session: AsyncSession) -> dict[str, EmailTemplateRow]:
        rows = await session.execute(scoped(select(EmailTemplateRow), EmailTemplateRow, scope))
        return {r.key: r for r in rows.scalars()}

    stored = await info.context.loaders.run(work)
    result = []
    for key in rules.TemplateKey:
        row = stored.get(key.value)
        template = (
            rules.Template(row.subject, row.text_body, row.html_body) if row else rules.default_template(key)
        )
        result.append(
            EmailTemplate(
                key=key,
                subject=template.subject,
                text=template.text,
                html=template.html,
                built_in=row is None,
                fields=_fields(key),
            )
        )
    return result


# --- mutations -----------------------------------------------------------------------------------------


async def mark_notifications_read(info: Info, ids: list[strawberry.ID] | None = None) -> NotifyDonePayload:
    """``ids`` null: all of the viewer's notifications."""
    principal = info.context.principal
    user_id = _user(principal)
    values: list[uuid.UUID] | None = None
    if ids is not None:
        values = []
        for index, given in enumerate(ids):
            value = expect_global_id(given, "Notification", argument=f"ids[{index}]")
            if value is None:
                return InvalidInputError(
                    field=f"ids[{index}]", message=f"ids[{index}]: not a Notification id"
                )
            values.append(value)
    now = info.context.state.clock()
    count = await info.context.loaders.run(
        lambda session: service.mark_read(session, principal.scope, user_id, values, now=now)
    )
    return NotifyDone(count=count)


async def update_notification_preferences(
    info: Info, input: NotificationPreferenceInput, for_account: bool = False
) -> NotificationPreferencePayload:
    """The viewer's own preference, or (shipper users, ``forAccount``) their account's default."""
    principal = info.context.principal
    user_id = _user(principal)
    if for_account and not principal.is_shipper:
        raise Forbidden("account preferences are set by the account's shipper users")
    if input.min_severity not in Severity.__members__.values():
        return InvalidInputError(
            field="minSeverity", message=f"minSeverity: unknown severity {input.min_severity!r}"
        )
    for index, category in enumerate(input.categories or ()):
        if category not in Category.__members__.values():
            return InvalidInputError(
                field=f"categories[{index}]", message=f"categories[{index}]: unknown category {category!r}"
            )
    preference = rules.Preference(
        categories=frozenset(input.categories) if input.categories is not None else None,
        min_severity=input.min_severity,
        email=input.email,
        in_app=input.in_app,
        delivery=rules.Delivery(input.delivery),
    )
    result = await _attempt(
        info,
        lambda session: service.set_preference(
            session,
            principal.scope,
            user_id=None if for_account else user_id,
            account_id=principal.account_id if for_account else None,
            preference=preference,
        ),
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return (
            InvalidInputError(field="input", message=result.message)
            if isinstance(result, NotFoundError)
            else result
        )
    default = rules.SHIPPER_DEFAULT if principal.is_shipper else rules.STAFF_DEFAULT
    return NotificationPreferenceSuccess(preference=_preference(result, default))


def _development(info: Info) -> bool:
    return info.context.state.settings.environment == "development"


async def create_webhook_endpoint(info: Info, input: WebhookEndpointInput) -> WebhookEndpointSecretPayload:
    principal = info.context.principal
    _may_manage_endpoints(principal)
    account_id: uuid.UUID | None = principal.account_id
    if input.account_id is not None:
        given = expect_global_id(input.account_id, "Account", argument="accountId")
        if given is None or (principal.is_shipper and given != principal.account_id):
            return NotFoundError(message=f"no account {input.account_id}")
        account_id = given
    if account_id is not None and not principal.is_shipper:
        loaded = await info.context.loaders.account.load(account_id)
        if loaded is None:
            return NotFoundError(message=f"no account {input.account_id}")
    draft = service.EndpointDraft(input.url, input.event_types, input.description, account_id)
    result = await _attempt(
        info,
        lambda session: service.create_endpoint(
            session, principal.scope, draft, development=_development(info)
        ),
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return WebhookEndpointSecretSuccess(endpoint=_endpoint(result), secret=result.secret)


def _endpoint_id(id: strawberry.ID) -> uuid.UUID | NotFoundError:
    value = expect_global_id(id, "WebhookEndpoint")
    return value if value is not None else NotFoundError(message=f"no webhook endpoint {id}")


async def update_webhook_endpoint(
    info: Info,
    id: strawberry.ID,
    url: str | None = None,
    event_types: list[str] | None = None,
    enabled: bool | None = None,
) -> WebhookEndpointPayload:
    principal = info.context.principal
    _may_manage_endpoints(principal)
    value = _endpoint_id(id)
    if isinstance(value, NotFoundError):
        return value
    result = await _attempt(
        info,
        lambda session: service.update_endpoint(
            session,
            principal.scope,
            value,
            url=url,
            event_types=event_types,
            enabled=enabled,
            development=_development(info),
        ),
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return WebhookEndpointSuccess(endpoint=_endpoint(result))


async def rotate_webhook_secret(info: Info, id: strawberry.ID) -> WebhookEndpointSecretPayload:
    principal = info.context.principal
    _may_manage_endpoints(principal)
    value = _endpoint_id(id)
    if isinstance(value, NotFoundError):
        return value
    result = await _attempt(info, lambda session: service.rotate_secret(session, principal.scope, value))
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return WebhookEndpointSecretSuccess(endpoint=_endpoint(result), secret=result.secret)


async def delete_webhook_endpoint(info: Info, id: strawberry.ID) -> NotifyDonePayload:
    principal = info.context.principal
    _may_manage_endpoints(principal)
    value = _endpoint_id(id)
    if isinstance(value, NotFoundError):
        return value
    result = await _attempt(info, lambda session: service.delete_endpoint(session, principal.scope, value))
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return NotifyDone(count=1)


async def replay_webhook_delivery(info: Info, id: strawberry.ID) -> ReplayWebhookDeliveryPayload:
    principal = info.context.principal
    _may_manage_endpoints(principal)
    value = expect_global_id(id, "WebhookDelivery")
    if value is None:
        return NotFoundError(message=f"no webhook delivery {id}")
    now = info.context.state.clock()
    result = await _attempt(
        info, lambda session: service.replay_delivery(session, principal.scope, value, now=now)
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return ReplayWebhookDeliverySuccess(delivery=_delivery(result))


async def upsert_email_template(
    info: Info, key: str, subject: str, text: str, html: str | None = None
) -> EmailTemplatePayload:
    principal = info.context.principal
    require_admin(principal)
    template = rules.Template(subject, text, html)
    result = await _attempt(
        info, lambda session: service.upsert_template(session, principal.scope, key, template)
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return (
            InvalidInputError(field="key", message=result.message)
            if isinstance(result, NotFoundError)
            else result
        )
    return EmailTemplateSuccess(
        template=EmailTemplate(
            key=rules.TemplateKey(key),
            subject=subject,
            text=text,
            html=html,
            built_in=False,
            fields=_fields(rules.TemplateKey(key)),
        )
    )


async def set_mail_branding(
    info: Info, display_name: str, colour: str = "#1f6feb", footer: str = "", from_address: str | None = None
) -> NotifyDonePayload:
    principal = info.context.principal
    require_admin(principal)
    result = await _attempt(
        info,
        lambda session: service.set_branding(
            session,
            principal.scope,
            display_name=display_name,
            from_address=from_address,
            colour=colour,
            footer=footer,
        ),
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return NotifyDone(count=1)


async def _follow(info: Info, id: strawberry.ID, work: Any) -> NotifyDonePayload:
    principal = info.context.principal
    require_exception_read(principal)
    user_id = _user(principal)
    value = expect_global_id(id, "ShipmentException")
    if value is None:
        return NotFoundError(message=f"no exception {id}")
    result = await _attempt(info, lambda session: work(session, principal.scope, value, user_id))
    if isinstance(result, NotFoundError):
        return NotFoundError(message=f"no exception {id}")
    if isinstance(result, InvalidInputError):
        return result
    return NotifyDone(count=1)


async def follow_exception(info: Info, id: strawberry.ID) -> NotifyDonePayload:
    """Hear about this exception's changes like its assignee (shippers: their own account's)."""
    return await _follow(info, id, service.follow)


async def unfollow_exception(info: Info, id: strawberry.ID) -> NotifyDonePayload:
    return await _follow(info, id, service.unfollow)
