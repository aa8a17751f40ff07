"""Query limits (tokens, depth, aliases, repeats, cost, variables), suggestions, introspection and the
parse and validation caches. Each refusal is a GraphQL error naming the limit and the value, never a 500."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from graphql import build_schema, get_introspection_query, parse
from graphql.language import parser as graphql_parser
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql import limits
from api.graphql.limits import Limits, operation_cost
from api.state import AppState
from tests.api.graphql_support import client_with, gql, partner, shipper, staff
from tests.shipment_factories import TenantWorld, committed_tenant


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> TenantWorld:
    return await committed_tenant(sessions, accounts=1, shipments_per_account=1)


def limit_error(body: dict[str, Any]) -> dict[str, Any]:
    """The one error of a refused request (no `data` entry: nothing ran)."""
    assert "data" not in body, body
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


DEEP = "{ shipments { edges { node { exceptions { shipment { exceptions { shipment { exceptions { shipment { exceptions { id } } } } } } } } } } }"


async def test_a_query_deeper_than_the_limit_is_refused(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    error = limit_error(await gql(client, tokens, staff(world), DEEP))
    assert error["message"] == "Query depth 11 exceeds the limit of 10."
    assert error["extensions"] == {"code": "LIMIT_EXCEEDED", "limit": "depth", "max": 10, "actual": 11}
    # one level less is fine
    shallower = DEEP.replace("exceptions { shipment { exceptions { id } } }", "exceptions { id }")
    body = await gql(client, tokens, staff(world), shallower)
    assert "errors" not in body
    assert len(body["data"]["shipments"]["edges"]) == 1


async def test_depth_counts_through_fragments(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    query = """
        query Deep { shipments { edges { node { ...A } } } }
        fragment A on Shipment { exceptions { shipment { ...B } } }
        fragment B on Shipment { exceptions { shipment { exceptions { ...C } } } }
        fragment C on ShipmentException { shipment { exceptions { id } } }
    """
    error = limit_error(await gql(client, tokens, staff(world), query))
    assert error["message"] == "Query depth 11 exceeds the limit of 10."
    assert error["locations"] == [{"line": 2, "column": 9}]


async def test_more_aliases_than_the_limit_are_refused(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    aliases = " ".join(f"a{i}: __typename" for i in range(31))
    error = limit_error(await gql(client, tokens, staff(world), f"{{ {aliases} }}"))
    assert error["message"] == "The query uses 31 aliases; the limit is 30."
    assert error["extensions"] == {"code": "LIMIT_EXCEEDED", "limit": "aliases", "max": 30, "actual": 31}
    allowed = " ".join(f"a{i}: __typename" for i in range(30))
    body = await gql(client, tokens, staff(world), f"{{ {allowed} }}")
    assert body == {"data": {f"a{i}": "Query" for i in range(30)}}


async def test_a_chain_of_fragments_is_measured_once_per_fragment(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    # each fragment spreads the next twice: 2^40 aliases if every spread were walked again
    chain = "\n".join(
        f"fragment F{i} on Query {{ a{i}: __typename ...F{i + 1} ...F{i + 1} }}" for i in range(40)
    )
    query = f"{{ ...F0 }}\n{chain}\nfragment F40 on Query {{ __typename }}"
    started = time.perf_counter()
    error = limit_error(await gql(client, tokens, staff(world), query))
    assert time.perf_counter() - started < 2
    assert error["message"] == f"The query uses {2**40 - 1} aliases; the limit is 30."


async def test_a_document_over_the_token_limit_is_not_parsed_further(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    fields = " ".join(f"f{i}" for i in range(1000))
    error = limit_error(await gql(client, tokens, staff(world), f"{{ {fields} }}"))
    assert error == {
        "message": "The document has more than 1000 tokens; the limit is 1000.",
        "extensions": {"code": "LIMIT_EXCEEDED", "limit": "tokens", "max": 1000},
    }


@pytest.mark.parametrize(
    ("query", "message", "limit"),
    [
        (
            "{ viewer { kind kind } }",
            "Field 'kind' is selected 2 times in one selection set; select it once.",
            "fieldRepeats",
        ),
        (
            "{ __typename @include(if: true) @include(if: true) }",
            "Directive '@include' is used 2 times at one location; use it once.",
            "directiveRepeats",
        ),
    ],
)
async def test_a_field_or_directive_written_twice_at_one_place_is_refused(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld, query: str, message: str, limit: str
) -> None:
    error = limit_error(await gql(client, tokens, staff(world), query))
    assert error["message"] == message
    assert error["extensions"] == {"code": "LIMIT_EXCEEDED", "limit": limit, "max": 1, "actual": 2}


async def test_the_same_field_through_fragments_is_still_fine(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    query = "{ viewer { kind ...V ... on Viewer { kind } } } fragment V on Viewer { kind }"
    assert await gql(client, tokens, staff(world), query) == {"data": {"viewer": {"kind": "user"}}}


async def test_cost_multiplies_by_the_page_size_with_variables(
    app_state: AppState, tokens: TokenService, world: TenantWorld
) -> None:
    # shipments: 1 + first * (edges 1 + cursor 1 + node 2 + pageInfo 2) = 1 + 6 * first
    query = (
        "query($n: Int!) { shipments(first: $n) { edges { cursor node { id } } pageInfo { hasNextPage } } }"
    )
    async with client_with(app_state, graphql_max_cost=31) as http:
        body = await gql(http, tokens, staff(world), query, {"n": 5})
        assert len(body["data"]["shipments"]["edges"]) == 1
        error = limit_error(await gql(http, tokens, staff(world), query, {"n": 6}))
        assert error["message"] == (
            "Query cost 37 exceeds the limit of 31 (each field costs 1; a connection's `first` multiplies "
            "the cost of what it selects)."
        )
        assert error["extensions"] == {"code": "LIMIT_EXCEEDED", "limit": "cost", "max": 31, "actual": 37}
        # no `first`: the connection's default page of 20
        error = limit_error(await gql(http, tokens, staff(world), "{ shipments { edges { cursor } } }"))
        assert error["extensions"]["actual"] == 1 + 20 * 2


async def test_a_big_realistic_page_fits_the_default_cost(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    query = """{ shipments(first: 100) { pageInfo { hasNextPage endCursor } edges { cursor node {
        id mode status serviceLevel priority createdAt updatedAt promisedDeliveryAt
        origin { locode address } destination { locode address } carrier { code name }
        references { kind value } timeline { code plannedAt estimatedAt actualAt status }
        exceptions { id type severity status explanation firstSeenAt } } } } }"""
    body = await gql(client, tokens, staff(world), query)
    assert "errors" not in body, body
    assert len(body["data"]["shipments"]["edges"]) == 1


CONNECTIONS = build_schema(
    """
    type Query { orders(first: Int = 10): OrderConnection! viewer: Viewer! }
    type Viewer { name: String }
    type OrderConnection { edges: [OrderEdge!]! }
    type OrderEdge { node: Order! }
    type Order { id: ID! lines(first: Int): LineConnection! tags: [String!]! }
    type LineConnection { edges: [LineEdge!]! }
    type LineEdge { node: Line! }
    type Line { sku: String! }
    """
)


@pytest.mark.parametrize(
    ("query", "variables", "cost"),
    [
        ("{ viewer { name } }", {}, 2),
        # orders 1 + 10 * (edges 1 + node (1 + id 1 + tags 1)) = 41: the argument's default page
        ("{ orders { edges { node { id tags } } } }", {}, 41),
        # nested pages multiply: 1 + 3 * (1 + (1 + 1 + 4 * (1 + (1 + 1))))
        ("{ orders(first: 3) { edges { node { id lines(first: 4) { edges { node { sku } } } } } } }", {}, 49),
        # a variable's value, its default, and null (the default page: 20 for `lines`, which has none)
        ("query($n: Int) { orders(first: $n) { edges { node { id } } } }", {"n": 2}, 7),
        ("query($n: Int = 4) { orders(first: $n) { edges { node { id } } } }", {}, 13),
        ("{ orders(first: 1) { edges { node { lines(first: null) { edges { node { sku } } } } } } }", {}, 64),
        # a page larger than any connection returns counts as the largest page (the resolver refuses it)
        ("{ orders(first: 100000) { edges { node { id } } } }", {}, 301),
        # fragments count where they are spread
        ("{ orders(first: 2) { edges { ...E } } } fragment E on OrderEdge { node { id } }", {}, 7),
    ],
)
def test_cost_of_an_operation(query: str, variables: dict[str, Any], cost: int) -> None:
    document = parse(query)
    operation = document.definitions[0]
    assert operation_cost(CONNECTIONS, document, operation, variables, Limits(max_page_size=100)) == cost  # type: ignore[arg-type]


async def test_variables_over_the_size_limit_are_refused(
    app_state: AppState, tokens: TokenService, world: TenantWorld
) -> None:
    query = "query($r: String!) { shipmentByReference(reference: $r) { id } }"
    async with client_with(app_state, graphql_max_variables_bytes=1024) as http:
        error = limit_error(await gql(http, tokens, staff(world), query, {"r": "x" * 1100}))
        assert error == {
            "message": "The variables are 1108 bytes of JSON; the limit is 1024.",
            "extensions": {"code": "LIMIT_EXCEEDED", "limit": "variablesBytes", "max": 1024, "actual": 1108},
        }
        # under the limit, the variables reach the resolver (which has its own rule for references)
        body = await gql(http, tokens, staff(world), query, {"r": "x" * 1000})
        assert body["errors"][0]["message"] == "reference: must be 1 to 128 characters"


async def test_limits_come_from_settings(
    app_state: AppState, tokens: TokenService, world: TenantWorld
) -> None:
    async with client_with(
        app_state, graphql_max_depth=2, graphql_max_aliases=1, graphql_max_tokens=60
    ) as http:
        error = limit_error(await gql(http, tokens, staff(world), "{ viewer { tenant { slug } } }"))
        assert error["message"] == "Query depth 3 exceeds the limit of 2."
        error = limit_error(await gql(http, tokens, staff(world), "{ a: __typename b: __typename }"))
        assert error["message"] == "The query uses 2 aliases; the limit is 1."
        fields = " ".join(f"f{i}" for i in range(60))
        error = limit_error(await gql(http, tokens, staff(world), f"{{ {fields} }}"))
        assert error["message"] == "The document has more than 60 tokens; the limit is 60."


MISSPELLINGS = [
    ("{ shipmens { edges { cursor } } }", "Cannot query field 'shipmens' on type 'Query'."),
    ("{ shipments(fist: 2) { edges { cursor } } }", "Unknown argument 'fist' on field 'Query.shipments'."),
    (
        "{ shipments(filter: {status: [IN_TRANSITT]}) { edges { cursor } } }",
        "Value 'IN_TRANSITT' does not exist in 'ShipmentStatus' enum.",
    ),
    (
        "query($f: ShipmentFiltr) { shipments(filter: $f) { edges { cursor } } }",
        "Unknown type 'ShipmentFiltr'.",
    ),
    (
        '{ shipments(filter: {referenc: "x"}) { edges { cursor } } }',
        "Expected value of type 'ShipmentFilter' not to include unknown field 'referenc', found: "
        '{ referenc: "x" }.',
    ),
    ("{ __schema { directive { name } } }", "Cannot query field 'directive' on type '__Schema'."),
]


@pytest.mark.parametrize(("query", "message"), MISSPELLINGS)
async def test_errors_never_suggest_names(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld, query: str, message: str
) -> None:
    body = await gql(client, tokens, staff(world), query)
    assert body["errors"][0]["message"] == message
    assert "Did you mean" not in str(body)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"f": {"status": ["IN_TRANSITT"]}},
            "Variable '$f' has invalid value at .status[0]: Value 'IN_TRANSITT' does not exist in "
            "'ShipmentStatus' enum.",
        ),
        (
            {"f": {"referenc": "x"}},
            "Variable '$f' has invalid value: Expected value of type 'ShipmentFilter' not to include unknown "
            "field 'referenc', found: {'referenc': 'x'}.",
        ),
    ],
)
async def test_variable_errors_never_suggest_names(
    client: httpx.AsyncClient,
    tokens: TokenService,
    world: TenantWorld,
    variables: dict[str, Any],
    message: str,
) -> None:
    query = "query($f: ShipmentFilter) { shipments(filter: $f) { edges { cursor } } }"
    body = await gql(client, tokens, staff(world), query, variables)
    assert body == {"errors": [{"message": message, "locations": [{"line": 1, "column": 7}]}]}


async def test_introspection_is_for_staff_and_partner_clients(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    query = '{ __type(name: "Shipment") { name } }'
    for caller in (staff(world, "operations"), staff(world, "finance"), partner(world)):
        assert await gql(client, tokens, caller, query) == {"data": {"__type": {"name": "Shipment"}}}
    refused = await gql(client, tokens, shipper(world), query)
    assert refused == {
        "errors": [
            {
                "message": "Introspection is available to staff users and partner clients only.",
                "locations": [{"line": 1, "column": 3}],
                "extensions": {"code": "FORBIDDEN"},
            }
        ]
    }
    # __typename is not introspection
    assert await gql(client, tokens, shipper(world), "{ __typename }") == {"data": {"__typename": "Query"}}
    anonymous = await client.post("/graphql", json={"query": query})
    assert anonymous.status_code == 401


async def test_the_standard_introspection_query_fits_the_limits(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    # what GraphiQL and code generators send
    body = await gql(client, tokens, partner(world), get_introspection_query(descriptions=True))
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"] == {"name": "Query", "kind": "OBJECT"}
    # a JSON argument's object default introspects as its literal (graphql-core alone cannot)
    types = {t["name"]: t for t in body["data"]["__schema"]["types"]}
    defaults = {f["name"]: f["defaultValue"] for f in types["RuleInput"]["inputFields"]}
    assert (defaults["parameters"], defaults["scope"]) == ("{  }", "{  }")  # graphql-core prints {} so


async def test_a_repeated_query_is_parsed_and_validated_once(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[str] = []
    validations: list[str] = []
    parse_document = graphql_parser.Parser.parse_document
    validate = limits.validate

    def counting_parse(self: graphql_parser.Parser) -> Any:
        parses.append(self._lexer.source.body)
        return parse_document(self)

    def counting_validate(*args: Any, **kwargs: Any) -> Any:
        validations.append("validate")
        return validate(*args, **kwargs)

    monkeypatch.setattr(graphql_parser.Parser, "parse_document", counting_parse)
    monkeypatch.setattr(limits, "validate", counting_validate)
    # a text no other test sends, so the process-wide caches have not seen it
    query = f"# {uuid.uuid4()}\nquery Viewer {{ viewer {{ kind }} }}"
    for _ in range(3):
        assert await gql(client, tokens, staff(world), query) == {"data": {"viewer": {"kind": "user"}}}
    assert parses == [query]
    assert validations == ["validate", "validate"]  # our limits, then the spec's rules: once each
    # the cache is keyed by what changes the outcome: a shipper (no introspection) validates again
    assert await gql(client, tokens, shipper(world), query) == {"data": {"viewer": {"kind": "user"}}}
    assert parses == [query]
    assert validations == ["validate", "validate"] * 2
