"""Notifications in GraphQL: the viewer's in-app notifications and preferences, webhook endpoints with
their delivery log, e-mail templates and branding, following exceptions.

Tenant admins manage the tenant's endpoints (and any account's), templates and branding, and may read or
set any user's preferences; a shipper user manages its own account's endpoints and preferences and follows
its own account's exceptions. Anything outside the caller's reach answers as not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from api.graphql.access import ADMIN, require
from api.graphql.notify.types import (
    EmailTemplate,
    EmailTemplatePayload,
    EmailTemplateSuccess,
    Info,
    MailBranding,
    MailBrandingPayload,
    MailBrandingSuccess,
    NotificationConnection,
    NotificationEdge,
    NotificationPreferenceInput,
    NotificationPreferencePayload,
    NotificationPreferences,
    NotificationPreferenceSuccess,
    NotifyDone,
    NotifyDonePayload,
    ReplayWebhookDeliveryPayload,
    ReplayWebhookDeliverySuccess,
    WebhookDeliveryConnection,
    WebhookDeliveryEdge,
    WebhookEndpoint,
    WebhookEndpointInput,
    WebhookEndpointPayload,
    WebhookEndpointSecretPayload,
    WebhookEndpointSecretSuccess,
    WebhookEndpointSuccess,
    delivery_node,
    endpoint_node,
    notification_node,
    preference_type,
    template_type,
)
from api.graphql.relay import (
    DEFAULT_PAGE_SIZE,
    check_page_size,
    decode_cursor,
    expect_global_id,
    paginate,
)
from api.graphql.tracking.types import InvalidInputError, NotFoundError
from domain.db import TenantScope
from domain.notify import repository, rules, service
from domain.notify.models import Notification, NotificationPreference, WebhookDelivery
from domain.notify.service import NotifyError, NotifyNotFound
from domain.shipments.repository import PageKey
from domain.tenancy.principal import Principal
from domain.tenancy.repository import users_by_id

T = TypeVar("T")


async def _attempt(
    info: Info, work: Callable[[AsyncSession], Awaitable[T]]
) -> T | NotFoundError | InvalidInputError:
    """Run a service call; its refusals become typed errors (not found says nothing more than that)."""
    try:
        return await info.context.loaders.run(work)
    except NotifyNotFound as error:
        return NotFoundError(message=str(error).partition(": ")[2] or str(error))
    except NotifyError as error:
        return InvalidInputError(field=str(error).partition(":")[0], message=str(error))


def _development(info: Info) -> bool:
    return info.context.state.settings.environment == "development"


# --- queries -------------------------------------------------------------------------------------------


async def notifications(
    info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None, unread_only: bool = False
) -> NotificationConnection:
    """The viewer's in-app notifications, newest first (two queries whatever the page size)."""
    principal = info.context.principal
    limit = check_page_size(first, info.context.state.settings.graphql_max_page_size)
    position = decode_cursor(after) if after else None
    scope, user_id = principal.scope, principal.subject_id

    async def work(session: AsyncSession) -> tuple[list[Notification], int]:
        rows = await repository.notifications_page(
            session, scope, user_id, unread_only=unread_only, after=position, limit=limit + 1
        )
        return rows, await repository.unread_count(session, scope, user_id)

    rows, unread_count = await info.context.loaders.run(work)
    cursored, page_info = paginate(rows, limit, lambda row: PageKey(row.created_at, row.id))
    return NotificationConnection(
        edges=[NotificationEdge(cursor=c, node=notification_node(r)) for c, r in cursored],
        page_info=page_info,
        unread_count=unread_count,
    )


async def _whose(info: Info, user_id: strawberry.ID | None) -> Principal | None:
    """The user whose preferences are meant, as a principal: the viewer, or (admins) the one named. None:
    no such user in the tenant (another tenant's answers the same)."""
    principal = info.context.principal
    if user_id is None:
        return principal
    require(principal, ADMIN)  # another user's preferences
    value = expect_global_id(user_id, "User", argument="userId")
    if value is None:
        return None
    scope = principal.scope
    found = await info.context.loaders.run(lambda session: users_by_id(session, scope, [value]))
    user = found.get(value)
    if user is None:
        return None
    return Principal(
        tenant_id=principal.tenant_id,
        subject_kind="user",
        subject_id=user.id,
        account_id=user.account_id,
        roles=frozenset(user.roles),
    )


async def notification_preferences(
    info: Info, user_id: strawberry.ID | None = None
) -> NotificationPreferences | None:
    """The viewer's preference (admins: ``userId``'s; null when no such user), and a shipper user's
    account default."""
    owner = await _whose(info, user_id)
    if owner is None:
        return None
    owner_id, account_id, scope = owner.subject_id, owner.account_id, info.context.principal.scope

    async def work(session: AsyncSession) -> tuple[NotificationPreference | None, ...]:
        mine = await repository.preference_of(session, scope, user_id=owner_id, account_id=None)
        account = (
            await repository.preference_of(session, scope, user_id=None, account_id=account_id)
            if account_id is not None
            else None
        )
        return mine, account

    mine, account = await info.context.loaders.run(work)
    default = rules.SHIPPER_DEFAULT if owner.is_shipper else rules.STAFF_DEFAULT
    return NotificationPreferences(
        mine=preference_type(mine, default),
        account=preference_type(account, rules.SHIPPER_DEFAULT) if owner.is_shipper else None,
    )


async def webhook_endpoints(info: Info) -> list[WebhookEndpoint]:
    """Admins: every endpoint of the tenant; shipper users: their account's."""
    principal = info.context.principal
    scope = principal.scope
    rows = await info.context.loaders.run(lambda session: repository.endpoints(session, scope))
    return [endpoint_node(row) for row in rows]


async def webhook_deliveries(
    info: Info, endpoint_id: strawberry.ID, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
) -> WebhookDeliveryConnection:
    """An endpoint's deliveries, newest first (an endpoint out of reach has none)."""
    principal = info.context.principal
    limit = check_page_size(first, info.context.state.settings.graphql_max_page_size)
    position = decode_cursor(after) if after else None
    scope = principal.scope
    value = expect_global_id(endpoint_id, "WebhookEndpoint", argument="endpointId")

    async def work(session: AsyncSession) -> list[WebhookDelivery]:
        if value is None or await repository.endpoint(session, scope, value) is None:
            return []
        return await repository.deliveries_page(session, scope, value, after=position, limit=limit + 1)

    rows = await info.context.loaders.run(work)
    cursored, page_info = paginate(rows, limit, lambda row: PageKey(row.created_at, row.id))
    return WebhookDeliveryConnection(
        edges=[WebhookDeliveryEdge(cursor=c, node=delivery_node(r)) for c, r in cursored], page_info=page_info
    )


async def email_templates(info: Info) -> list[EmailTemplate]:
    """Every template key: the tenant's override or the built-in template, with the fields it may use."""
    principal = info.context.principal
    scope = principal.scope
    stored = await info.context.loaders.run(lambda session: repository.templates(session, scope))
    result = []
    for key in rules.TemplateKey:
        row = stored.get(key.value)
        if row is None:
            result.append(template_type(key, rules.default_template(key), built_in=True))
        else:
            template = rules.Template(row.subject, row.text_body, row.html_body)
            result.append(template_type(key, template, built_in=False))
    return result


async def mail_branding(info: Info) -> MailBranding:
    """The tenant's e-mail branding (its name and the default colour until set)."""
    principal = info.context.principal
    scope = principal.scope
    brand = await info.context.loaders.run(lambda session: service.branding(session, scope))
    return MailBranding(
        display_name=brand["name"],
        from_address=brand["from"] or None,
        colour=brand["colour"],
        footer=brand["footer"],
    )


# --- mutations -----------------------------------------------------------------------------------------


async def mark_notifications_read(info: Info, ids: list[strawberry.ID] | None = None) -> NotifyDonePayload:
    """``ids`` null: all of the viewer's notifications. Ids that are not the viewer's change nothing."""
    principal = info.context.principal
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
        lambda session: service.mark_read(session, principal.scope, principal.subject_id, values, now=now)
    )
    return NotifyDone(count=count)


async def update_notification_preferences(
    info: Info,
    input: NotificationPreferenceInput,
    for_account: bool = False,
    user_id: strawberry.ID | None = None,
) -> NotificationPreferencePayload:
    """The viewer's own preference; shipper users' ``forAccount`` sets their account's default; admins'
    ``userId`` sets another user's of the tenant."""
    principal = info.context.principal
    if for_account and (not principal.is_shipper or user_id is not None):
        return InvalidInputError(
            field="forAccount", message="forAccount: only a shipper user sets their account's default"
        )
    owner = await _whose(info, user_id)
    if owner is None:
        return InvalidInputError(field="userId", message=f"userId: no user {user_id}")
    owner_id = owner.subject_id
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
            user_id=None if for_account else owner_id,
            account_id=principal.account_id if for_account else None,
            preference=preference,
        ),
    )
    if isinstance(result, NotFoundError):
        return InvalidInputError(field="userId", message=f"userId: no user {user_id}")
    if isinstance(result, InvalidInputError):
        return result
    default = rules.SHIPPER_DEFAULT if owner.is_shipper else rules.STAFF_DEFAULT
    return NotificationPreferenceSuccess(preference=preference_type(result, default))


async def create_webhook_endpoint(info: Info, input: WebhookEndpointInput) -> WebhookEndpointSecretPayload:
    """A shipper user's endpoint is their account's; an admin's is the tenant's, or ``accountId``'s."""
    principal = info.context.principal
    account_id: uuid.UUID | None = principal.account_id
    if input.account_id is not None:
        given = expect_global_id(input.account_id, "Account", argument="accountId")
        if given is None or (principal.is_shipper and given != principal.account_id):
            return NotFoundError(message=f"no account {input.account_id}")
        account_id = given
    if (
        account_id is not None
        and not principal.is_shipper
        and await info.context.loaders.account.load(account_id) is None
    ):
        return NotFoundError(message=f"no account {input.account_id}")
    draft = service.EndpointDraft(input.url, input.event_types, input.description, account_id)
    development = _development(info)
    result = await _attempt(
        info,
        lambda session: service.create_endpoint(session, principal.scope, draft, development=development),
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return WebhookEndpointSecretSuccess(endpoint=endpoint_node(result), secret=result.secret)


def _endpoint_id(id: strawberry.ID) -> uuid.UUID | NotFoundError:
    value = expect_global_id(id, "WebhookEndpoint")
    return value if value is not None else NotFoundError(message=f"no webhook endpoint {id}")


async def update_webhook_endpoint(
    info: Info,
    id: strawberry.ID,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpointPayload:
    principal = info.context.principal
    value = _endpoint_id(id)
    if isinstance(value, NotFoundError):
        return value
    development, now = _development(info), info.context.state.clock()
    result = await _attempt(
        info,
        lambda session: service.update_endpoint(
            session,
            principal.scope,
            value,
            url=url,
            event_types=event_types,
            description=description,
            enabled=enabled,
            development=development,
            now=now,
        ),
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return WebhookEndpointSuccess(endpoint=endpoint_node(result))


async def rotate_webhook_secret(info: Info, id: strawberry.ID) -> WebhookEndpointSecretPayload:
    principal = info.context.principal
    value = _endpoint_id(id)
    if isinstance(value, NotFoundError):
        return value
    result = await _attempt(info, lambda session: service.rotate_secret(session, principal.scope, value))
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return WebhookEndpointSecretSuccess(endpoint=endpoint_node(result), secret=result.secret)


async def delete_webhook_endpoint(info: Info, id: strawberry.ID) -> NotifyDonePayload:
    principal = info.context.principal
    value = _endpoint_id(id)
    if isinstance(value, NotFoundError):
        return value
    result = await _attempt(info, lambda session: service.delete_endpoint(session, principal.scope, value))
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return NotifyDone(count=1)


async def replay_webhook_delivery(info: Info, id: strawberry.ID) -> ReplayWebhookDeliveryPayload:
    principal = info.context.principal
    value = expect_global_id(id, "WebhookDelivery")
    if value is None:
        return NotFoundError(message=f"no webhook delivery {id}")
    now = info.context.state.clock()
    result = await _attempt(
        info, lambda session: service.replay_delivery(session, principal.scope, value, now=now)
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    return ReplayWebhookDeliverySuccess(delivery=delivery_node(result))


async def upsert_email_template(
    info: Info, key: str, subject: str, text: str, html: str | None = None
) -> EmailTemplatePayload:
    """``key`` is a template key as `emailTemplates` lists it (e.g. `exception_opened`)."""
    principal = info.context.principal
    template = rules.Template(subject, text, html or None)
    result = await _attempt(
        info, lambda session: service.upsert_template(session, principal.scope, key, template)
    )
    if isinstance(result, NotFoundError):
        return InvalidInputError(field="key", message=result.message)
    if isinstance(result, InvalidInputError):
        return result
    return EmailTemplateSuccess(template=template_type(rules.TemplateKey(key), template, built_in=False))


async def reset_email_template(info: Info, key: str) -> NotifyDonePayload:
    """Drop the tenant's template for ``key``: the built-in one applies again."""
    principal = info.context.principal
    if key not in rules.TemplateKey.__members__.values():
        return InvalidInputError(field="key", message=f"key: unknown template {key!r}")
    dropped = await info.context.loaders.run(
        lambda session: service.reset_template(session, principal.scope, key)
    )
    return NotifyDone(count=int(dropped))


async def set_mail_branding(
    info: Info,
    display_name: str,
    colour: str = service.DEFAULT_COLOUR,
    footer: str = "",
    from_address: str | None = None,
) -> MailBrandingPayload:
    principal = info.context.principal
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
    if isinstance(result, NotFoundError):  # the service has no lookup to fail here
        raise AssertionError(result.message)
    if isinstance(result, InvalidInputError):
        return result
    return MailBrandingSuccess(
        branding=MailBranding(
            display_name=result.display_name,
            from_address=result.from_address,
            colour=result.colour,
            footer=result.footer,
        )
    )


FollowWork = Callable[[AsyncSession, TenantScope, uuid.UUID, uuid.UUID], Awaitable[None]]


async def _follow(info: Info, id: strawberry.ID, work: FollowWork) -> NotifyDonePayload:
    principal = info.context.principal
    value = expect_global_id(id, "ShipmentException")
    if value is None:
        return NotFoundError(message=f"no exception {id}")
    result = await _attempt(info, lambda session: work(session, principal.scope, value, principal.subject_id))
    if isinstance(result, NotFoundError):
        return NotFoundError(message=f"no exception {id}")
    if isinstance(result, InvalidInputError):
        return result
    return NotifyDone(count=1)


async def follow_exception(info: Info, id: strawberry.ID) -> NotifyDonePayload:
    """Hear about this exception's changes like its assignee (shippers: their own account's)."""
    return await _follow(info, id, service.follow)


async def unfollow_exception(info: Info, id: strawberry.ID) -> NotifyDonePayload:
    """Stop following an exception the viewer can see."""
    return await _follow(info, id, service.unfollow)
