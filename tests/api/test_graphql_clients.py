"""Partner API clients through GraphQL: tenant admins only, one tenant's only, secrets shown once."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from domain.db import scoped_transaction
from domain.tenancy.models import ApiClient, CredentialRevocation
from domain.tenancy.service import IssuedClient, create_api_client, principal_for_client
from tests.api.graphql_support import gql, partner, shipper, staff
from tests.api.test_graphql_shipments import count_statements
from tests.shipment_factories import TenantWorld, committed_tenant

FIELDS = """
  id clientId name scopes account { id } accessTokenTtlSeconds ownAccessTokenTtlSeconds createdAt
  secretRotatedAt previousSecretExpiresAt revokedAt status
"""
LIST = f"query($all: Boolean!) {{ apiClients(includeRevoked: $all) {{ {FIELDS} }} }}"
CREATE = f"""
mutation($input: CreateApiClientInput!) {{ createApiClient(input: $input) {{
  __typename
  ... on CreateApiClientSuccess {{ clientSecret apiClient {{ {FIELDS} }} }}
  ... on InvalidInputError {{ field message }}
  ... on NotFoundError {{ message }}
}} }}
"""
ROTATE = """
mutation($id: ID!, $grace: Float) { rotateApiClientSecret(id: $id, graceHours: $grace) {
  __typename
  ... on RotateApiClientSecretSuccess { clientSecret apiClient { id secretRotatedAt previousSecretExpiresAt } }
  ... on InvalidInputError { field message }
  ... on NotFoundError { message }
  ... on ApiClientRevokedError { message revokedAt }
} }
"""
EXPIRE = """
mutation($id: ID!) { expireApiClientPreviousSecret(id: $id) {
  __typename
  ... on ExpireApiClientPreviousSecretSuccess { apiClient { id previousSecretExpiresAt } }
  ... on NotFoundError { message }
  ... on ApiClientRevokedError { message revokedAt }
} }
"""
REVOKE = """
mutation($id: ID!) { revokeApiClient(id: $id) {
  __typename
  ... on RevokeApiClientSuccess { apiClient { id status revokedAt } }
  ... on NotFoundError { message }
  ... on ApiClientRevokedError { message revokedAt }
} }
"""


async def committed_client(
    sessions: async_sessionmaker[AsyncSession], world: TenantWorld, *scopes: str, account: bool = False
) -> IssuedClient:
    async with scoped_transaction(sessions, world.scope) as session:
        return await create_api_client(
            session,
            world.scope,
            name="Partner TMS",
            scopes=scopes or ("shipments:read",),
            account_id=world.accounts[0].id if account else None,
        )


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def token_status(client: httpx.AsyncClient, client_id: str, secret: str) -> int:
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
    )
    return response.status_code


async def stored(sessions: async_sessionmaker[AsyncSession], world: TenantWorld) -> list[ApiClient]:
    async with scoped_transaction(sessions, world.scope) as session:
        return list((await session.execute(select(ApiClient).order_by(ApiClient.created_at))).scalars())


async def test_an_admin_creates_a_client_whose_secret_is_shown_once_and_works(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    admin = staff(world, "admin")
    account_id = to_global_id("Account", world.accounts[0].id)

    created = await gql(
        client,
        tokens,
        admin,
        CREATE,
        {
            "input": {
                "name": " Carrier feed ",
                "scopes": ["shipments:read", "ingest"],
                "accountId": account_id,
                "accessTokenTtlSeconds": 300,
            }
        },
    )

    payload = created["data"]["createApiClient"]
    assert payload["__typename"] == "CreateApiClientSuccess"
    row = (await stored(sessions, world))[0]
    assert payload["apiClient"] == {
        "id": to_global_id("ApiClient", row.id),
        "clientId": row.client_id,
        "name": "Carrier feed",
        "scopes": ["ingest", "shipments:read"],
        "account": {"id": account_id},
        "accessTokenTtlSeconds": 300,
        "ownAccessTokenTtlSeconds": 300,
        "createdAt": row.created_at.isoformat(),
        "secretRotatedAt": None,
        "previousSecretExpiresAt": None,
        "revokedAt": None,
        "status": "ACTIVE",
    }
    secret = payload["clientSecret"]
    assert len(secret) == 43
    assert secret not in row.secret_hash
    assert await token_status(client, row.client_id, secret) == 200
    # listing never shows a secret again
    listed = await gql(client, tokens, admin, LIST, {"all": False})
    assert "clientSecret" not in str(listed)
    assert secret not in str(listed)
    assert listed["data"]["apiClients"] == [payload["apiClient"]]


async def test_bad_input_is_refused_with_the_field_named_and_nothing_stored(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    admin = staff(world, "admin")
    their_account = to_global_id("Account", other.accounts[0].id)
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        (
            {"name": "X", "scopes": ["shipments:read", "rules:read", "everything"]},
            {
                "__typename": "InvalidInputError",
                "field": "input.scopes",
                "message": "unknown scope(s) everything, rules:read; expected some of billing:read, "
                "exceptions:read, exceptions:write, ingest, shipments:read, shipments:write, webhooks:manage",
            },
        ),
        (
            {"name": "X", "scopes": []},
            {
                "__typename": "InvalidInputError",
                "field": "input.scopes",
                "message": "a client needs at least one scope",
            },
        ),
        (
            {"name": "   ", "scopes": ["ingest"]},
            {
                "__typename": "InvalidInputError",
                "field": "input.name",
                "message": "a client's name must be 1 to 200 characters",
            },
        ),
        (
            {"name": "X", "scopes": ["ingest"], "accessTokenTtlSeconds": 30},
            {
                "__typename": "InvalidInputError",
                "field": "input.accessTokenTtlSeconds",
                "message": "a client's token lifetime must be 60 to 3600 seconds "
                "(MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS), got 30",
            },
        ),
        (
            {"name": "X", "scopes": ["ingest"], "accountId": their_account},
            {"__typename": "NotFoundError", "message": f"no account {their_account}"},
        ),
    ]
    for given, answer in cases:
        body = await gql(client, tokens, admin, CREATE, {"input": given})
        assert body["data"]["createApiClient"] == answer, given
    assert await stored(sessions, world) == []


async def test_rotating_a_secret_keeps_the_old_one_for_the_grace_period_then_not(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    issued = await committed_client(sessions, world, "ingest")
    admin = staff(world, "admin")
    global_id = to_global_id("ApiClient", issued.client.id)

    rotated = (await gql(client, tokens, admin, ROTATE, {"id": global_id, "grace": 2}))["data"][
        "rotateApiClientSecret"
    ]

    assert rotated["__typename"] == "RotateApiClientSecretSuccess"
    rotated_at = dt.datetime.fromisoformat(rotated["apiClient"]["secretRotatedAt"])
    expires_at = dt.datetime.fromisoformat(rotated["apiClient"]["previousSecretExpiresAt"])
    assert expires_at - rotated_at == dt.timedelta(hours=2)
    new_secret = rotated["clientSecret"]
    assert new_secret != issued.client_secret
    client_id = issued.client.client_id
    assert await token_status(client, client_id, issued.client_secret) == 200
    assert await token_status(client, client_id, new_secret) == 200

    expired = (await gql(client, tokens, admin, EXPIRE, {"id": global_id}))["data"][
        "expireApiClientPreviousSecret"
    ]
    assert expired["__typename"] == "ExpireApiClientPreviousSecretSuccess"
    assert await token_status(client, client_id, issued.client_secret) == 401
    assert await token_status(client, client_id, new_secret) == 200

    # the default grace is MILEPOST_CLIENT_SECRET_GRACE_HOURS (24 h); out-of-range graces are refused
    default = (await gql(client, tokens, admin, ROTATE, {"id": global_id}))["data"]["rotateApiClientSecret"]
    rotated_at = dt.datetime.fromisoformat(default["apiClient"]["secretRotatedAt"])
    expires_at = dt.datetime.fromisoformat(default["apiClient"]["previousSecretExpiresAt"])
    assert expires_at - rotated_at == dt.timedelta(hours=24)
    for grace in (-1, 721):
        refused = (await gql(client, tokens, admin, ROTATE, {"id": global_id, "grace": grace}))["data"]
        assert refused["rotateApiClientSecret"] == {
            "__typename": "InvalidInputError",
            "field": "graceHours",
            "message": f"must be 0 to 720 hours, got {grace}",
        }
    assert await token_status(client, client_id, default["clientSecret"]) == 200


async def test_revoking_a_client_stops_its_tokens_at_once(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    issued = await committed_client(sessions, world, "shipments:read")
    kept = await committed_client(sessions, world, "shipments:read")
    admin = staff(world, "admin")
    global_id = to_global_id("ApiClient", issued.client.id)
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )
    token = response.json()["access_token"]
    kept_token = tokens.issue(principal_for_client(kept.client))

    revoked = (await gql(client, tokens, admin, REVOKE, {"id": global_id}))["data"]["revokeApiClient"]

    assert revoked["__typename"] == "RevokeApiClientSuccess"
    assert revoked["apiClient"]["status"] == "REVOKED"
    bearer = await client.post(
        "/graphql", json={"query": "{ viewer { kind } }"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert bearer.status_code == 401
    assert bearer.json()["error_description"] == "the token's client has been revoked"
    still = await client.post(
        "/graphql", json={"query": "{ viewer { kind } }"}, headers={"Authorization": f"Bearer {kept_token}"}
    )
    assert still.json() == {"data": {"viewer": {"kind": "api_client"}}}
    assert await token_status(client, issued.client.client_id, issued.client_secret) == 401
    async with scoped_transaction(sessions, world.scope) as session:
        rows = (await session.execute(select(CredentialRevocation.kind, CredentialRevocation.subject))).all()
    assert [tuple(row) for row in rows] == [("client", str(issued.client.id))]

    again = (await gql(client, tokens, admin, REVOKE, {"id": global_id}))["data"]["revokeApiClient"]
    assert again == {
        "__typename": "ApiClientRevokedError",
        "message": f"API client {global_id} was revoked at {revoked['apiClient']['revokedAt']}",
        "revokedAt": revoked["apiClient"]["revokedAt"],
    }
    rotate = (await gql(client, tokens, admin, ROTATE, {"id": global_id}))["data"]["rotateApiClientSecret"]
    assert rotate["__typename"] == "ApiClientRevokedError"
    listed = (await gql(client, tokens, admin, LIST, {"all": False}))["data"]["apiClients"]
    assert [entry["id"] for entry in listed] == [to_global_id("ApiClient", kept.client.id)]
    everything = (await gql(client, tokens, admin, LIST, {"all": True}))["data"]["apiClients"]
    assert [(entry["id"], entry["status"]) for entry in everything] == [
        (global_id, "REVOKED"),
        (to_global_id("ApiClient", kept.client.id), "ACTIVE"),
    ]


async def test_another_tenants_clients_are_invisible_and_untouchable(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    mine = await committed_client(sessions, world)
    theirs = await committed_client(sessions, other)
    admin = staff(world, "admin")
    their_id = to_global_id("ApiClient", theirs.client.id)
    before = [(row.secret_hash, row.revoked_at) for row in await stored(sessions, other)]

    listed = (await gql(client, tokens, admin, LIST, {"all": True}))["data"]["apiClients"]
    node = await gql(client, tokens, admin, "query($id: ID!) { node(id: $id) { id } }", {"id": their_id})
    own_node = await gql(
        client,
        tokens,
        admin,
        "query($id: ID!) { node(id: $id) { ... on ApiClient { clientId } } }",
        {"id": to_global_id("ApiClient", mine.client.id)},
    )

    assert [entry["id"] for entry in listed] == [to_global_id("ApiClient", mine.client.id)]
    assert node == {"data": {"node": None}}
    assert own_node == {"data": {"node": {"clientId": mine.client.client_id}}}
    for mutation, name in (
        (ROTATE, "rotateApiClientSecret"),
        (EXPIRE, "expireApiClientPreviousSecret"),
        (REVOKE, "revokeApiClient"),
    ):
        answer = (await gql(client, tokens, admin, mutation, {"id": their_id}))["data"][name]
        assert answer == {"__typename": "NotFoundError", "message": f"no API client {their_id}"}, name
    # a global id of another type finds nothing either
    shipment_id = to_global_id("Shipment", mine.client.id)
    wrong_type = (await gql(client, tokens, admin, REVOKE, {"id": shipment_id}))["data"]["revokeApiClient"]
    assert wrong_type == {"__typename": "NotFoundError", "message": f"no API client {shipment_id}"}
    assert [(row.secret_hash, row.revoked_at) for row in await stored(sessions, other)] == before
    assert await token_status(client, theirs.client.client_id, theirs.client_secret) == 200


async def test_only_admins_manage_clients(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    issued = await committed_client(sessions, world)
    global_id = to_global_id("ApiClient", issued.client.id)
    everyone_but_admins = (
        staff(world, "operations", "finance", "sales", "customer_service", "documentation"),
        shipper(world),
        partner(
            world,
            "shipments:read",
            "shipments:write",
            "exceptions:read",
            "exceptions:write",
            "ingest",
            "billing:read",
            "webhooks:manage",
        ),
    )
    for principal in everyone_but_admins:
        for query, variables in (
            (LIST, {"all": True}),
            ("{ apiScopes { name } }", {}),
            ("query($id: ID!) { node(id: $id) { id } }", {"id": global_id}),
            (CREATE, {"input": {"name": "Sneaky", "scopes": ["ingest"]}}),
            (ROTATE, {"id": global_id}),
            (EXPIRE, {"id": global_id}),
            (REVOKE, {"id": global_id}),
        ):
            body = await gql(client, tokens, principal, query, variables)
            assert body["errors"][0]["message"] == "this operation needs the admin role", (principal, query)
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    rows = await stored(sessions, world)
    assert [(row.id, row.secret_hash, row.revoked_at) for row in rows] == [
        (issued.client.id, issued.client.secret_hash, None)
    ]


async def test_admins_read_the_scope_list(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=0, shipments_per_account=0)

    body = await gql(client, tokens, staff(world, "admin"), "{ apiScopes { name description } }")

    scopes = body["data"]["apiScopes"]
    assert [entry["name"] for entry in scopes] == [
        "billing:read",
        "exceptions:read",
        "exceptions:write",
        "ingest",
        "shipments:read",
        "shipments:write",
        "webhooks:manage",
    ]
    assert scopes[3]["description"] == (
        "Send tracking data to `POST /ingest/{format}`; read and replay ingest messages; set code mappings."
    )


async def test_listing_clients_costs_the_same_statements_for_2_or_20(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    app_engine: AsyncEngine,
) -> None:
    small = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    large = await committed_tenant(sessions, accounts=2, shipments_per_account=0)
    for world, count in ((small, 2), (large, 20)):
        for n in range(count):
            await committed_client(sessions, world, account=n % 2 == 0)
    with count_statements(app_engine) as for_small:
        await gql(client, tokens, staff(small, "admin"), LIST, {"all": True})
    with count_statements(app_engine) as for_large:
        body = await gql(client, tokens, staff(large, "admin"), LIST, {"all": True})
    assert len(body["data"]["apiClients"]) == 20
    # the scope and the clients; then the scope and the accounts of those bound to one (one batch)
    assert len(for_small) == len(for_large) == 4
