from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from api.app import create_app
from api.auth.tokens import TokenService
from api.state import AppState
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


@contextlib.asynccontextmanager
async def client_with(
    app_state: AppState, client_address: str = "127.0.0.1", **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose settings differ from the suite's by ``settings``."""
    state = dataclasses.replace(app_state, settings=app_state.settings.model_copy(update=settings))
    transport = httpx.ASGITransport(app=create_app(state), client=(client_address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def bearer(tokens: TokenService, principal: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(principal)}"}
