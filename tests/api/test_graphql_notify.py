"""Notifications through GraphQL: endpoints by admins and by shipper users for their own account, refused
URLs and event types, secrets shown once, the viewer's notifications and preferences, templates checked at
write time, following; a second tenant and a second shipper account whose data stay out of reach."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from domain.db import TenantScope, scoped, scoped_transaction
from domain.notify import service
from domain.notify.models import EmailTemplate, ExceptionFollower, WebhookEndpoint
from domain.outbox.models import OutboxMessage
from domain.workflow import topics
from tests.api.graphql_support import gql, partner, staff
from tests.api.test_graphql_exceptions import staff_user
from tests.api.test_graphql_workflow import one_exception, shipper_user
from tests.shipment_factories import T0, committed_tenant

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
