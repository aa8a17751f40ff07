"""/graphql as HTTP: media types and status codes (GraphQL over HTTP), methods, forms and batches refused,
internal errors masked with the request id, per-client rate limits, GraphiQL in development only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import api.graphql.errors
import api.graphql.limits
import api.graphql.schema
from api.auth.tokens import TokenService
from api.state import AppState
from tests.api.graphql_support import bearer, client_with, partner, staff
from tests.shipment_factories import TenantWorld, committed_tenant

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> TenantWorld:
    return await committed_tenant(sessions, accounts=1, shipments_per_account=1)


@pytest.fixture
def auth(tokens: TokenService, world: TenantWorld) -> dict[str, str]:
    return bearer(tokens, staff(world))


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE}", "application/json"),
        (f"*/*, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0, application/json", "application/json"),
        ("text/html", "application/json"),
    ],
)
async def test_the_response_media_type_follows_accept(
    client: httpx.AsyncClient, auth: dict[str, str], accept: str | None, media_type: str
) -> None:
    headers = {**auth, **({"Accept": accept} if accept else {})}
    response = await client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        ("{", None, "Syntax Error: Expected Name, found <EOF>."),
        ("{ colour }", None, "Cannot query field 'colour' on type 'Query'."),
        ("query($n: Int!) { shipments(first: $n) { edges { cursor } } }", {}, None),
        (
            "query A { __typename } query B { __typename }",
            None,
            "Must provide operation name if query contains multiple operations.",
        ),
    ],
)
async def test_a_request_error_is_400_for_graphql_response_json_and_200_for_json(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    query: str,
    variables: dict[str, Any] | None,
    message: str | None,
) -> None:
    body = {"query": query, "variables": variables}
    strict = await client.post("/graphql", json=body, headers={**auth, "Accept": GRAPHQL_RESPONSE})
    legacy = await client.post("/graphql", json=body, headers={**auth, "Accept": "application/json"})
    assert (strict.status_code, legacy.status_code) == (400, 200)
    assert strict.json() == legacy.json()
    assert "data" not in strict.json()  # nothing ran
    if message:
        assert strict.json()["errors"][0]["message"] == message


async def test_operation_name_picks_one_of_several_operations(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    body = {"query": "query A { a: __typename } query B { b: __typename }", "operationName": "B"}
    response = await client.post("/graphql", json=body, headers={**auth, "Accept": GRAPHQL_RESPONSE})
    assert (response.status_code, response.json()) == (200, {"data": {"b": "Query"}})
    body["operationName"] = "C"
    response = await client.post("/graphql", json=body, headers={**auth, "Accept": GRAPHQL_RESPONSE})
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": 'Unknown operation named "C".'}]}


async def test_a_field_error_keeps_200_and_the_data_entry(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ shipments(first: 101) { edges { cursor } } }"},
        headers={**bearer(tokens, staff(world)), "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 200
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "first: must be between 1 and 100, got 101",
                "locations": [{"line": 1, "column": 3}],
                "path": ["shipments"],
                "extensions": {"code": "BAD_USER_INPUT", "argument": "first"},
            }
        ],
    }


async def test_a_forbidden_field_is_a_request_error(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    # the access map refuses it with the document, like a validation error: 400 and no `data` entry
    response = await client.post(
        "/graphql",
        json={"query": "{ shipments(first: 5) { edges { cursor } } }"},
        headers={**bearer(tokens, partner(world, "ingest")), "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "this operation needs the 'shipments:read' scope",
                "locations": [{"line": 1, "column": 3}],
                "extensions": {"code": "FORBIDDEN"},
            }
        ]
    }


async def test_get_runs_queries(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.get(
        "/graphql",
        params={
            "query": "query T($name: String!) { __type(name: $name) { name } }",
            "variables": '{"name": "Shipment"}',
            "operationName": "T",
        },
        headers=auth,
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"__type": {"name": "Shipment"}}}


@pytest.mark.parametrize("operation", ["mutation { __typename }", "subscription { __typename }"])
async def test_get_never_runs_a_mutation(
    client: httpx.AsyncClient, auth: dict[str, str], operation: str
) -> None:
    response = await client.get("/graphql", params={"query": operation}, headers=auth)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    kind = operation.split()[0]
    assert response.json() == {
        "errors": [
            {
                "message": f"GET runs queries only; send {kind}s with POST",
                "extensions": {"code": "METHOD_NOT_ALLOWED"},
            }
        ]
    }


async def test_other_methods_are_405(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for method in ("PUT", "DELETE", "PATCH", "HEAD"):
        response = await client.request(method, "/graphql", headers=auth)
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize(
    ("content_type", "content", "message"),
    [
        (
            "application/x-www-form-urlencoded",
            b"query=%7B__typename%7D",
            "POST /graphql takes Content-Type: application/json, not application/x-www-form-urlencoded "
            "(forms are refused: browsers send them from any site)",
        ),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n{__typename}\r\n--x--\r\n',
            "POST /graphql takes Content-Type: application/json, not multipart/form-data "
            "(forms are refused: browsers send them from any site)",
        ),
        (
            "application/graphql",
            b"{ __typename }",
            "POST /graphql takes Content-Type: application/json, not application/graphql",
        ),
        (
            None,
            b'{"query": "{ __typename }"}',
            "POST /graphql takes Content-Type: application/json, and none was sent",
        ),
        (
            "application/json; charset=latin-1",
            b'{"query": "{ __typename }"}',
            "send the body as UTF-8, not latin-1",
        ),
    ],
)
async def test_anything_but_a_json_post_is_415(
    client: httpx.AsyncClient, auth: dict[str, str], content_type: str | None, content: bytes, message: str
) -> None:
    headers = {**auth, **({"Content-Type": content_type} if content_type else {})}
    response = await client.post("/graphql", content=content, headers=headers)
    assert response.status_code == 415
    assert response.json() == {
        "errors": [{"message": message, "extensions": {"code": "UNSUPPORTED_MEDIA_TYPE"}}]
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the request body is empty: send a JSON object with a query"),
        (b"[" * 100_00 + b"]" * 100_00, "the request body is not valid JSON"),
        (
            b'[{"query": "{ __typename }"}, {"query": "{ __typename }"}]',
            "batched operations are not supported: send one operation per request (a JSON object, not an array)",
        ),
        (b'"{ __typename }"', "the request body must be a JSON object with a query"),
        (b'{"query": null}', "no query: send the GraphQL document as `query`"),
        (b'{"query": ""}', "no query: send the GraphQL document as `query`"),
        (b'{"query": ["{ __typename }"]}', "`query` must be a string"),
        (b'{"query": "{ __typename }", "operationName": 1}', "`operationName` must be a string or null"),
        (b'{"query": "{ __typename }", "variables": "{}"}', "`variables` must be a JSON object or null"),
        (b'{"query": "{ __typename }", "extensions": []}', "`extensions` must be a JSON object or null"),
    ],
)
async def test_malformed_requests_are_400(
    client: httpx.AsyncClient, auth: dict[str, str], content: bytes, message: str
) -> None:
    response = await client.post(
        "/graphql", content=content, headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}


async def test_a_get_with_bad_variables_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ __typename }", "variables": "{"}, headers=auth
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "the variables parameter is not valid JSON"


async def test_the_graphql_body_limit_is_its_own(
    app_state: AppState, tokens: TokenService, world: TenantWorld
) -> None:
    async with client_with(app_state, graphql_max_body_bytes=2048) as http:
        content = b'{"query": "{ __typename }", "padding": "' + b"x" * 2048 + b'"}'
        headers = {**bearer(tokens, staff(world)), "Content-Type": "application/json"}
        response = await http.post("/graphql", content=content, headers=headers)
        assert response.status_code == 413
        assert response.json() == {
            "error": "payload_too_large",
            "error_description": f"request body of {len(content)} bytes or more exceeds the limit of 2048 bytes",
        }
        # other endpoints keep MILEPOST_MAX_BODY_BYTES
        login = await http.post("/auth/login", json={"tenant": "x", "email": "y", "password": "z" * 4096})
        assert login.status_code == 401


async def test_an_unexpected_resolver_error_is_masked_with_the_request_id(
    client: httpx.AsyncClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any) -> None:
        raise RuntimeError("connection to 10.1.2.3 refused by pg_hba.conf")

    logged = record_logs(monkeypatch)
    monkeypatch.setattr(api.graphql.schema, "current_tenant", broken)
    response = await client.post("/graphql", json={"query": "{ viewer { kind } }"}, headers=auth)
    request_id = response.headers["x-request-id"]
    assert response.status_code == 200
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": f"Internal server error (request id {request_id})",
                "locations": [{"line": 1, "column": 3}],
                "path": ["viewer"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            }
        ],
    }
    assert "pg_hba" not in response.text
    assert [(event, context["request_id"], str(fields["exc_info"])) for event, context, fields in logged] == [
        ("resolver failed", request_id, "connection to 10.1.2.3 refused by pg_hba.conf")
    ]


async def test_an_unexpected_error_outside_resolvers_is_a_masked_500(
    client: httpx.AsyncClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> int:
        raise KeyError("secret")

    logged = record_logs(monkeypatch)
    monkeypatch.setattr(api.graphql.limits, "operation_cost", broken)
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={**auth, "Accept": GRAPHQL_RESPONSE}
    )
    request_id = response.headers["x-request-id"]
    assert response.status_code == 500
    assert response.json() == {
        "errors": [
            {
                "message": f"Internal server error (request id {request_id})",
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            }
        ]
    }
    assert [
        (event, context["request_id"], repr(fields["exc_info"])) for event, context, fields in logged
    ] == [("graphql request failed", request_id, "KeyError('secret')")]


def record_logs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The error log lines of api.graphql.errors, each with the context every log line of the request
    carries (structlog's bound contextvars: the request id)."""
    lines: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    class Recorder:
        def error(self, event: str, **fields: Any) -> None:
            lines.append((event, structlog.contextvars.get_contextvars(), fields))

    monkeypatch.setattr(api.graphql.errors, "log", Recorder())
    return lines


async def test_each_client_has_its_own_rate_limit(
    app_state: AppState, tokens: TokenService, world: TenantWorld
) -> None:
    first, second = staff(world), partner(world, "shipments:read")
    async with client_with(app_state, graphql_rate_limit_per_minute=6, graphql_rate_limit_burst=2) as http:
        statuses = [
            (
                await http.post("/graphql", json={"query": "{ __typename }"}, headers=bearer(tokens, first))
            ).status_code
            for _ in range(2)
        ]
        assert statuses == [200, 200]
        refused = await http.post("/graphql", json={"query": "{ __typename }"}, headers=bearer(tokens, first))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "10"
        assert refused.json() == {
            "errors": [
                {
                    "message": "Too many requests: the limit is 6 per minute per client (bursts of 2); retry in 10 s.",
                    "extensions": {"code": "RATE_LIMITED"},
                }
            ]
        }
        # a new token of the same principal is the same client; another principal is not
        again = await http.post("/graphql", json={"query": "{ __typename }"}, headers=bearer(tokens, first))
        assert again.status_code == 429
        other = await http.post("/graphql", json={"query": "{ __typename }"}, headers=bearer(tokens, second))
        assert other.status_code == 200


async def test_anonymous_callers_are_limited_per_address(app_state: AppState) -> None:
    settings = {"graphql_anonymous_rate_limit_per_minute": 2, "graphql_anonymous_rate_limit_burst": 1}
    async with client_with(app_state, client_address="192.0.2.1", **settings) as http:
        assert (await http.post("/graphql", json={"query": "{ __typename }"})).status_code == 401
        refused = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": "Bearer x"}
        )
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "30"
        assert refused.json()["errors"][0]["message"] == (
            "Too many requests: the limit is 2 per minute per address (bursts of 1); retry in 30 s."
        )
    async with client_with(app_state, client_address="192.0.2.2", **settings) as http:
        assert (await http.post("/graphql", json={"query": "{ __typename }"})).status_code == 401


async def test_cookies_never_authenticate(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    token = tokens.issue(staff(world))
    for name in ("session", "access_token", "Authorization"):
        response = await client.post(
            "/graphql", json={"query": "{ viewer { kind } }"}, headers={"Cookie": f"{name}={token}"}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="milepost"'


async def test_graphiql_is_served_in_development_only(
    app_state: AppState, tokens: TokenService, world: TenantWorld
) -> None:
    page = {"Accept": "text/html,application/xhtml+xml"}
    async with client_with(app_state, environment="development") as http:
        response = await http.get("/graphql", headers=page)
        assert response.status_code == 200
        assert "<title>Strawberry GraphiQL</title>" in response.text
    async with client_with(app_state, environment="production") as http:
        response = await http.get("/graphql", headers=page)
        assert response.status_code == 401
        response = await http.get("/graphql", headers={**page, **bearer(tokens, staff(world))})
        assert response.status_code == 400
        assert "graphiql" not in response.text.lower()
