"""Notification types: in-app notifications, preferences, webhook endpoints with their delivery log,
e-mail templates, and the mutations' payloads and typed errors."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Context
from api.graphql.relay import Node, PageInfo, to_global_id
from api.graphql.tracking.types import InvalidInputError, NotFoundError
from domain.notify import rules
from domain.notify.models import Notification as NotificationRow
from domain.notify.models import NotificationPreference as PreferenceRow
from domain.notify.models import WebhookDelivery as DeliveryRow
from domain.notify.models import WebhookEndpoint as EndpointRow
from domain.notify.service import preference_of

Info = strawberry.Info[Context, None]

DeliveryMode = strawberry.enum(
    rules.Delivery, name="NotificationDelivery", description="E-mail now or in a digest."
)
TemplateKey = strawberry.enum(
    rules.TemplateKey, name="EmailTemplateKey", description="Which e-mail a template is."
)


@strawberry.type(description="A notification in the app, for one user.")
class Notification(Node):
    row: strawberry.Private[NotificationRow]

    @strawberry.field(description="What happened, in one line.")
    def title(self) -> str:
        return self.row.title

    @strawberry.field(description="The explanation or comment behind it.")
    def body(self) -> str:
        return self.row.body

    @strawberry.field(
        description="The change it announces (an exception topic, or webhook.endpoint_disabled)."
    )
    def topic(self) -> str:
        return self.row.topic

    @strawberry.field(description="The exception's global id, if about one.")
    def exception_id(self) -> strawberry.ID | None:
        return to_global_id("ShipmentException", self.row.exception_id) if self.row.exception_id else None

    @strawberry.field(description="Severity of what it is about (low, medium, high, critical).")
    def severity(self) -> str:
        return self.row.severity

    @strawberry.field(description="When it was read; null while unread.")
    def read_at(self) -> dt.datetime | None:
        return self.row.read_at

    @strawberry.field(description="When it was created.")
    def created_at(self) -> dt.datetime:
        return self.row.created_at


def notification_node(row: NotificationRow) -> Notification:
    return Notification(id=to_global_id("Notification", row.id), row=row)


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


def preference_type(row: PreferenceRow | None, default: rules.Preference) -> NotificationPreference:
    value = preference_of(row) if row is not None else default
    return NotificationPreference(
        categories=sorted(value.categories) if value.categories is not None else None,
        min_severity=value.min_severity,
        email=value.email,
        in_app=value.in_app,
        delivery=value.delivery,
        is_default=row is None,
    )


@strawberry.type(description="A user's preference and, for shipper users, their account's default.")
class NotificationPreferences:
    mine: NotificationPreference = strawberry.field(
        description="The user's own (the viewer's, or the one an admin asked for)."
    )
    account: NotificationPreference | None = strawberry.field(
        description="The account's default for its users (shipper users only)."
    )


@strawberry.type(description="Where Milepost POSTs signed events (Standard Webhooks).")
class WebhookEndpoint(Node):
    row: strawberry.Private[EndpointRow]

    @strawberry.field(description="The URL (https to a public host; http to loopback in development only).")
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

    @strawberry.field(description="When it was disabled.")
    def disabled_at(self) -> dt.datetime | None:
        return self.row.disabled_at

    @strawberry.field(description="Failed attempts in a row.")
    def consecutive_failures(self) -> int:
        return self.row.consecutive_failures

    @strawberry.field(description="After a failure, nothing is sent to it before this time.")
    def retry_at(self) -> dt.datetime | None:
        return self.row.retry_at

    @strawberry.field(description="When it was created.")
    def created_at(self) -> dt.datetime:
        return self.row.created_at


def endpoint_node(row: EndpointRow) -> WebhookEndpoint:
    return WebhookEndpoint(id=to_global_id("WebhookEndpoint", row.id), row=row)


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
        return cast(JSON, self.row.body)

    @strawberry.field(description="Attempts so far.")
    def attempt_count(self) -> int:
        return self.row.attempts

    @strawberry.field(description="When the next attempt is due (null: none, or its endpoint is disabled).")
    def next_attempt_at(self) -> dt.datetime | None:
        return self.row.next_attempt_at

    @strawberry.field(description="When it was delivered.")
    def delivered_at(self) -> dt.datetime | None:
        return self.row.delivered_at

    @strawberry.field(description="When it was queued.")
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field(description="The delivery this one replays.")
    def replay_of(self) -> strawberry.ID | None:
        return to_global_id("WebhookDelivery", self.row.replay_of) if self.row.replay_of else None

    @strawberry.field(description="The delivery log: each attempt, oldest first.")
    async def attempts(self, info: Info) -> list[WebhookAttempt]:
        rows = await info.context.loaders.webhook_attempts.load(self.row.id)
        return [
            WebhookAttempt(
                at=a.attempted_at,
                status_code=a.status_code,
                duration_ms=a.duration_ms,
                error=a.error,
                response_excerpt=a.response_excerpt,
            )
            for a in rows
        ]


def delivery_node(row: DeliveryRow) -> WebhookDelivery:
    return WebhookDelivery(id=to_global_id("WebhookDelivery", row.id), row=row)


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
    html: str | None = strawberry.field(
        description="HTML body (jinja2, escaped); null: the text in the tenant's branded layout."
    )
    built_in: bool = strawberry.field(description="Milepost's default (no tenant override).")
    fields: list[str] = strawberry.field(description="The fields it may use, e.g. `exception.explanation`.")


def template_type(key: rules.TemplateKey, template: rules.Template, *, built_in: bool) -> EmailTemplate:
    return EmailTemplate(
        key=key,
        subject=template.subject,
        text=template.text,
        html=template.html,
        built_in=built_in,
        fields=rules.fields_of(key),
    )


@strawberry.type(description="The tenant's e-mail branding.")
class MailBranding:
    display_name: str = strawberry.field(description="The sender's name and the name in every e-mail.")
    from_address: str | None = strawberry.field(description="The sender address (null: the server's).")
    colour: str = strawberry.field(description="The colour of the e-mail header, #rrggbb.")
    footer: str = strawberry.field(description="The footer every built-in template ends with.")


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


@strawberry.type(description="The branding as saved.")
class MailBrandingSuccess:
    branding: MailBranding = strawberry.field(description="The branding.")


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
MailBrandingPayload = Annotated[
    MailBrandingSuccess | InvalidInputError,
    strawberry.union("MailBrandingPayload", description="The branding, or why not."),
]
NotificationPreferencePayload = Annotated[
    NotificationPreferenceSuccess | InvalidInputError,
    strawberry.union("NotificationPreferencePayload", description="The preference, or why not."),
]


@strawberry.input(description="A webhook endpoint.")
class WebhookEndpointInput:
    url: str = strawberry.field(description="https URL to a public host (http to loopback in development).")
    event_types: list[str] = strawberry.field(description="Exception topics, e.g. `exception.opened`.")
    description: str = strawberry.field(default="", description="What it is for.")
    account_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="For a shipper account (admins); shipper users' endpoints are their account's.",
    )


@strawberry.input(description="What to hear and how.")
class NotificationPreferenceInput:
    categories: list[str] | None = strawberry.field(
        default=None, description="Only these exception categories, e.g. `delay` (null: all)."
    )
    min_severity: str = strawberry.field(
        default="low", description="Nothing below this severity: low, medium, high or critical."
    )
    email: bool = strawberry.field(default=True, description="E-mail on.")
    in_app: bool = strawberry.field(default=True, description="In-app on.")
    delivery: DeliveryMode = strawberry.field(  # type: ignore[valid-type]
        default=rules.Delivery.IMMEDIATE, description="E-mail now or in a digest."
    )
