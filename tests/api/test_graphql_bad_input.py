"""Malformed, oversized and wrong requests get clear errors, never a 500."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from tests.api.graphql_support import gql, staff
from tests.shipment_factories import TenantWorld, committed_tenant


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> TenantWorld:
    return await committed_tenant(sessions, accounts=1, shipments_per_account=1)


def auth(tokens: TokenService, world: TenantWorld) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(staff(world))}"}


async def test_malformed_json_is_a_400(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    response = await client.post(
        "/graphql",
        content=b'{"query": "{ viewer { kind } }"',
        headers={**auth(tokens, world), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "the request body is not valid JSON", "extensions": {"code": "BAD_REQUEST"}}]
    }


async def test_an_unsupported_content_type_is_refused(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    response = await client.post(
        "/graphql",
        content=b"{ viewer { kind } }",
        headers={**auth(tokens, world), "Content-Type": "text/plain"},
    )
    assert response.status_code == 415
    assert response.json() == {
        "errors": [
            {
                "message": "POST /graphql takes Content-Type: application/json, not text/plain (forms are "
                "refused: browsers send them from any site)",
                "extensions": {"code": "UNSUPPORTED_MEDIA_TYPE"},
            }
        ]
    }


async def test_an_oversized_body_is_a_413_before_parsing(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    padding = "x" * (64 * 1024)
    response = await client.post(
        "/graphql", json={"query": "{ viewer { kind } }", "padding": padding}, headers=auth(tokens, world)
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert "exceeds the limit of 65536 bytes" in response.json()["error_description"]


async def test_an_oversized_chunked_body_is_a_413(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(80):
            yield b"x" * 1024

    response = await client.post(
        "/graphql", content=chunks(), headers={**auth(tokens, world), "Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_unknown_fields_get_a_validation_error(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    body = await gql(client, tokens, staff(world), "{ shipments { edges { node { colour } } } }")
    # a request error: no `data` entry at all, and no "Did you mean" (field suggestions are off)
    assert body == {
        "errors": [
            {
                "message": "Cannot query field 'colour' on type 'Shipment'.",
                "locations": [{"line": 1, "column": 30}],
            }
        ]
    }


async def test_bad_variables_get_a_precise_error(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    body = await gql(
        client,
        tokens,
        staff(world),
        "query($first: Int!) { shipments(first: $first) { edges { cursor } } }",
        {"first": "many"},
    )
    assert "data" not in body
    assert (
        body["errors"][0]["message"]
        == "Variable '$first' has invalid value: Int cannot represent non-integer value: 'many'"
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ shipments(first: 101) { edges { cursor } } }", "first: must be between 1 and 100, got 101"),
        ("{ shipments(first: 0) { edges { cursor } } }", "first: must be between 1 and 100, got 0"),
        (
            '{ shipments(after: "bm9wZQ") { edges { cursor } } }',
            "after: 'bm9wZQ' is not a cursor issued by this API for this order",
        ),
        ('{ shipment(id: "%%%") { id } }', "id: '%%%' is not an id issued by this API"),
        (
            '{ shipments(filter: {accountId: ["U2hpcG1lbnQ6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"]}) '
            "{ edges { cursor } } }",
            "filter.accountId[0]: 'U2hpcG1lbnQ6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw' is not an account id",
        ),
    ],
)
async def test_out_of_range_and_foreign_arguments_are_user_errors(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld, query: str, message: str
) -> None:
    body = await gql(client, tokens, staff(world), query)
    assert body["errors"][0]["message"] == message
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_id_of_another_type_finds_nothing(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    account_id = to_global_id("Account", world.accounts[0].id)
    body = await gql(
        client, tokens, staff(world), "query($id: ID!) { shipment(id: $id) { id } }", {"id": account_id}
    )
    assert body == {"data": {"shipment": None}}
    missing = to_global_id("Carrier", uuid.uuid4())
    body = await gql(
        client, tokens, staff(world), "query($id: ID!) { node(id: $id) { id } }", {"id": missing}
    )
    assert body == {"data": {"node": None}}


WIDE_AND_ALIASED = (
    "{ "
    + " ".join(
        f"s{i}: shipments(first: 100) {{ edges {{ cursor node {{ id mode status }} }} }}" for i in range(30)
    )
    + " }"
)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        # deep: far past the parser's patience, then just past our depth limit
        (
            {"query": "{" + "a{" * 5000 + "b" + "}" * 5001},
            200,
            "Syntax Error: Document is nested too deeply. Parsing aborted.",
        ),
        (
            {
                "query": "{ viewer { account { shipments { edges { node { account { shipments { edges { node { account { id } } } } } } } } } } }"
            },
            200,
            "Query depth 11 exceeds the limit of 10.",
        ),
        # wide: many unknown fields (validation stops at 100 errors), many costly aliases
        (
            {"query": "{ " + " ".join(f"f{i}" for i in range(400)) + " }"},
            200,
            "Cannot query field 'f0' on type 'Query'.",
        ),
        (
            {"query": WIDE_AND_ALIASED},
            200,
            "Query cost 18030 exceeds the limit of 10000 (each field costs 1; a connection's `first` multiplies "
            "the cost of what it selects).",
        ),
        # wrong variable types
        (
            {"query": "query($id: ID!) { shipment(id: $id) { id } }", "variables": {"id": {"nested": True}}},
            200,
            "Variable '$id' has invalid value: ID cannot represent value: {'nested': True}",
        ),
        (
            {"query": "query($id: ID!) { shipment(id: $id) { id } }", "variables": {}},
            200,
            "Variable '$id' has invalid value: Expected a value of non-null type 'ID!' to be provided.",
        ),
        (
            {"query": "query($id: ID!) { shipment(id: $id) { id } }", "variables": {"id": None}},
            200,
            "Variable '$id' has invalid value: Expected value of non-null type 'ID!' not to be None.",
        ),
        (
            {
                "query": "query($n: Int!) { shipments(first: $n) { edges { cursor } } }",
                "variables": {"n": 2**40},
            },
            200,
            "Variable '$n' has invalid value: Int cannot represent non 32-bit signed integer value: 1099511627776",
        ),
        (
            {"query": "{ shipments(first: 99999999999) { edges { cursor } } }"},
            200,
            "Int cannot represent non 32-bit signed integer value: 99999999999",
        ),
        (
            {
                "query": "query($r: String!) { shipmentByReference(reference: $r) { id } }",
                "variables": {"r": ["a"]},
            },
            200,
            "Variable '$r' has invalid value: String cannot represent a non string value: ['a']",
        ),
    ],
)
async def test_hostile_queries_get_a_clear_error_never_a_500(
    client: httpx.AsyncClient,
    tokens: TokenService,
    world: TenantWorld,
    body: dict[str, object],
    status: int,
    message: str,
) -> None:
    response = await client.post("/graphql", json=body, headers=auth(tokens, world))
    assert response.status_code == status
    assert "data" not in response.json()
    assert response.json()["errors"][0]["message"] == message


async def test_a_body_that_is_not_utf8_is_a_400(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    response = await client.post(
        "/graphql",
        content=b'{"query": "{ \xff }"}',
        headers={**auth(tokens, world), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "the request body is not valid JSON"


async def test_huge_variables_are_refused_before_parsing(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    # the suite's body limit is 64 KiB (MILEPOST_MAX_BODY_BYTES): far smaller than the variables limit
    variables = {"r": "x" * 70_000}
    response = await client.post(
        "/graphql",
        json={
            "query": "query($r: String!) { shipmentByReference(reference: $r) { id } }",
            "variables": variables,
        },
        headers=auth(tokens, world),
    )
    assert response.status_code == 413
