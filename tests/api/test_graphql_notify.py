"""Notifications through GraphQL: endpoints by admins and by shipper users for their own account, refused
URLs and event types, secrets shown once, the viewer's notifications and preferences, templates checked at
write time, following; a second tenant and a second shipper account whose data stay out of reach."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql.relay import expect_global_id, to_global_id
from domain.db import TenantScope, scoped, scoped_transaction
from domain.notify import service
from domain.notify.models import EmailTemplate, ExceptionFollower, WebhookAttempt, WebhookEndpoint
from domain.notify.models import Notification as NotificationRow
from domain.notify.models import WebhookDelivery as WebhookDeliveryRow
from domain.outbox.models import OutboxMessage
from domain.tenancy.principal import Principal
from domain.workflow import topics
from tests.api.graphql_support import gql, partner, staff
from tests.api.test_graphql_exceptions import staff_user
from tests.api.test_graphql_shipments import count_statements
from tests.api.test_graphql_workflow import one_exception, shipper_user
from tests.shipment_factories import T0, TenantWorld, committed_tenant

M = dt.timedelta(minutes=1)

CREATE = """
mutation($input: WebhookEndpointInput!) { createWebhookEndpoint(input: $input) {
  __typename
  ... on WebhookEndpointSecretSuccess { secret endpoint { id url eventTypes accountId enabled } }
  ... on InvalidInputError { field message }
  ... on NotFoundError { message }
} }
"""
UPDATE = """
mutation($id: ID!, $enabled: Boolean) { updateWebhookEndpoint(id: $id, enabled: $enabled) {
  __typename ... on WebhookEndpointSuccess { endpoint { enabled } } ... on NotFoundError { message }
} }
"""


async def count(sessions: async_sessionmaker[AsyncSession], scope: TenantScope, model: Any) -> int:
    async with scoped_transaction(sessions, scope) as session:
        return int(
            (
                await session.execute(scoped(select(func.count()), model, TenantScope(scope.tenant_id)))
            ).scalar_one()
        )


async def test_endpoints_by_admins_and_by_shippers_for_their_own_account(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=1)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    admin = await staff_user(sessions, world, "admin")
    owner = await shipper_user(sessions, world, 0)
    neighbour = await shipper_user(sessions, world, 1)

    refused = await gql(
        client,
        tokens,
        admin,
        CREATE,
        {"input": {"url": "http://hooks.example.com/x", "eventTypes": ["exception.opened"]}},
    )
    assert refused["data"]["createWebhookEndpoint"] == {
        "__typename": "InvalidInputError",
        "field": "url",
        "message": "url: http is allowed only to a loopback host (in development); use https",
    }
    unknown = await gql(
        client,
        tokens,
        admin,
        CREATE,
        {"input": {"url": "https://tms.example.com/x", "eventTypes": ["shipment.exploded"]}},
    )
    assert unknown["data"]["createWebhookEndpoint"]["field"] == "eventTypes[0]"
    made = await gql(
        client,
        tokens,
        admin,
        CREATE,
        {
            "input": {
                "url": "https://tms.example.com/x",
                "eventTypes": ["exception.opened", "exception.escalated"],
            }
        },
    )
    tenant_hook = made["data"]["createWebhookEndpoint"]
    assert tenant_hook["secret"].startswith("whsec_")
    assert tenant_hook["endpoint"]["accountId"] is None

    theirs = await gql(
        client,
        tokens,
        owner,
        CREATE,
        {"input": {"url": "https://acme.example.com/x", "eventTypes": ["exception.opened"]}},
    )
    own = theirs["data"]["createWebhookEndpoint"]["endpoint"]
    assert own["accountId"] == to_global_id("Account", world.accounts[0].id)
    escalations = await gql(
        client,
        tokens,
        owner,
        CREATE,
        {"input": {"url": "https://acme.example.com/y", "eventTypes": ["exception.escalated"]}},
    )
    assert (
        escalations["data"]["createWebhookEndpoint"]["field"] == "eventTypes[0]"
    )  # internal topics are staff's
    sneaky = await gql(
        client,
        tokens,
        owner,
        CREATE,
        {
            "input": {
                "url": "https://acme.example.com/z",
                "eventTypes": ["exception.opened"],
                "accountId": to_global_id("Account", world.accounts[1].id),
            }
        },
    )
    assert sneaky["data"]["createWebhookEndpoint"]["__typename"] == "NotFoundError"

    listed = await gql(client, tokens, owner, "{ webhookEndpoints { id url } }")
    assert [e["id"] for e in listed["data"]["webhookEndpoints"]] == [own["id"]]
    assert (await gql(client, tokens, neighbour, "{ webhookEndpoints { id } }"))["data"][
        "webhookEndpoints"
    ] == []
    assert (
        len((await gql(client, tokens, admin, "{ webhookEndpoints { id } }"))["data"]["webhookEndpoints"])
        == 2
    )

    for stranger in (neighbour, await staff_user(sessions, other, "admin")):
        denied = await gql(client, tokens, stranger, UPDATE, {"id": own["id"], "enabled": False})
        assert denied["data"]["updateWebhookEndpoint"]["__typename"] == "NotFoundError"
        gone = await gql(
            client,
            tokens,
            stranger,
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { __typename } }",
            {"id": own["id"]},
        )
        assert gone["data"]["deleteWebhookEndpoint"]["__typename"] == "NotFoundError"
    assert await count(sessions, world.scope, WebhookEndpoint) == 2
    for principal in (staff(world, "operations"), partner(world, "exceptions:read")):
        forbidden = await gql(client, tokens, principal, "{ webhookEndpoints { id } }")
        assert forbidden["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    rotated = await gql(
        client,
        tokens,
        owner,
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { ... on WebhookEndpointSecretSuccess { secret } } }",
        {"id": own["id"]},
    )
    assert rotated["data"]["rotateWebhookSecret"]["secret"] not in (tenant_hook["secret"], None)


async def test_partner_clients_with_webhooks_manage_keep_their_own_endpoints(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=1)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    tenant_wide = partner(world, "webhooks:manage")
    bound = Principal(
        tenant_id=world.scope.tenant_id,
        subject_kind="api_client",
        subject_id=uuid.uuid4(),
        account_id=world.accounts[0].id,
        scopes=frozenset({"webhooks:manage"}),
    )
    hook = {"url": "https://tms.example.com/hook", "eventTypes": ["exception.opened"]}

    made = await gql(client, tokens, tenant_wide, CREATE, {"input": hook})
    mine = await gql(client, tokens, bound, CREATE, {"input": hook})
    sneaky = await gql(
        client,
        tokens,
        bound,
        CREATE,
        {"input": {**hook, "accountId": to_global_id("Account", world.accounts[1].id)}},
    )

    assert made["data"]["createWebhookEndpoint"]["endpoint"]["accountId"] is None
    assert made["data"]["createWebhookEndpoint"]["secret"].startswith("whsec_")
    own = mine["data"]["createWebhookEndpoint"]["endpoint"]
    assert own["accountId"] == to_global_id("Account", world.accounts[0].id)
    assert sneaky["data"]["createWebhookEndpoint"]["__typename"] == "NotFoundError"
    listed = await gql(client, tokens, bound, "{ webhookEndpoints { id } }")
    assert listed["data"]["webhookEndpoints"] == [{"id": own["id"]}]
    assert (
        len(
            (await gql(client, tokens, tenant_wide, "{ webhookEndpoints { id } }"))["data"][
                "webhookEndpoints"
            ]
        )
        == 2
    )
    theirs = await gql(client, tokens, partner(other, "webhooks:manage"), "{ webhookEndpoints { id } }")
    assert theirs["data"]["webhookEndpoints"] == []
    without = await gql(client, tokens, partner(world, "exceptions:read", "ingest"), CREATE, {"input": hook})
    assert without["errors"][0]["message"] == "this operation needs the 'webhooks:manage' scope"
    assert await count(sessions, world.scope, WebhookEndpoint) == 2


async def test_the_viewers_notifications_and_preferences(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    case = await one_exception(sessions, world)
    ops = await staff_user(sessions, world, "operations")
    colleague = await staff_user(sessions, world, "operations")
    assign = "mutation($id: ID!, $user: ID) { assignException(id: $id, userId: $user) { __typename } }"
    await gql(client, tokens, ops, assign, {"id": case, "user": to_global_id("User", ops.subject_id)})
    async with scoped_transaction(sessions, world.scope) as session:
        changes = (
            (await session.execute(scoped(select(OutboxMessage), OutboxMessage, world.scope))).scalars().all()
        )
        for change in (c for c in changes if c.topic in topics.ALL_TOPICS):
            await service.fan_out(
                session,
                world.scope,
                change.topic,
                {**change.payload, "outbox_id": change.id},
                public_url="http://x",
                now=T0,
            )
    query = "{ notifications(first: 10) { unreadCount edges { node { id title readAt exceptionId } } } }"
    mine = (await gql(client, tokens, ops, query))["data"]["notifications"]
    # recipients are read when the change is fanned out: here after the assignment, so the assignee hears of
    # the opening too
    assert mine["unreadCount"] == 2
    notes = [e["node"] for e in mine["edges"]]
    assert sorted(n["title"].split(" on ")[0] for n in notes) == [
        "Exception assigned: MILESTONE_LATE",
        "New exception: MILESTONE_LATE",
    ]
    assert {n["exceptionId"] for n in notes} == {case}
    note = notes[0]
    assert (await gql(client, tokens, colleague, query))["data"]["notifications"] == {
        "unreadCount": 0,
        "edges": [],
    }
    read = await gql(
        client,
        tokens,
        colleague,
        "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) { ... on NotifyDone { count } } }",
        {"ids": [note["id"]]},
    )
    assert read["data"]["markNotificationsRead"] == {"count": 0}  # not theirs
    read = await gql(
        client, tokens, ops, "mutation { markNotificationsRead { ... on NotifyDone { count } } }"
    )
    assert read["data"]["markNotificationsRead"] == {"count": 2}
    assert (await gql(client, tokens, ops, query))["data"]["notifications"]["unreadCount"] == 0

    prefs = "{ notificationPreferences { mine { minSeverity email delivery isDefault } account { email } } }"
    assert (await gql(client, tokens, ops, prefs))["data"]["notificationPreferences"] == {
        "mine": {"minSeverity": "low", "email": True, "delivery": "IMMEDIATE", "isDefault": True},
        "account": None,
    }
    update = """mutation($input: NotificationPreferenceInput!) { updateNotificationPreferences(input: $input) {
      __typename ... on NotificationPreferenceSuccess { preference { minSeverity delivery categories } }
      ... on InvalidInputError { field message } } }"""
    bad = await gql(client, tokens, ops, update, {"input": {"categories": ["gossip"]}})
    assert bad["data"]["updateNotificationPreferences"] == {
        "__typename": "InvalidInputError",
        "field": "categories[0]",
        "message": "categories[0]: unknown category 'gossip'",
    }
    good = await gql(
        client,
        tokens,
        ops,
        update,
        {"input": {"minSeverity": "high", "delivery": "DIGEST", "categories": ["delay"]}},
    )
    assert good["data"]["updateNotificationPreferences"]["preference"] == {
        "minSeverity": "high",
        "delivery": "DIGEST",
        "categories": ["delay"],
    }
    client_denied = await gql(client, tokens, partner(world, "exceptions:read"), query)
    assert client_denied["errors"][0]["extensions"] == {"code": "FORBIDDEN"}


async def test_templates_and_following(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=1)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    admin = await staff_user(sessions, world, "admin")
    template = """mutation($key: String!, $text: String!) { upsertEmailTemplate(key: $key, subject: "Hi", text: $text) {
      __typename ... on EmailTemplateSuccess { template { key builtIn } } ... on InvalidInputError { field message } } }"""
    bad = await gql(
        client, tokens, admin, template, {"key": "exception_opened", "text": "{{ exception.internal_note }}"}
    )
    assert bad["data"]["upsertEmailTemplate"] == {
        "__typename": "InvalidInputError",
        "field": "text",
        "message": "text: exception.internal_note is not a field of exception_opened templates",
    }
    assert await count(sessions, world.scope, EmailTemplate) == 0
    good = await gql(
        client, tokens, admin, template, {"key": "exception_opened", "text": "{{ exception.explanation }}"}
    )
    assert good["data"]["upsertEmailTemplate"]["template"] == {"key": "EXCEPTION_OPENED", "builtIn": False}
    listed = await gql(client, tokens, admin, "{ emailTemplates { key builtIn fields } }")
    opened = next(t for t in listed["data"]["emailTemplates"] if t["key"] == "EXCEPTION_OPENED")
    assert opened["builtIn"] is False
    assert "exception.explanation" in opened["fields"]
    ops_denied = await gql(client, tokens, staff(world, "operations"), "{ emailTemplates { key } }")
    assert ops_denied["errors"][0]["extensions"] == {"code": "FORBIDDEN"}

    case = await one_exception(sessions, world)  # on the first account's shipment
    theirs = await one_exception(sessions, other)
    follow = "mutation($id: ID!) { followException(id: $id) { __typename } }"
    owner = await shipper_user(sessions, world, 0)
    neighbour = await shipper_user(sessions, world, 1)
    assert (await gql(client, tokens, owner, follow, {"id": case}))["data"]["followException"][
        "__typename"
    ] == "NotifyDone"
    assert (await gql(client, tokens, neighbour, follow, {"id": case}))["data"]["followException"][
        "__typename"
    ] == "NotFoundError"
    assert (await gql(client, tokens, owner, follow, {"id": theirs}))["data"]["followException"][
        "__typename"
    ] == "NotFoundError"
    assert await count(sessions, world.scope, ExceptionFollower) == 1
    assert await count(sessions, other.scope, ExceptionFollower) == 0


async def seed_deliveries(
    sessions: async_sessionmaker[AsyncSession], world: TenantWorld, endpoint_id: uuid.UUID, n: int
) -> list[uuid.UUID]:
    """``n`` deliveries of an endpoint, each with two attempts (a 503, then a 204)."""
    ids = []
    async with scoped_transaction(sessions, world.scope) as session:
        endpoint = await service.endpoint(session, world.scope, endpoint_id)
        for i in range(n):
            delivery = WebhookDeliveryRow(
                tenant_id=world.scope.tenant_id,
                id=uuid.uuid4(),
                endpoint_id=endpoint.id,
                account_id=endpoint.account_id,
                outbox_id=None,
                event_type="exception.opened",
                body={"type": "exception.opened", "n": i},
                status="delivered",
                attempts=2,
                created_at=T0 + i * M,
            )
            session.add(delivery)
            await session.flush()
            for j, code in enumerate((503, 204)):
                session.add(
                    WebhookAttempt(
                        tenant_id=world.scope.tenant_id,
                        id=uuid.uuid4(),
                        delivery_id=delivery.id,
                        attempted_at=T0 + i * M + j * dt.timedelta(seconds=30),
                        status_code=code,
                        duration_ms=12,
                        response_excerpt="busy" if code == 503 else None,
                    )
                )
            ids.append(delivery.id)
    return ids


DELIVERIES = """
query($id: ID!, $first: Int) { webhookDeliveries(endpointId: $id, first: $first) {
  edges { node { id eventType status attemptCount body attempts { statusCode responseExcerpt } } }
  pageInfo { hasNextPage endCursor }
} }
"""
REPLAY = """
mutation($id: ID!) { replayWebhookDelivery(id: $id) {
  __typename ... on ReplayWebhookDeliverySuccess { delivery { status replayOf body } }
  ... on NotFoundError { message } ... on InvalidInputError { field message }
} }
"""


async def test_the_delivery_log_and_replay_for_the_endpoint_owner_only(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    app_engine: AsyncEngine,
) -> None:
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=1)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    admin = await staff_user(sessions, world, "admin")
    owner = await shipper_user(sessions, world, 0)
    neighbour = await shipper_user(sessions, world, 1)
    made = await gql(
        client,
        tokens,
        owner,
        CREATE,
        {"input": {"url": "https://acme.example.com/x", "eventTypes": ["exception.opened"]}},
    )
    endpoint_gid = made["data"]["createWebhookEndpoint"]["endpoint"]["id"]
    endpoint_id = expect_global_id(endpoint_gid, "WebhookEndpoint")
    assert endpoint_id is not None
    small = await seed_deliveries(sessions, world, endpoint_id, 2)

    with count_statements(app_engine) as for_small:
        page = (await gql(client, tokens, owner, DELIVERIES, {"id": endpoint_gid, "first": 10}))["data"]
    edges = page["webhookDeliveries"]["edges"]
    assert [e["node"]["id"] for e in edges] == [to_global_id("WebhookDelivery", i) for i in reversed(small)]
    assert edges[0]["node"]["attempts"] == [
        {"statusCode": 503, "responseExcerpt": "busy"},
        {"statusCode": 204, "responseExcerpt": None},
    ]
    await seed_deliveries(sessions, world, endpoint_id, 8)
    with count_statements(app_engine) as for_large:
        page = (await gql(client, tokens, owner, DELIVERIES, {"id": endpoint_gid, "first": 10}))["data"]
    assert len(page["webhookDeliveries"]["edges"]) == 10
    assert all(len(e["node"]["attempts"]) == 2 for e in page["webhookDeliveries"]["edges"])
    # one transaction (scope + endpoint + page) and one for every page's attempts, whatever the page size
    assert len(for_large) == len(for_small) == 5

    assert (await gql(client, tokens, admin, DELIVERIES, {"id": endpoint_gid}))["data"]["webhookDeliveries"][
        "edges"
    ] != []
    for stranger in (neighbour, await staff_user(sessions, other, "admin")):
        seen = await gql(client, tokens, stranger, DELIVERIES, {"id": endpoint_gid})
        assert seen["data"]["webhookDeliveries"]["edges"] == []
        replayed = await gql(
            client, tokens, stranger, REPLAY, {"id": to_global_id("WebhookDelivery", small[0])}
        )
        assert replayed["data"]["replayWebhookDelivery"] == {
            "__typename": "NotFoundError",
            "message": f"no webhook delivery {small[0]}",
        }
    replayed = await gql(client, tokens, owner, REPLAY, {"id": to_global_id("WebhookDelivery", small[0])})
    assert replayed["data"]["replayWebhookDelivery"] == {
        "__typename": "ReplayWebhookDeliverySuccess",
        "delivery": {
            "status": "pending",
            "replayOf": to_global_id("WebhookDelivery", small[0]),
            "body": {"type": "exception.opened", "n": 0},
        },
    }
    assert await count(sessions, world.scope, WebhookDeliveryRow) == 11
    assert await count(sessions, other.scope, WebhookDeliveryRow) == 0


async def test_lists_cost_the_same_statements_for_few_or_many(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    app_engine: AsyncEngine,
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    admin = await staff_user(sessions, world, "admin")

    async def notify_admin(n: int, since: dt.datetime) -> None:
        async with scoped_transaction(sessions, world.scope) as session:
            for i in range(n):
                session.add(
                    NotificationRow(
                        tenant_id=world.scope.tenant_id,
                        id=uuid.uuid4(),
                        user_id=admin.subject_id,
                        topic="exception.opened",
                        severity="high",
                        title=f"New exception {i}",
                        body="DEPARTED is late.",
                        in_app=True,
                        created_at=since + i * M,
                    )
                )

    async def endpoints(n: int) -> None:
        async with scoped_transaction(sessions, world.scope) as session:
            for i in range(n):
                draft = service.EndpointDraft(f"https://tms{i}.example.com/x", ["exception.opened"])
                await service.create_endpoint(session, world.scope, draft, development=False)

    notifications = "query($n: Int) { notifications(first: $n) { unreadCount edges { node { id title } } } }"
    endpoint_list = "{ webhookEndpoints { id url eventTypes accountId enabled retryAt } }"
    await notify_admin(3, T0)
    await endpoints(2)
    with count_statements(app_engine) as few:
        assert (
            len((await gql(client, tokens, admin, notifications, {"n": 3}))["data"]["notifications"]["edges"])
            == 3
        )
        assert len((await gql(client, tokens, admin, endpoint_list))["data"]["webhookEndpoints"]) == 2
    await notify_admin(30, T0 + dt.timedelta(days=1))
    await endpoints(20)
    with count_statements(app_engine) as many:
        page = (await gql(client, tokens, admin, notifications, {"n": 30}))["data"]["notifications"]
        assert (len(page["edges"]), page["unreadCount"]) == (30, 33)
        assert len((await gql(client, tokens, admin, endpoint_list))["data"]["webhookEndpoints"]) == 22
    # notifications: scope + page + unread count; endpoints: scope + list
    assert len(many) == len(few) == 5

    paged = "query($after: String, $unread: Boolean) { notifications(first: 30, after: $after, unreadOnly: $unread) { edges { node { id title readAt } } pageInfo { hasNextPage endCursor } } }"
    first_page = (await gql(client, tokens, admin, paged))["data"]["notifications"]
    assert first_page["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["title"] for e in first_page["edges"]][:2] == ["New exception 29", "New exception 28"]
    rest = (await gql(client, tokens, admin, paged, {"after": first_page["pageInfo"]["endCursor"]}))["data"]
    assert [e["node"]["title"] for e in rest["notifications"]["edges"]] == [
        "New exception 2",
        "New exception 1",
        "New exception 0",
    ]
    assert rest["notifications"]["pageInfo"]["hasNextPage"] is False
    newest = first_page["edges"][0]["node"]["id"]
    read = "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) { ... on NotifyDone { count } } }"
    assert (await gql(client, tokens, admin, read, {"ids": [newest]}))["data"]["markNotificationsRead"] == {
        "count": 1
    }
    unread = (await gql(client, tokens, admin, paged, {"unread": True}))["data"]["notifications"]["edges"]
    assert newest not in [e["node"]["id"] for e in unread]
    assert len(unread) == 30


PREFS = """query($user: ID) { notificationPreferences(userId: $user) {
  mine { minSeverity email inApp delivery categories isDefault } account { email isDefault } } }"""
SET_PREFS = """mutation($input: NotificationPreferenceInput!, $user: ID, $forAccount: Boolean) {
  updateNotificationPreferences(input: $input, userId: $user, forAccount: $forAccount) {
    __typename ... on NotificationPreferenceSuccess { preference { minSeverity inApp delivery } }
    ... on InvalidInputError { field message } } }"""


async def test_admins_set_a_colleagues_preferences_and_shippers_their_accounts(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    admin = await staff_user(sessions, world, "admin")
    ops = await staff_user(sessions, world, "operations")
    stranger = await staff_user(sessions, other, "operations")
    owner = await shipper_user(sessions, world, 0)
    quiet = {"minSeverity": "high", "inApp": False, "delivery": "DIGEST"}

    foreign = to_global_id("User", stranger.subject_id)
    refused = await gql(client, tokens, admin, SET_PREFS, {"input": quiet, "user": foreign})
    assert refused["data"]["updateNotificationPreferences"] == {
        "__typename": "InvalidInputError",
        "field": "userId",
        "message": f"userId: no user {foreign}",
    }
    assert (await gql(client, tokens, admin, PREFS, {"user": foreign}))["data"][
        "notificationPreferences"
    ] is None
    colleague = to_global_id("User", ops.subject_id)
    done = await gql(client, tokens, admin, SET_PREFS, {"input": quiet, "user": colleague})
    assert done["data"]["updateNotificationPreferences"]["preference"] == quiet
    assert (await gql(client, tokens, ops, PREFS))["data"]["notificationPreferences"]["mine"] == {
        "minSeverity": "high",
        "email": True,
        "inApp": False,
        "delivery": "DIGEST",
        "categories": None,
        "isDefault": False,
    }
    not_admin = await gql(
        client, tokens, ops, SET_PREFS, {"input": quiet, "user": to_global_id("User", admin.subject_id)}
    )
    assert not_admin["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    bad = await gql(client, tokens, ops, SET_PREFS, {"input": {"minSeverity": "urgent"}})
    assert bad["data"]["updateNotificationPreferences"] == {
        "__typename": "InvalidInputError",
        "field": "minSeverity",
        "message": "minSeverity: unknown severity 'urgent'",
    }
    staff_account = await gql(client, tokens, ops, SET_PREFS, {"input": quiet, "forAccount": True})
    assert staff_account["data"]["updateNotificationPreferences"]["field"] == "forAccount"

    shipper_default = await gql(client, tokens, owner, PREFS)
    assert shipper_default["data"]["notificationPreferences"] == {
        "mine": {
            "minSeverity": "low",
            "email": True,
            "inApp": True,
            "delivery": "IMMEDIATE",
            "categories": None,
            "isDefault": True,
        },
        "account": {"email": True, "isDefault": True},
    }
    account_wide = await gql(
        client, tokens, owner, SET_PREFS, {"input": {"email": False}, "forAccount": True}
    )
    assert (
        account_wide["data"]["updateNotificationPreferences"]["__typename"] == "NotificationPreferenceSuccess"
    )
    after = (await gql(client, tokens, owner, PREFS))["data"]["notificationPreferences"]
    assert (after["mine"]["isDefault"], after["account"]) == (True, {"email": False, "isDefault": False})


async def test_branding_and_unfollowing_refuse_what_is_not_there(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=1)
    admin = await staff_user(sessions, world, "admin")
    branding = """mutation($from: String) { setMailBranding(displayName: "Northwind", fromAddress: $from) {
      __typename ... on MailBrandingSuccess { branding { displayName fromAddress colour } }
      ... on InvalidInputError { field message } } }"""
    bad = await gql(client, tokens, admin, branding, {"from": "alerts@@northwind"})
    assert bad["data"]["setMailBranding"] == {
        "__typename": "InvalidInputError",
        "field": "fromAddress",
        "message": "fromAddress: 'alerts@@northwind' is not an e-mail address",
    }
    good = await gql(client, tokens, admin, branding, {"from": "alerts@northwind.example"})
    assert good["data"]["setMailBranding"]["branding"] == {
        "displayName": "Northwind",
        "fromAddress": "alerts@northwind.example",
        "colour": "#1f6feb",
    }
    assert (await gql(client, tokens, admin, "{ mailBranding { displayName fromAddress } }"))["data"] == {
        "mailBranding": {"displayName": "Northwind", "fromAddress": "alerts@northwind.example"}
    }

    case = await one_exception(sessions, world)
    neighbour = await shipper_user(sessions, world, 1)
    unfollow = (
        "mutation($id: ID!) { unfollowException(id: $id) { __typename ... on NotFoundError { message } } }"
    )
    assert (await gql(client, tokens, neighbour, unfollow, {"id": case}))["data"]["unfollowException"] == {
        "__typename": "NotFoundError",
        "message": f"no exception {case}",
    }
    follow = "mutation($id: ID!) { followException(id: $id) { __typename } }"
    assert (await gql(client, tokens, admin, follow, {"id": case}))["data"]["followException"] == {
        "__typename": "NotifyDone"
    }
    assert await count(sessions, world.scope, ExceptionFollower) == 1
    assert (await gql(client, tokens, admin, unfollow, {"id": case}))["data"]["unfollowException"] == {
        "__typename": "NotifyDone"
    }
    assert await count(sessions, world.scope, ExceptionFollower) == 0
    client_denied = await gql(client, tokens, partner(world, "exceptions:read"), follow, {"id": case})
    assert client_denied["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
