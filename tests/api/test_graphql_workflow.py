"""The workflow through GraphQL: the lifecycle mutations with their typed errors, assignment, comments and
their visibility to shippers, structured resolution, configuration by admins, metrics; each permission with
its denied paths leaving nothing behind, a second tenant and a second shipper account, and query counts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import create_app
from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from api.state import AppState
from domain.db import TenantScope, scoped, scoped_transaction
from domain.exceptions.models import ExceptionActivity, ShipmentException
from domain.tenancy.models import Team
from domain.tenancy.principal import Principal
from domain.tenancy.service import create_user
from domain.workflow.models import AssignmentRule, Playbook
from tests.api.graphql_support import gql, partner, shipper, staff
from tests.api.test_graphql_exceptions import detect, late_departure, staff_user
from tests.api.test_graphql_shipments import count_statements
from tests.shipment_factories import T0, TenantWorld, committed_tenant

H = dt.timedelta(hours=1)
NOW = T0 + 20 * H

CASE = """
query($id: ID!) { exception(id: $id) {
  id status acknowledgedAt respondBy resolveBy escalationStepsFired
  assignee { id name } assigneeTeam { id name members { id } }
  activities { kind fromStatus toStatus note customerVisible }
  timeInState { status seconds }
  resolution { outcome rootCause actionCodes cost { amount currency } customerNotified note secondsToResolve }
  playbook { playbook { name builtIn actions { code automatic } } taken }
} }
"""
CHANGE = """
mutation($id: ID!) { %s(id: $id, note: "on it") {
  __typename
  ... on ExceptionChangeSuccess { exception { status } }
  ... on InvalidTransitionError { message status transition }
  ... on NotFoundError { message }
  ... on InvalidInputError { field message }
} }
"""
ASSIGN = """
mutation($id: ID!, $user: ID, $team: ID) { assignException(id: $id, userId: $user, teamId: $team) {
  __typename
  ... on ExceptionChangeSuccess { exception { assignee { id } assigneeTeam { id } } }
  ... on NotFoundError { message }
  ... on InvalidInputError { field message }
} }
"""
COMMENT = """
mutation($id: ID!, $body: String!, $visible: Boolean!) {
  commentOnException(id: $id, body: $body, customerVisible: $visible) {
    __typename
    ... on ExceptionActivitySuccess { activity { kind note customerVisible } }
    ... on NotFoundError { message }
    ... on InvalidInputError { field message }
  }
}
"""
ACTION = """
mutation($id: ID!) { recordExceptionAction(id: $id, action: CONTACT_CARRIER, note: "called Maersk") {
  __typename ... on ExceptionActivitySuccess { activity { kind } } ... on NotFoundError { message }
} }
"""
RESOLVE = """
mutation($id: ID!, $resolution: ResolutionInput!) { resolveException(id: $id, resolution: $resolution) {
  __typename
  ... on ResolveExceptionSuccess { exception { status } resolution { outcome actionCodes } }
  ... on InvalidTransitionError { message }
  ... on NotFoundError { message }
  ... on InvalidInputError { field message }
} }
"""
TEAM = """
mutation($input: TeamInput!) { createTeam(input: $input) {
  __typename
  ... on TeamSuccess { team { id name role lead { id } members { id } } }
  ... on NotFoundError { message }
  ... on InvalidInputError { field message }
} }
"""


@pytest.fixture
async def client(app_state: AppState) -> Any:
    app = create_app(dataclasses.replace(app_state, clock=lambda: NOW))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        yield http


async def one_exception(sessions: async_sessionmaker[AsyncSession], world: TenantWorld) -> str:
    """Detect a late departure on the world's first shipment; its exception's global id."""
    await detect(sessions, world, now=T0 + H, events={0: [late_departure(24)]})
    async with scoped_transaction(sessions, world.scope) as session:
        row = (
            await session.execute(scoped(select(ShipmentException.id), ShipmentException, world.scope))
        ).scalar_one()
    return to_global_id("ShipmentException", row)


async def shipper_user(
    sessions: async_sessionmaker[AsyncSession], world: TenantWorld, index: int
) -> Principal:
    """A shipper principal backed by a real user row of the world's ``index``-th account."""
    async with scoped_transaction(sessions, world.scope) as session:
        user = await create_user(
            session,
            world.scope,
            email=f"{uuid.uuid4().hex[:10]}@example.com",
            name="Sam Shipper",
            password="correct horse battery staple",
            roles=("shipper",),
            account_id=world.accounts[index].id,
        )
    return dataclasses.replace(shipper(world, index), subject_id=user.id)


async def count(sessions: async_sessionmaker[AsyncSession], scope: TenantScope, model: Any) -> int:
    async with scoped_transaction(sessions, scope) as session:
        return int((await session.execute(scoped(select(func.count()), model, scope))).scalar_one())


async def test_a_case_worked_through_graphql_from_acknowledgement_to_close(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    case = await one_exception(sessions, world)
    ops = await staff_user(sessions, world, "operations")
    admin = await staff_user(sessions, world, "admin")
    team = await gql(
        client,
        tokens,
        admin,
        TEAM,
        {
            "input": {
                "name": "Ocean desk",
                "role": "OPERATIONS",
                "leadUserId": to_global_id("User", ops.subject_id),
                "memberIds": [to_global_id("User", ops.subject_id)],
            }
        },
    )
    team_id = team["data"]["createTeam"]["team"]["id"]
    assert team["data"]["createTeam"]["team"]["members"] == [{"id": to_global_id("User", ops.subject_id)}]

    acknowledged = await gql(client, tokens, ops, CHANGE % "acknowledgeException", {"id": case})
    assert acknowledged["data"]["acknowledgeException"] == {
        "__typename": "ExceptionChangeSuccess",
        "exception": {"status": "ACKNOWLEDGED"},
    }
    again = await gql(client, tokens, ops, CHANGE % "acknowledgeException", {"id": case})
    assert again["data"]["acknowledgeException"] == {
        "__typename": "InvalidTransitionError",
        "message": "status: a person cannot acknowledge an exception that is acknowledged "
        "(allowed: resolve, snooze, start)",
        "status": "acknowledged",
        "transition": "acknowledge",
    }
    assigned = await gql(
        client,
        tokens,
        ops,
        ASSIGN,
        {"id": case, "user": to_global_id("User", ops.subject_id), "team": team_id},
    )
    assert assigned["data"]["assignException"]["exception"] == {
        "assignee": {"id": to_global_id("User", ops.subject_id)},
        "assigneeTeam": {"id": team_id},
    }
    await gql(client, tokens, ops, CHANGE % "startWorkOnException", {"id": case})
    assert (await gql(client, tokens, ops, ACTION, {"id": case}))["data"]["recordExceptionAction"] == {
        "__typename": "ExceptionActivitySuccess",
        "activity": {"kind": "action"},
    }
    await gql(client, tokens, ops, COMMENT, {"id": case, "body": "carrier blames weather", "visible": False})
    await gql(client, tokens, ops, COMMENT, {"id": case, "body": "New ETA Friday", "visible": True})

    no_outcome = await gql(
        client, tokens, ops, RESOLVE, {"id": case, "resolution": {"rootCause": "CARRIER", "note": "done"}}
    )
    assert no_outcome["data"]["resolveException"]["__typename"] == "InvalidInputError"
    assert no_outcome["data"]["resolveException"]["field"] == "outcome"
    resolved = await gql(
        client,
        tokens,
        ops,
        RESOLVE,
        {
            "id": case,
            "resolution": {
                "outcome": "DELIVERED_LATE",
                "rootCause": "CARRIER",
                "actionCodes": ["NOTIFY_CUSTOMER"],
                "cost": {"amount": "250.00", "currency": "EUR"},
                "customerNotified": True,
                "note": "carrier credited us",
            },
        },
    )
    assert resolved["data"]["resolveException"] == {
        "__typename": "ResolveExceptionSuccess",
        "exception": {"status": "RESOLVED"},
        "resolution": {"outcome": "DELIVERED_LATE", "actionCodes": ["NOTIFY_CUSTOMER", "CONTACT_CARRIER"]},
    }
    await gql(client, tokens, ops, CHANGE % "closeException", {"id": case})

    body = (await gql(client, tokens, ops, CASE, {"id": case}))["data"]["exception"]
    assert body["status"] == "CLOSED"
    assert body["acknowledgedAt"] == NOW.isoformat()
    assert [(a["kind"], a["toStatus"]) for a in body["activities"]] == [
        ("opened", "OPEN"),
        ("acknowledge", "ACKNOWLEDGED"),
        ("assigned", None),
        ("start", "IN_PROGRESS"),
        ("action", None),
        ("comment", None),
        ("comment", None),
        ("resolve", "RESOLVED"),
        ("close", "CLOSED"),
    ]
    assert body["resolution"] == {
        "outcome": "DELIVERED_LATE",
        "rootCause": "CARRIER",
        "actionCodes": ["NOTIFY_CUSTOMER", "CONTACT_CARRIER"],
        "cost": {"amount": "250.00", "currency": "EUR"},
        "customerNotified": True,
        "note": "carrier credited us",
        "secondsToResolve": (NOW - (T0 + H)).total_seconds(),
    }
    assert body["timeInState"] == [
        {"status": "acknowledged", "seconds": 0.0},
        {"status": "closed", "seconds": 0.0},
        {"status": "in_progress", "seconds": 0.0},
        {"status": "open", "seconds": (NOW - (T0 + H)).total_seconds()},
        {"status": "resolved", "seconds": 0.0},
    ]
    assert body["playbook"]["playbook"]["builtIn"] is True
    assert body["playbook"]["taken"] == ["CONTACT_CARRIER"]


async def test_shippers_comment_on_and_see_only_their_side_of_their_own_exceptions(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=1)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    case = await one_exception(sessions, world)
    theirs = await one_exception(sessions, other)
    ops = await staff_user(sessions, world, "operations")
    await gql(client, tokens, ops, COMMENT, {"id": case, "body": "carrier blames weather", "visible": False})
    await gql(client, tokens, ops, COMMENT, {"id": case, "body": "New ETA Friday", "visible": True})
    await gql(client, tokens, ops, ASSIGN, {"id": case, "user": to_global_id("User", ops.subject_id)})

    owner = await shipper_user(sessions, world, 0)
    said = await gql(client, tokens, owner, COMMENT, {"id": case, "body": "Please hurry", "visible": False})
    assert said["data"]["commentOnException"] == {
        "__typename": "ExceptionActivitySuccess",
        "activity": {"kind": "comment", "note": "Please hurry", "customerVisible": True},
    }
    seen = (await gql(client, tokens, owner, CASE, {"id": case}))["data"]["exception"]
    assert [(a["kind"], a["note"]) for a in seen["activities"]] == [
        ("opened", None),
        ("comment", "New ETA Friday"),
        ("comment", "Please hurry"),
    ]
    assert (seen["assignee"], seen["respondBy"], seen["playbook"], seen["escalationStepsFired"]) == (
        None,
        None,
        None,
        None,
    )

    for stranger, target in ((await shipper_user(sessions, world, 1), case), (owner, theirs)):
        denied = await gql(
            client, tokens, stranger, COMMENT, {"id": target, "body": "hello?", "visible": True}
        )
        assert denied["data"]["commentOnException"] == {
            "__typename": "NotFoundError",
            "message": f"no exception {target}",
        }
    forbidden = await gql(client, tokens, owner, CHANGE % "acknowledgeException", {"id": case})
    assert forbidden["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert await count(sessions, world.scope, ExceptionActivity) == 5  # opened, assigned, 3 comments
    assert await count(sessions, other.scope, ExceptionActivity) == 1


async def test_who_may_work_and_configure(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    case = await one_exception(sessions, world)
    theirs = await one_exception(sessions, other)
    for principal in (
        staff(world, "finance"),
        staff(world, "sales"),
        partner(world, "exceptions:read"),
        shipper(world),
    ):
        denied = await gql(client, tokens, principal, CHANGE % "acknowledgeException", {"id": case})
        assert denied["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert await count(sessions, world.scope, ExceptionActivity) == 1
    writer = await gql(
        client, tokens, partner(world, "exceptions:write"), CHANGE % "acknowledgeException", {"id": case}
    )
    assert writer["data"]["acknowledgeException"]["exception"] == {"status": "ACKNOWLEDGED"}
    foreign = await gql(client, tokens, staff(world), CHANGE % "acknowledgeException", {"id": theirs})
    assert foreign["data"]["acknowledgeException"] == {
        "__typename": "NotFoundError",
        "message": f"no exception {theirs}",
    }
    wrong_type = await gql(
        client,
        tokens,
        staff(world),
        CHANGE % "acknowledgeException",
        {"id": to_global_id("Rule", world.shipments[0].id)},
    )
    assert wrong_type["data"]["acknowledgeException"]["__typename"] == "NotFoundError"

    ops = await staff_user(sessions, world, "operations")
    outsider = await staff_user(sessions, other, "operations")
    denied = await gql(client, tokens, ops, TEAM, {"input": {"name": "Desk"}})
    assert denied["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    admin = await staff_user(sessions, world, "admin")
    stranger = await gql(
        client,
        tokens,
        admin,
        TEAM,
        {"input": {"name": "Desk", "leadUserId": to_global_id("User", outsider.subject_id)}},
    )
    assert stranger["data"]["createTeam"] == {
        "__typename": "NotFoundError",
        "message": f"leadUserId: no user {outsider.subject_id} in this tenant",
    }
    assert await count(sessions, world.scope, Team) == 0
    unknown = await gql(
        client, tokens, ops, ASSIGN, {"id": case, "user": to_global_id("User", outsider.subject_id)}
    )
    assert unknown["data"]["assignException"] == {
        "__typename": "NotFoundError",
        "message": f"assigneeUserId: no user {outsider.subject_id} in this tenant",
    }

    rule = """mutation($input: AssignmentRuleInput!) { upsertAssignmentRule(input: $input) {
      __typename ... on UpsertAssignmentRuleSuccess { rule { name position match user { id } } }
      ... on InvalidInputError { field message } ... on NotFoundError { message } } }"""
    bad_lane = {
        "name": "Asia",
        "position": 1,
        "match": {"lanes": ["Shanghai"]},
        "userId": to_global_id("User", ops.subject_id),
    }
    refused = await gql(client, tokens, admin, rule, {"input": bad_lane})
    assert refused["data"]["upsertAssignmentRule"] == {
        "__typename": "InvalidInputError",
        "field": "match.lanes[0]",
        "message": "match.lanes[0]: a lane is ORIGIN-DESTINATION UN/LOCODEs, '*' for any: 'Shanghai'",
    }
    good = await gql(client, tokens, admin, rule, {"input": {**bad_lane, "match": {"lanes": ["CNSHA-*"]}}})
    assert good["data"]["upsertAssignmentRule"]["rule"]["match"] == {"lanes": ["CNSHA-*"]}
    assert await count(sessions, world.scope, AssignmentRule) == 1
    assert await count(sessions, other.scope, AssignmentRule) == 0

    playbook = """mutation($input: PlaybookInput!) { upsertPlaybook(input: $input) {
      __typename ... on UpsertPlaybookSuccess { playbook { name builtIn actions { code automatic policy { maxValue tiers } } } }
      ... on InvalidInputError { field message } } }"""
    claim = {
        "name": "Claims",
        "exceptionType": "DAMAGE_REPORTED",
        "actions": [{"code": "FILE_CLAIM", "title": "Claim", "automatic": True}],
    }
    refused = await gql(client, tokens, admin, playbook, {"input": claim})
    assert refused["data"]["upsertPlaybook"]["field"] == "actions[0].automatic"
    notify = {
        **claim,
        "actions": [
            {
                "code": "NOTIFY_CUSTOMER",
                "title": "Tell",
                "automatic": True,
                "policy": {"maxValue": "1000", "tiers": ["gold"]},
            }
        ],
    }
    saved = await gql(client, tokens, admin, playbook, {"input": notify})
    assert saved["data"]["upsertPlaybook"]["playbook"] == {
        "name": "Claims",
        "builtIn": False,
        "actions": [
            {"code": "NOTIFY_CUSTOMER", "automatic": True, "policy": {"maxValue": "1000", "tiers": ["gold"]}}
        ],
    }
    assert await count(sessions, world.scope, Playbook) == 1
    listed = await gql(client, tokens, ops, "{ playbooks { name builtIn exceptionType } }")
    assert listed["data"]["playbooks"][0] == {
        "name": "Claims",
        "builtIn": False,
        "exceptionType": "DAMAGE_REPORTED",
    }
    assert len(listed["data"]["playbooks"]) == 17  # the tenant's and the 16 built-in ones

    policy = """mutation($input: EscalationPolicyInput!) { upsertEscalationPolicy(input: $input) {
      __typename ... on UpsertEscalationPolicySuccess { policy { name steps { trigger afterMinutes target targetId } } }
      ... on InvalidInputError { field message } ... on NotFoundError { message } } }"""
    step = {
        "trigger": "NOT_ACKNOWLEDGED",
        "afterMinutes": 10,
        "target": "USER",
        "targetId": to_global_id("User", outsider.subject_id),
    }
    refused = await gql(client, tokens, admin, policy, {"input": {"name": "Fast", "steps": [step]}})
    assert refused["data"]["upsertEscalationPolicy"]["__typename"] == "NotFoundError"
    step["targetId"] = to_global_id("User", ops.subject_id)
    saved = await gql(client, tokens, admin, policy, {"input": {"name": "Fast", "steps": [step]}})
    assert saved["data"]["upsertEscalationPolicy"]["policy"]["steps"] == [step]


async def test_metrics_from_resolutions_through_graphql(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    case = await one_exception(sessions, world)
    ops = await staff_user(sessions, world, "operations")
    await gql(
        client,
        tokens,
        ops,
        RESOLVE,
        {"id": case, "resolution": {"outcome": "FALSE_POSITIVE", "rootCause": "DATA"}},
    )
    query = """query($since: DateTime!, $until: DateTime!) { resolutionMetrics(since: $since, until: $until) {
      precision { ruleVersion resolved falsePositives precision } byType { key count medianSeconds } byAction { key } } }"""
    body = await gql(client, tokens, ops, query, {"since": T0.isoformat(), "until": (NOW + H).isoformat()})
    assert body["data"]["resolutionMetrics"] == {
        "precision": [{"ruleVersion": 1, "resolved": 1, "falsePositives": 1, "precision": 0.0}],
        "byType": [{"key": "MILESTONE_LATE", "count": 1, "medianSeconds": (NOW - (T0 + H)).total_seconds()}],
        "byAction": [],
    }
    backwards = await gql(client, tokens, ops, query, {"since": NOW.isoformat(), "until": T0.isoformat()})
    assert backwards["errors"][0]["message"] == "until: must be after since"
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    theirs = await gql(
        client, tokens, staff(other), query, {"since": T0.isoformat(), "until": (NOW + H).isoformat()}
    )
    assert theirs["data"]["resolutionMetrics"] == {"precision": [], "byType": [], "byAction": []}


async def test_a_page_of_worked_exceptions_costs_the_same_statements_for_5_or_25(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    app_engine: AsyncEngine,
) -> None:
    small = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    large = await committed_tenant(sessions, accounts=2, shipments_per_account=4)
    await detect(sessions, small, now=T0 + 5 * 24 * H)
    await detect(sessions, large, now=T0 + 10 * 24 * H)
    query = """query($first: Int!) { exceptions(first: $first) { edges { node {
      id assignee { name } assigneeTeam { name members { name } } resolution { outcome } timeInState { status }
      playbook { playbook { name } taken }
    } } } }"""
    principal: Principal = staff(small)
    with count_statements(app_engine) as for_small:
        body = await gql(client, tokens, principal, query, {"first": 5})
    assert len(body["data"]["exceptions"]["edges"]) == 5
    with count_statements(app_engine) as for_large:
        body = await gql(client, tokens, staff(large), query, {"first": 25})
    assert len(body["data"]["exceptions"]["edges"]) == 25
    assert all(
        e["node"]["playbook"]["playbook"]["name"].startswith("Default")
        for e in body["data"]["exceptions"]["edges"]
    )
    assert len(for_large) == len(for_small)


QUEUE = """
query($first: Int!, $after: String, $order: ExceptionOrder!, $filter: ExceptionFilter) {
  exceptions(first: $first, after: $after, orderBy: $order, filter: $filter) {
    edges { cursor node { id priorityScore respondBy assignee { id } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def test_the_queue_orders_by_priority_or_respond_by_pages_by_cursor_and_filters_by_owner(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=2, shipments_per_account=3)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    await detect(sessions, world, now=T0 + 10 * 24 * H)
    await detect(sessions, other, now=T0 + 10 * 24 * H)
    ops = await staff_user(sessions, world, "operations")
    everything = await gql(client, tokens, ops, QUEUE, {"first": 100, "order": "NEWEST"})
    all_ids = [e["node"]["id"] for e in everything["data"]["exceptions"]["edges"]]
    assert len(all_ids) > 4
    # give the exceptions distinct, known priorities and respond-by times
    async with scoped_transaction(sessions, world.scope) as session:
        rows = (
            await session.execute(scoped(select(ShipmentException), ShipmentException, world.scope))
        ).scalars()
        for row in rows:
            index = all_ids.index(to_global_id("ShipmentException", row.id))
            row.priority_score = 10 * (index % 3)
            row.respond_by = None if index == 0 else T0 + index * H

    async def walk(order: str, filter: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        seen, after = [], None
        while True:
            page = await gql(
                client, tokens, ops, QUEUE, {"first": 2, "after": after, "order": order, "filter": filter}
            )
            connection = page["data"]["exceptions"]
            seen += [e["node"] for e in connection["edges"]]
            if not connection["pageInfo"]["hasNextPage"]:
                return seen
            after = connection["pageInfo"]["endCursor"]

    by_priority = await walk("PRIORITY")
    scores = [n["priorityScore"] for n in by_priority]
    assert scores == sorted(scores, reverse=True)
    assert sorted(n["id"] for n in by_priority) == sorted(
        all_ids
    )  # every one once, none of the other tenant's
    # equal scores keep the newest-first sequence
    assert [n["id"] for n in by_priority if n["priorityScore"] == 20] == all_ids[2::3]
    by_urgency = await walk("RESPOND_BY")
    assert [n["id"] for n in by_urgency] == [*all_ids[1:], all_ids[0]]  # none set: last

    first_page = await gql(client, tokens, ops, QUEUE, {"first": 2, "order": "PRIORITY"})
    cursor = first_page["data"]["exceptions"]["pageInfo"]["endCursor"]
    wrong = await gql(client, tokens, ops, QUEUE, {"first": 2, "after": cursor, "order": "NEWEST"})
    assert (
        wrong["errors"][0]["message"]
        == f"after: {cursor!r} is not a cursor issued by this API for this order"
    )

    mine = all_ids[1]
    await gql(client, tokens, ops, ASSIGN, {"id": mine, "user": to_global_id("User", ops.subject_id)})
    assigned = await walk("NEWEST", {"assigneeId": to_global_id("User", ops.subject_id)})
    assert [n["id"] for n in assigned] == [mine]
    unassigned = await walk("NEWEST", {"unassigned": True})
    assert [n["id"] for n in unassigned] == [i for i in all_ids if i != mine]
    denied = await gql(
        client, tokens, shipper(world), QUEUE, {"first": 5, "order": "NEWEST", "filter": {"unassigned": True}}
    )
    assert denied["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
