"""Authorization from one map (``api/graphql/access.py``): every field is mapped, root fields allow exactly
the roles and scopes they should, finance-only fields do not exist for anyone else, and shippers reach only
their own account's shipments."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from gql.transport.exceptions import TransportQueryError
from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    Undefined,
    build_schema,
    get_named_type,
    graphql_sync,
    is_composite_type,
    is_non_null_type,
)
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql import access
from api.graphql.endpoint import build_context
from api.graphql.relay import to_global_id
from api.graphql.schema import schema
from api.state import AppState
from domain.db import scoped_transaction
from domain.shipments.models import Shipment
from domain.tenancy.principal import Principal
from milepost.database import Database
from milepost.settings import Settings
from tests.api.graphql_support import gql, partner, shipper, staff
from tests.api.live_support import LiveServer, live_server, subscribed
from tests.shipment_factories import TenantWorld, committed_tenant


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> TenantWorld:
    return await committed_tenant(sessions, accounts=2, shipments_per_account=1)


def schema_fields() -> set[tuple[str, str]]:
    """Every (type, field) of the object and interface types of the live schema, introspection's aside."""
    return {
        (name, field)
        for name, named in schema._schema.type_map.items()
        if not name.startswith("__") and isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
        for field in named.fields
    }


def _listing(pairs: set[tuple[str, str]]) -> str:
    return ", ".join(f"{type_name}.{field}" for type_name, field in sorted(pairs))


# --- (a) the map is complete ---------------------------------------------------------------------------


def test_every_field_of_the_schema_is_in_the_map_and_every_entry_is_in_the_schema() -> None:
    fields, mapped = schema_fields(), set(access.FIELD_ACCESS)
    assert not fields - mapped, f"fields missing from FIELD_ACCESS: {_listing(fields - mapped)}"
    assert not mapped - fields, f"FIELD_ACCESS entries the schema no longer has: {_listing(mapped - fields)}"


INTROSPECT_FIELDS = """
{ __schema { types { name kind fields(includeDeprecated: true) { name } } } }
"""


async def test_the_map_matches_what_introspection_over_http_shows_an_admin(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    body = await gql(client, tokens, staff(world, "admin"), INTROSPECT_FIELDS)
    seen = {
        (kind["name"], field["name"])
        for kind in body["data"]["__schema"]["types"]
        if kind["kind"] in ("OBJECT", "INTERFACE") and not kind["name"].startswith("__")
        for field in kind["fields"]
    }
    mapped = set(access.FIELD_ACCESS)
    assert not seen - mapped, f"fields missing from FIELD_ACCESS: {_listing(seen - mapped)}"
    assert not mapped - seen, f"FIELD_ACCESS entries introspection does not show: {_listing(mapped - seen)}"
    assert seen == schema_fields()


def test_every_type_node_can_return_has_a_permission() -> None:
    from api.graphql.exceptions import resolvers as detection
    from api.graphql.workflow import resolvers as workflow

    dispatched = {"Shipment", "Account", "IngestMessage", "DeadLetter", "ApiClient"}
    dispatched |= detection.NODE_TYPES | workflow.NODE_TYPES
    assert set(access.NODE_ACCESS) == dispatched


async def test_a_field_missing_from_the_map_is_refused_to_everyone(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(access.FIELD_ACCESS, ("Tenant", "name"))
    # a query text of its own: validation results are cached per text
    query = "{ viewer { tenant { slug name } } }  # test_a_field_missing_from_the_map_is_refused_to_everyone"
    column = query.index("name") + 1
    for caller in (staff(world, "admin"), partner(world, "shipments:read")):
        assert await gql(client, tokens, caller, query) == {
            "errors": [
                {
                    "message": "Field 'Tenant.name' has no entry in the access map, so nobody may use it.",
                    "locations": [{"line": 1, "column": column}],
                    "extensions": {"code": "FORBIDDEN"},
                }
            ]
        }


# --- (b) root fields: who may, who may not ---------------------------------------------------------------

ADMIN_ROLE = "this operation needs the admin role"
DETECTION = "this operation needs the admin or operations role"
WORKERS = "this operation needs the admin, operations, customer_service or documentation role"
READERS = "this operation needs the admin, operations, customer_service, documentation or sales role"
DOCUMENTS = "this operation needs the documentation, admin or operations role"
USERS_ONLY = "notifications belong to users; partner clients use webhooks"
ENDPOINTS = "webhook endpoints are managed by tenant admins and by shipper users for their account"
NOBODY = "this operation needs an authenticated caller"


def scope_needed(scope: str) -> str:
    return f"this operation needs the '{scope}' scope"


# (root type, field, a caller it allows, a caller it refuses, what that caller is told). Callers: a staff
# role, "shipper", "client" followed by its scopes, or "nobody" (in-process use without a principal).
# Written out from the roles and scopes the API documents, not derived from the map it checks.
ROOTS: list[tuple[str, str, str, str, str]] = [
    ("Query", "deadLetters", "admin", "operations", ADMIN_ROLE),
    ("Query", "apiClients", "admin", "client webhooks:manage", ADMIN_ROLE),
    ("Query", "apiScopes", "admin", "shipper", ADMIN_ROLE),
    ("Query", "viewer", "shipper", "nobody", NOBODY),
    ("Query", "node", "client", "nobody", NOBODY),
    ("Query", "shipment", "client shipments:read", "client ingest", scope_needed("shipments:read")),
    ("Query", "shipmentByReference", "shipper", "client exceptions:read", scope_needed("shipments:read")),
    ("Query", "shipments", "finance", "client", scope_needed("shipments:read")),
    ("Query", "ingestMessages", "client ingest", "finance", DETECTION),
    ("Query", "ingestMessage", "operations", "shipper", DETECTION),
    ("Query", "exceptions", "sales", "finance", READERS),
    ("Query", "exception", "shipper", "client shipments:read", scope_needed("exceptions:read")),
    ("Query", "rules", "operations", "documentation", DETECTION),
    ("Query", "exceptionTypes", "client exceptions:read", "client ingest", scope_needed("exceptions:read")),
    ("Query", "disruptionNotices", "admin", "shipper", DETECTION),
    ("Query", "teams", "customer_service", "sales", WORKERS),
    ("Query", "playbooks", "documentation", "client exceptions:write", WORKERS),
    ("Query", "escalationPolicies", "operations", "finance", WORKERS),
    ("Query", "assignmentRules", "customer_service", "shipper", WORKERS),
    ("Query", "responseTargets", "admin", "sales", WORKERS),
    ("Query", "notifications", "shipper", "client exceptions:read", USERS_ONLY),
    ("Query", "notificationPreferences", "finance", "client webhooks:manage", USERS_ONLY),
    ("Query", "webhookEndpoints", "client webhooks:manage", "operations", ENDPOINTS),
    ("Query", "webhookDeliveries", "shipper", "client exceptions:read", scope_needed("webhooks:manage")),
    ("Query", "emailTemplates", "admin", "operations", ADMIN_ROLE),
    ("Query", "mailBranding", "admin", "client webhooks:manage", ADMIN_ROLE),
    ("Query", "resolutionMetrics", "operations", "shipper", WORKERS),
    ("Mutation", "replayDeadLetter", "admin", "operations", ADMIN_ROLE),
    (
        "Mutation",
        "createApiClient",
        "admin",
        "client shipments:read exceptions:write webhooks:manage",
        ADMIN_ROLE,
    ),
    ("Mutation", "rotateApiClientSecret", "admin", "operations", ADMIN_ROLE),
    ("Mutation", "expireApiClientPreviousSecret", "admin", "shipper", ADMIN_ROLE),
    ("Mutation", "revokeApiClient", "admin", "finance", ADMIN_ROLE),
    ("Mutation", "replayIngestMessage", "client ingest", "client shipments:read", scope_needed("ingest")),
    ("Mutation", "upsertCodeMapping", "operations", "customer_service", DETECTION),
    ("Mutation", "upsertRule", "admin", "operations", ADMIN_ROLE),
    ("Mutation", "backtestRule", "operations", "shipper", DETECTION),
    ("Mutation", "snoozeException", "admin", "documentation", DETECTION),
    ("Mutation", "snoozeExceptionGroup", "operations", "client exceptions:write", DETECTION),
    ("Mutation", "createDisruptionNotice", "operations", "sales", DETECTION),
    ("Mutation", "recordShipmentDocument", "documentation", "customer_service", DOCUMENTS),
    (
        "Mutation",
        "acknowledgeException",
        "client exceptions:write",
        "client exceptions:read",
        scope_needed("exceptions:write"),
    ),
    ("Mutation", "startWorkOnException", "customer_service", "sales", WORKERS),
    ("Mutation", "assignException", "operations", "shipper", WORKERS),
    ("Mutation", "commentOnException", "shipper", "sales", WORKERS),
    ("Mutation", "recordExceptionAction", "documentation", "finance", WORKERS),
    ("Mutation", "resolveException", "admin", "client exceptions:read", scope_needed("exceptions:write")),
    ("Mutation", "closeException", "customer_service", "shipper", WORKERS),
    ("Mutation", "reopenException", "operations", "sales", WORKERS),
    ("Mutation", "markNotificationsRead", "shipper", "client webhooks:manage", USERS_ONLY),
    ("Mutation", "updateNotificationPreferences", "operations", "client", USERS_ONLY),
    ("Mutation", "createWebhookEndpoint", "shipper", "customer_service", ENDPOINTS),
    (
        "Mutation",
        "updateWebhookEndpoint",
        "admin",
        "client exceptions:write",
        scope_needed("webhooks:manage"),
    ),
    ("Mutation", "rotateWebhookSecret", "client webhooks:manage", "operations", ENDPOINTS),
    ("Mutation", "deleteWebhookEndpoint", "shipper", "finance", ENDPOINTS),
    ("Mutation", "replayWebhookDelivery", "admin", "sales", ENDPOINTS),
    ("Mutation", "upsertEmailTemplate", "admin", "operations", ADMIN_ROLE),
    ("Mutation", "resetEmailTemplate", "admin", "shipper", ADMIN_ROLE),
    ("Mutation", "setMailBranding", "admin", "finance", ADMIN_ROLE),
    ("Mutation", "followException", "shipper", "client exceptions:read", USERS_ONLY),
    ("Mutation", "unfollowException", "sales", "finance", READERS),
    ("Mutation", "createTeam", "admin", "operations", ADMIN_ROLE),
    ("Mutation", "upsertAssignmentRule", "admin", "customer_service", ADMIN_ROLE),
    ("Mutation", "upsertPlaybook", "admin", "client exceptions:write", ADMIN_ROLE),
    ("Mutation", "upsertEscalationPolicy", "admin", "documentation", ADMIN_ROLE),
    ("Mutation", "setResponseTarget", "admin", "operations", ADMIN_ROLE),
    ("Subscription", "exceptionEvents", "shipper", "finance", READERS),
    (
        "Subscription",
        "shipmentUpdates",
        "client shipments:read",
        "client exceptions:read",
        scope_needed("shipments:read"),
    ),
]


def test_the_matrix_covers_every_root_field() -> None:
    roots = {
        (root.name, field)
        for root in (
            schema._schema.query_type,
            schema._schema.mutation_type,
            schema._schema.subscription_type,
        )
        if root is not None
        for field in root.fields
    }
    assert {(type_name, field) for type_name, field, *_ in ROOTS} == roots
    assert len(ROOTS) == len(roots)


def caller(world: TenantWorld, spec: str) -> Principal | None:
    kind, *rest = spec.split()
    if kind == "nobody":
        return None
    if kind == "shipper":
        return shipper(world)
    if kind == "client":
        return partner(world, *rest)
    return staff(world, kind)


def root_document(type_name: str, field_name: str) -> tuple[str, int]:
    """A one-line document selecting the root field with every required argument as a variable, and the
    column the field starts at."""
    root = schema._schema.get_type(type_name)
    assert isinstance(root, GraphQLObjectType)
    field = root.fields[field_name]
    required = [
        (name, arg)
        for name, arg in field.args.items()
        if is_non_null_type(arg.type) and arg.default_value is Undefined and arg.default is None
    ]
    variables = ", ".join(f"${name}: {arg.type}" for name, arg in required)
    arguments = ", ".join(f"{name}: ${name}" for name, _ in required)
    head = f"{type_name.lower()} Access{f'({variables})' if variables else ''} {{ "
    selection = " { __typename }" if is_composite_type(get_named_type(field.type)) else ""
    return f"{head}{field_name}{f'({arguments})' if arguments else ''}{selection} }}", len(head) + 1


async def run_as(
    client: httpx.AsyncClient, tokens: TokenService, app_state: AppState, who: Principal | None, query: str
) -> dict[str, Any]:
    """The answer to ``query`` for ``who``: over HTTP for queries and mutations, through the schema with a
    real context for subscriptions (HTTP refuses those before validation) and for no principal at all."""
    if who is not None and not query.startswith("subscription"):
        body = await gql(client, tokens, who, query)
        return {"errors": [], **body}
    context = build_context(app_state, who, "access-test") if who is not None else None
    if query.startswith("subscription"):
        stream = await schema.subscribe(query, context_value=context)
        result = await anext(stream)
    else:
        result = await schema.execute(query, context_value=context)
    answer: dict[str, Any] = {"errors": [error.formatted for error in result.errors or []]}
    if result.data is not None:
        answer["data"] = result.data
    return answer


@pytest.mark.parametrize(
    ("type_name", "field_name", "allowed", "denied", "refusal"), ROOTS, ids=[f"{t}.{f}" for t, f, *_ in ROOTS]
)
async def test_each_root_field_allows_its_callers_and_refuses_others(
    client: httpx.AsyncClient,
    tokens: TokenService,
    app_state: AppState,
    world: TenantWorld,
    type_name: str,
    field_name: str,
    allowed: str,
    denied: str,
    refusal: str,
) -> None:
    query, column = root_document(type_name, field_name)
    # the same text for both callers: the validation cache keeps their answers apart
    answer = await run_as(client, tokens, app_state, caller(world, allowed), query)
    codes = [(error.get("extensions") or {}).get("code") for error in answer["errors"]]
    assert "FORBIDDEN" not in codes, answer
    if "$" in query:  # validation passed, then the missing variables stopped it before anything ran
        assert answer["errors"], answer
        for error in answer["errors"]:
            assert error["message"].startswith("Variable '$"), answer
            assert error["message"].endswith("to be provided."), answer
    elif type_name != "Subscription":  # ran: subscriptions end without a WebSocket, queries answer
        assert answer == {"errors": [], "data": answer["data"]}

    refused = await run_as(client, tokens, app_state, caller(world, denied), query)
    assert refused == {
        "errors": [
            {
                "message": refusal,
                "locations": [{"line": 1, "column": column}],
                "extensions": {"code": "FORBIDDEN"},
            }
        ]
    }


async def test_node_answers_by_the_permission_of_the_type_inside_the_id(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    query = "query($id: ID!) { node(id: $id) { id } }"
    shipment_id = to_global_id("Shipment", world.shipments[0].id)
    rule_id = to_global_id("Rule", uuid.uuid4())
    allowed = await gql(client, tokens, partner(world, "shipments:read"), query, {"id": shipment_id})
    assert allowed == {"data": {"node": {"id": shipment_id}}}
    denied = await gql(client, tokens, partner(world, "exceptions:read"), query, {"id": shipment_id})
    assert denied["data"] == {"node": None}
    assert [(e["message"], e["extensions"]) for e in denied["errors"]] == [
        (scope_needed("shipments:read"), {"code": "FORBIDDEN"})
    ]
    rule = await gql(client, tokens, shipper(world), query, {"id": rule_id})
    assert [e["message"] for e in rule["errors"]] == [DETECTION]
    milestone = await gql(
        client, tokens, shipper(world), query, {"id": to_global_id("Milestone", uuid.uuid4())}
    )
    assert milestone == {"data": {"node": None}}


async def test_a_nested_field_with_its_own_permission_is_refused_under_an_allowed_root(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    query = "{ shipments(first: 5) { edges { node { id exceptions { id } } } } }"
    refused = await gql(client, tokens, partner(world, "shipments:read"), query)
    assert refused == {
        "errors": [
            {
                "message": scope_needed("exceptions:read"),
                "locations": [{"line": 1, "column": query.index("exceptions") + 1}],
                "extensions": {"code": "FORBIDDEN"},
            }
        ]
    }
    both = await gql(client, tokens, partner(world, "shipments:read", "exceptions:read"), query)
    assert [edge["node"]["exceptions"] for edge in both["data"]["shipments"]["edges"]] == [[], []]
    finance = await gql(client, tokens, staff(world, "finance"), query)
    assert [e["message"] for e in finance["errors"]] == [READERS]


async def test_fragments_are_checked_where_they_are_written(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    query = """
    query { shipments(first: 1) { edges { node { ...Open } } } }
    fragment Open on Shipment { exceptions { id } }
    """
    refused = await gql(client, tokens, partner(world, "shipments:read"), query)
    assert [(e["message"], e["locations"]) for e in refused["errors"]] == [
        (scope_needed("exceptions:read"), [{"line": 3, "column": 33}])
    ]


# --- (c) finance-only fields are invisible to everyone else ----------------------------------------------

NOT_FINANCE = ("operations", "customer_service", "documentation", "sales", "shipper", "client shipments:read")
FINANCE = ("finance", "admin", "client shipments:read billing:read")


async def with_declared_value(sessions: async_sessionmaker[AsyncSession], world: TenantWorld) -> None:
    async with scoped_transaction(sessions, world.scope) as session:
        await session.execute(
            update(Shipment)
            .where(Shipment.id == world.shipments[0].id)
            .values(declared_value=Decimal("60000.50"), declared_value_currency="EUR")
        )


# each with the field at the same place as a field that does not exist, so the answers must be equal
HIDDEN_SELECTIONS = {
    "a page": "{ shipments(first: 5) { edges { node { id %s { amount } } } } }",
    "no subselection": "{ shipments(first: 5) { edges { node { %s } } } }",
    "an argument": '{ shipments(first: 5) { edges { node { %s(currency: "EUR") { amount } } } } }',
    "an alias": "{ shipments(first: 5) { edges { node { worth: %s { amount } } } } }",
    "a fragment": "{ shipments(first: 5) { edges { node { ...F } } } } fragment F on Shipment { %s { amount } }",
    "node(id)": '{ node(id: "%%s") { id ... on Shipment { %s { amount } } } }',
    "nested inline fragments": '{ node(id: "%%s") { ... on Node { ... on Shipment { %s { amount } } } } }',
}


@pytest.mark.parametrize("where", HIDDEN_SELECTIONS)
async def test_a_finance_only_field_answers_like_a_field_that_does_not_exist(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld, where: str
) -> None:
    template = HIDDEN_SELECTIONS[where]
    shipment_id = to_global_id("Shipment", world.shipments[0].id)

    def document(field: str) -> str:
        text = template % field
        return text % shipment_id if "%s" in text else text

    for spec in NOT_FINANCE:
        who = caller(world, spec)
        assert who is not None
        hidden = await gql(client, tokens, who, document("declaredValue"))
        # same length, so the same locations
        missing = await gql(client, tokens, who, document("declaredWorth"))
        assert missing["errors"][0]["message"] == "Cannot query field 'declaredWorth' on type 'Shipment'."
        expected = {
            "errors": [
                {**error, "message": error["message"].replace("declaredWorth", "declaredValue")}
                for error in missing["errors"]
            ]
        }
        assert hidden == expected, spec


async def test_finance_admin_and_billing_clients_read_the_declared_value(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    await with_declared_value(sessions, world)
    query = "query($id: ID!) { shipment(id: $id) { declaredValue { amount currency } } }"
    for spec in FINANCE:
        who = caller(world, spec)
        assert who is not None
        body = await gql(client, tokens, who, query, {"id": to_global_id("Shipment", world.shipments[0].id)})
        assert body == {"data": {"shipment": {"declaredValue": {"amount": "60000.50", "currency": "EUR"}}}}, (
            spec
        )


SHIPMENT_FIELDS = '{ __type(name: "Shipment") { fields { name } } }'
ALL_FIELDS = "{ __schema { types { name fields { name } } } }"


async def test_introspection_lists_a_finance_only_field_only_for_those_who_may_read_it(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    everything = {field for type_name, field in schema_fields() if type_name == "Shipment"}
    assert "declaredValue" in everything
    # shippers may not introspect at all; every other caller who cannot read the field does not see it
    for spec in (*(spec for spec in NOT_FINANCE if spec != "shipper"), *FINANCE):
        who = caller(world, spec)
        assert who is not None
        expected = everything if spec in FINANCE else everything - {"declaredValue"}
        one = await gql(client, tokens, who, SHIPMENT_FIELDS)
        assert {field["name"] for field in one["data"]["__type"]["fields"]} == expected, spec
        every = await gql(client, tokens, who, ALL_FIELDS)
        [shipment] = [t for t in every["data"]["__schema"]["types"] if t["name"] == "Shipment"]
        assert {field["name"] for field in shipment["fields"]} == expected, spec


def test_the_sdl_and_introspection_without_a_principal_keep_every_field() -> None:
    sdl = schema.as_str()
    assert "declaredValue: Money" in sdl
    # another schema in the process (here one built from our SDL) introspects as graphql-core always did
    built = build_schema(sdl)
    result = graphql_sync(built, SHIPMENT_FIELDS)
    assert result.errors is None
    assert result.data is not None
    assert "declaredValue" in {field["name"] for field in result.data["__type"]["fields"]}


# --- (d) shippers ------------------------------------------------------------------------------------------

STAFF_ONLY_ROOTS = ("rules", "teams", "ingestMessages", "deadLetters", "apiClients", "emailTemplates")


async def test_a_shipper_is_refused_staff_only_root_fields_and_nothing_runs(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    for field in STAFF_ONLY_ROOTS:
        query, _ = root_document("Query", field)
        body = await gql(client, tokens, shipper(world), query)
        assert "data" not in body, field
        assert [e["extensions"] for e in body["errors"]] == [{"code": "FORBIDDEN"}], field
    # several at once: each is named, nothing of the allowed one runs
    query = "{ viewer { kind } rules { name } teams { name } }"
    body = await gql(client, tokens, shipper(world), query)
    assert body == {
        "errors": [
            {
                "message": message,
                "locations": [{"line": 1, "column": query.index(field) + 1}],
                "extensions": {"code": "FORBIDDEN"},
            }
            for field, message in (("rules", DETECTION), ("teams", WORKERS))
        ]
    }


async def test_a_shipper_never_sees_another_accounts_or_tenants_shipment(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    other_tenant = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    mine, other_account = world.shipments
    first = shipper(world, 0)
    page = await gql(client, tokens, first, "{ shipments(first: 50) { edges { node { id } } } }")
    assert [edge["node"]["id"] for edge in page["data"]["shipments"]["edges"]] == [
        to_global_id("Shipment", mine.id)
    ]
    for shipment in (other_account, other_tenant.shipments[0]):
        global_id = to_global_id("Shipment", shipment.id)
        one = await gql(
            client,
            tokens,
            first,
            "query($id: ID!) { shipment(id: $id) { id } node(id: $id) { id } }",
            {"id": global_id},
        )
        assert one == {"data": {"shipment": None, "node": None}}
    by_reference = await gql(
        client,
        tokens,
        first,
        "query($r: String!) { shipmentByReference(reference: $r) { id } }",
        {"r": f"BK-{world.slug}-1-0"},  # the second account's booking
    )
    assert by_reference == {"data": {"shipmentByReference": None}}
    # the second account's own user does see it: the answer above is about whose it is
    theirs = await gql(
        client,
        tokens,
        shipper(world, 1),
        "query($r: String!) { shipmentByReference(reference: $r) { id } }",
        {"r": f"BK-{world.slug}-1-0"},
    )
    assert theirs == {"data": {"shipmentByReference": {"id": to_global_id("Shipment", other_account.id)}}}


# --- (e) subscriptions ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def server(database: Database, settings: Settings, tokens: TokenService) -> AsyncIterator[LiveServer]:
    async with live_server(database, settings, tokens) as running:
        yield running


@dataclass
class Refusal:
    message: str
    code: str | None


async def refusal_of(server: LiveServer, token: str, query: str, variables: dict[str, Any]) -> list[Refusal]:
    async with subscribed(server.url, token, query, variables) as subscription:
        error = await subscription.ending()
    assert isinstance(error, TransportQueryError), error
    assert error.errors is not None
    return [Refusal(e["message"], (e.get("extensions") or {}).get("code")) for e in error.errors]


async def test_a_subscription_selecting_a_forbidden_or_hidden_field_is_refused_before_it_starts(
    server: LiveServer, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    variables = {"id": to_global_id("Shipment", world.shipments[0].id)}
    nested = (
        "subscription($id: ID!) { shipmentUpdates(shipmentId: $id) { topic shipment { exceptions { id } } } }"
    )
    reader = tokens.issue(partner(world, "shipments:read"))
    assert await refusal_of(server, reader, nested, variables) == [
        Refusal(scope_needed("exceptions:read"), "FORBIDDEN")
    ]
    events = "subscription { exceptionEvents { topic } }"
    assert await refusal_of(server, tokens.issue(staff(world, "finance")), events, {}) == [
        Refusal(READERS, "FORBIDDEN")
    ]
    hidden = "subscription($id: ID!) { shipmentUpdates(shipmentId: $id) { shipment { declaredValue { amount } } } }"
    assert await refusal_of(server, tokens.issue(staff(world, "operations")), hidden, variables) == [
        Refusal("Cannot query field 'declaredValue' on type 'Shipment'.", None)
    ]
    await server.subscribers(0)
    # finance may: the same subscription starts
    async with subscribed(server.url, tokens.issue(staff(world, "finance")), hidden, variables):
        await server.subscribers(1)
    await server.subscribers(0)
