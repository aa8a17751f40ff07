from __future__ import annotations

import uuid
from typing import Any

import httpx

from api.auth.tokens import TokenService
from domain.tenancy.principal import Principal
from tests.shipment_factories import TenantWorld


def staff(world: TenantWorld, *roles: str) -> Principal:
    return Principal(
        tenant_id=world.scope.tenant_id,
        subject_kind="user",
        subject_id=uuid.uuid4(),
        roles=frozenset(roles or ("operations",)),
    )


def shipper(world: TenantWorld, account_index: int = 0) -> Principal:
    return Principal(
        tenant_id=world.scope.tenant_id,
        subject_kind="user",
        subject_id=uuid.uuid4(),
        account_id=world.accounts[account_index].id,
        roles=frozenset({"shipper"}),
    )


def partner(world: TenantWorld, *scopes: str) -> Principal:
    return Principal(
        tenant_id=world.scope.tenant_id,
        subject_kind="api_client",
        subject_id=uuid.uuid4(),
        scopes=frozenset(scopes),
    )


async def gql(
    client: httpx.AsyncClient,
    tokens: TokenService,
    principal: Principal,
    query: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {tokens.issue(principal)}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
