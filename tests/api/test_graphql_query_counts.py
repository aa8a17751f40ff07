"""Every list costs the same number of SQL statements for a few items or many (STYLE.md, habit 7).

Each test answers one query for a small and a larger tenant and counts the statements the application
engine sees; a third tenant with data of its own must not show up in either answer. Which test covers
which list is in ``tests/api/README.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from api.state import AppState
from domain.db import scoped, scoped_transaction
from domain.exceptions import service as detection
from domain.exceptions.models import ShipmentException
from domain.notify import rules as notify_rules
from domain.notify import service as notify
from domain.notify.models import Notification
from domain.shipments.service import PlannedLeg, ShipmentDraft, create_shipment
from domain.tenancy.models import Team, User
from domain.tenancy.principal import Principal
from domain.tenancy.service import create_api_client, create_user, principal_for_user
from domain.tracking import ingest
from domain.tracking.service import NewEvent, record_events
from domain.workflow import service as workflow
from domain.workflow.rules import ResolutionDraft
from tests.api.graphql_support import client_with, gql, staff
from tests.api.test_graphql_notify import seed_deliveries
from tests.api.test_graphql_shipments import count_statements
from tests.factories import PASSWORD
from tests.shipment_factories import T0, TenantWorld, committed_tenant, ocean_plan

H = dt.timedelta(hours=1)
NOW = T0 + 3 * H
Sessions = async_sessionmaker[AsyncSession]


# --- tenants' people -----------------------------------------------------------------------------------


async def staff_users(sessions: Sessions, world: TenantWorld, count: int, *roles: str) -> list[User]:
    """``count`` staff users named after the tenant (so another tenant's can never look the same)."""
    async with scoped_transaction(sessions, world.scope) as session:
        return [
            await create_user(
                session,
                world.scope,
                email=f"{world.slug}-{i}@example.com",
                name=f"{world.slug} staff {i}",
                password=PASSWORD,
                roles=roles or ("operations",),
            )
            for i in range(count)
        ]


async def staffed_teams(
    sessions: Sessions, world: TenantWorld, count: int, leads: list[User], members: list[User]
) -> list[Team]:
    """``count`` teams, each with a lead and a manager taken round from ``leads`` and two members from
    ``members``. Keep the pools apart from other users a query reads: the loaders' per-request cache
    would otherwise answer a batch for one data set and not for the other."""
    async with scoped_transaction(sessions, world.scope) as session:
        return [
            await workflow.create_team(
                session,
                world.scope,
                name=f"{world.slug} team {i:02}",
                role="operations",
                lead_user_id=leads[i % len(leads)].id,
                manager_user_id=leads[(i + 1) % len(leads)].id,
                member_ids=[members[i % len(members)].id, members[(i + 1) % len(members)].id],
            )
            for i in range(count)
        ]


# --- root lists: one case each -------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """What one tenant's seed made: who asks, and the items (with their relations) the answer must hold."""

    viewer: Principal
    shown: list[Hashable]
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RootList:
    query: str
    seed: Callable[[Sessions, TenantWorld, int], Awaitable[Seeded]]
    answered: Callable[[dict[str, Any]], list[Hashable]]  # the tenant's own items in ``data``
    statements: int  # for a few items and for many
    sizes: tuple[int, int] = (2, 12)


def _edges(connection: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in connection["edges"]]


async def _ingest_messages(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    """``n`` processed messages, each with an event parked (no such booking yet) and one rejected."""
    shown: list[Hashable] = []
    async with scoped_transaction(sessions, world.scope) as session:
        for i in range(n):
            events = [
                {
                    "eventId": f"{world.slug}-{i}-{code}",
                    "references": [{"kind": "booking", "value": f"BK-{world.slug}-{i}"}],
                    "code": code,
                    "classifier": "ACT",
                    "occurredAt": "2026-11-01T08:00:00Z",
                }
                for code in ("DEPARTED", "NOT_A_MILESTONE")
            ]
            body = json.dumps({"events": events}).encode()
            message = await ingest.receive(
                session,
                world.scope,
                format="events",
                body=body,
                content_type="application/json",
                api_client_id=None,
                idempotency_key=None,
                now=T0 + i * H,
            )
            await ingest.process(
                session, world.scope, message, ingest.parse_body("events", body, T0), now=T0 + i * H
            )
            shown.append((to_global_id("IngestMessage", message.id), ("parked", "rejected")))
    return Seeded(staff(world, "operations"), shown)


INGEST_MESSAGES = RootList(
    query="""{ ingestMessages(first: 20) { edges { node {
      id format status eventCount acceptedCount parkedCount rejectedCount issues { code }
      results(first: 5) { position outcome } acknowledgment
    } } } }""",
    seed=_ingest_messages,
    answered=lambda data: [
        (m["id"], tuple(r["outcome"] for r in m["results"])) for m in _edges(data["ingestMessages"])
    ],
    statements=2,  # the scope, the page
)


async def _teams(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    users = await staff_users(sessions, world, 4)
    leads, members = users[:2], users[2:]
    teams = await staffed_teams(sessions, world, n, leads, members)
    shown: list[Hashable] = [
        (team.name, leads[i % 2].name, leads[(i + 1) % 2].name, tuple(sorted(u.name for u in members)))
        for i, team in enumerate(teams)
    ]
    return Seeded(staff(world, "operations"), shown)


TEAMS = RootList(
    query="{ teams { id name role lead { name } manager { name } members { name email roles } } }",
    seed=_teams,
    answered=lambda data: [
        (
            t["name"],
            t["lead"]["name"],
            t["manager"]["name"],
            tuple(sorted(m["name"] for m in t["members"])),
        )
        for t in data["teams"]
    ],
    # the scope and the teams; one batch of leads and managers; one of members' ids, then their users
    statements=8,
)


async def _rules(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    """``n`` rules of the tenant's own beside the defaults, each in two versions."""
    async with scoped_transaction(sessions, world.scope) as session:
        for i in range(n):
            for threshold in (6, 12):
                await detection.upsert_rule(
                    session,
                    world.scope,
                    detection.RuleDraft(
                        exception_type="MILESTONE_LATE",
                        name=f"{world.slug} rule {i:02}",
                        parameters={"tolerance_hours": threshold},
                    ),
                    actor="user:test",
                )
    shown: list[Hashable] = [(f"{world.slug} rule {i:02}", 2, (2, 1)) for i in range(n)]
    return Seeded(staff(world, "admin"), shown)


RULES = RootList(
    query="{ rules { id exceptionType name version mode createdBy versions { id version parameters } } }",
    seed=_rules,
    answered=lambda data: [
        (r["name"], r["version"], tuple(v["version"] for v in r["versions"]))
        for r in data["rules"]
        if r["createdBy"] != "system"
    ],
    # the scope, whether the defaults are stored, the rules in force; the scope and every rule's versions
    statements=5,
)


async def _playbooks(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    types = ["MILESTONE_LATE", "CUSTOMS_HOLD", "NO_MOVEMENT", "DOCUMENTS_MISSING"]
    bands = [None, "low", "medium", "high"]
    async with scoped_transaction(sessions, world.scope) as session:
        for i in range(n):
            await workflow.upsert_playbook(
                session,
                world.scope,
                workflow.PlaybookDraft(
                    name=f"{world.slug} playbook {i:02}",
                    exception_type=types[i % 4],
                    value_band=bands[i // 4],
                    actions=[
                        {"code": "contact_carrier", "title": "Call the carrier"},
                        {"code": "notify_customer", "title": "Tell them", "automatic": True},
                    ],
                ),
            )
    shown: list[Hashable] = [
        (f"{world.slug} playbook {i:02}", types[i % 4], ("CONTACT_CARRIER", "NOTIFY_CUSTOMER"))
        for i in range(n)
    ]
    return Seeded(staff(world, "operations"), shown)


PLAYBOOKS = RootList(
    query="""{ playbooks { id name exceptionType slaTier valueBand builtIn
      actions { code title automatic policy { maxValue tiers severities } } } }""",
    seed=_playbooks,
    answered=lambda data: [
        (p["name"], p["exceptionType"], tuple(a["code"] for a in p["actions"]))
        for p in data["playbooks"]
        if not p["builtIn"]
    ],
    statements=2,  # the scope, the playbooks
)


async def _escalation_policies(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    users = await staff_users(sessions, world, 2)
    [team] = await staffed_teams(sessions, world, 1, users, users)
    async with scoped_transaction(sessions, world.scope) as session:
        for i in range(n):
            await workflow.upsert_escalation_policy(
                session,
                world.scope,
                workflow.EscalationPolicyDraft(
                    name=f"{world.slug} policy {i:02}",
                    severities=["high", "critical"],
                    steps=[
                        {
                            "trigger": "not_acknowledged",
                            "after_minutes": i,
                            "target": "user",
                            "target_id": str(users[i % 2].id),
                        },
                        {
                            "trigger": "not_resolved",
                            "after_minutes": 60,
                            "target": "named_team",
                            "target_id": str(team.id),
                        },
                    ],
                ),
            )
    shown: list[Hashable] = [
        (
            f"{world.slug} policy {i:02}",
            (to_global_id("User", users[i % 2].id), to_global_id("Team", team.id)),
        )
        for i in range(n)
    ]
    return Seeded(staff(world, "operations"), shown)


ESCALATION_POLICIES = RootList(
    query="""{ escalationPolicies { id name severities enabled
      steps { trigger afterMinutes target targetId } } }""",
    seed=_escalation_policies,
    answered=lambda data: [
        (p["name"], tuple(s["targetId"] for s in p["steps"])) for p in data["escalationPolicies"] if p["id"]
    ],
    statements=2,  # the scope, the policies
)


async def _assignment_rules(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    users = await staff_users(sessions, world, 6)
    leads, members, assignees = users[:2], users[2:4], users[4:]
    teams = await staffed_teams(sessions, world, 2, leads, members)
    async with scoped_transaction(sessions, world.scope) as session:
        for i in range(n):
            await workflow.upsert_assignment_rule(
                session,
                world.scope,
                workflow.AssignmentRuleDraft(
                    name=f"{world.slug} route {i:02}",
                    position=i,
                    match={"severities": ["high"], "lanes": ["CNSHA-*"]},
                    team_id=teams[i % 2].id,
                    user_id=assignees[i % 2].id,
                ),
            )
    shown: list[Hashable] = [
        (f"{world.slug} route {i:02}", i, teams[i % 2].name, leads[i % 2].name, assignees[i % 2].name)
        for i in range(n)
    ]
    return Seeded(staff(world, "operations"), shown)


ASSIGNMENT_RULES = RootList(
    query="""{ assignmentRules { id name position match enabled
      team { name lead { name } members { name } } user { name email } } }""",
    seed=_assignment_rules,
    answered=lambda data: [
        (r["name"], r["position"], r["team"]["name"], r["team"]["lead"]["name"], r["user"]["name"])
        for r in data["assignmentRules"]
    ],
    # the scope and the rules; teams and users in one batch each; the teams' leads; members' ids, their users
    statements=12,
)


async def _response_targets(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    keys = [(s, t) for s in ("low", "medium", "high", "critical") for t in (None, "gold", "silver")]
    shown: list[Hashable] = []
    async with scoped_transaction(sessions, world.scope) as session:
        for i, (severity, tier) in enumerate(keys[:n]):
            # minutes differ with n, so another tenant's targets never look like these
            respond, resolve = 100 * n + i, 1000 * n + i
            await workflow.set_response_target(
                session,
                world.scope,
                severity=severity,
                sla_tier=tier,
                respond_within_minutes=respond,
                resolve_within_minutes=resolve,
            )
            shown.append((severity, tier, respond, resolve))
    return Seeded(staff(world, "operations"), shown)


RESPONSE_TARGETS = RootList(
    query="{ responseTargets { severity slaTier respondWithinMinutes resolveWithinMinutes builtIn } }",
    seed=_response_targets,
    answered=lambda data: [
        (t["severity"], t["slaTier"], t["respondWithinMinutes"], t["resolveWithinMinutes"])
        for t in data["responseTargets"]
        if not t["builtIn"]
    ],
    statements=2,  # the scope, the targets
)


async def _disruption_notices(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    async with scoped_transaction(sessions, world.scope) as session:
        for i in range(n):
            await detection.create_notice(
                session,
                world.scope,
                detection.NoticeDraft(
                    cause="strike",
                    title=f"{world.slug} strike {i:02}",
                    location_locode="NLRTM",
                    starts_at=T0 + i * H,
                    ends_at=T0 + 30 * 24 * H,
                ),
            )
    return Seeded(staff(world, "operations"), [f"{world.slug} strike {i:02}" for i in range(n)])


DISRUPTION_NOTICES = RootList(
    query="""{ disruptionNotices(includeEnded: true) {
      id cause title description locationLocode startsAt endsAt source isGlobal createdAt } }""",
    seed=_disruption_notices,
    # platform-wide notices other tests made are everyone's; the tenant's own are what is counted here
    answered=lambda data: [n["title"] for n in data["disruptionNotices"] if not n["isGlobal"]],
    statements=3,  # the scope, the tenant's notices, the platform's
)


async def _shipper_endpoints(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    """``n`` endpoints of the first account, one of the second's: a shipper user sees only the first's."""
    async with scoped_transaction(sessions, world.scope) as session:
        shipper = await create_user(
            session,
            world.scope,
            email=f"{world.slug}-shipper@example.com",
            name="Sam Shipper",
            password=PASSWORD,
            roles=("shipper",),
            account_id=world.accounts[0].id,
        )
        urls = []
        for i, account in [(i, world.accounts[0]) for i in range(n)] + [(n, world.accounts[1])]:
            url = f"https://{world.slug}-{i}.example.com/hook"
            draft = notify.EndpointDraft(url, ["exception.opened"], account_id=account.id)
            await notify.create_endpoint(session, world.scope, draft, development=False)
            urls.append(url)
    return Seeded(principal_for_user(shipper), urls[:n])


SHIPPER_WEBHOOK_ENDPOINTS = RootList(
    query="""{ webhookEndpoints { id url description eventTypes accountId enabled disabledReason
      consecutiveFailures retryAt createdAt } }""",
    seed=_shipper_endpoints,
    answered=lambda data: [e["url"] for e in data["webhookEndpoints"]],
    statements=2,  # the scope, the endpoints
)


async def _deliveries(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    async with scoped_transaction(sessions, world.scope) as session:
        draft = notify.EndpointDraft(f"https://{world.slug}.example.com/hook", ["exception.opened"])
        endpoint = await notify.create_endpoint(session, world.scope, draft, development=False)
    ids = await seed_deliveries(sessions, world, endpoint.id, n)
    shown: list[Hashable] = [(to_global_id("WebhookDelivery", i), (503, 204)) for i in ids]
    return Seeded(staff(world, "admin"), shown, {"endpoint": to_global_id("WebhookEndpoint", endpoint.id)})


WEBHOOK_DELIVERIES = RootList(
    query="""query($endpoint: ID!) { webhookDeliveries(endpointId: $endpoint, first: 50) { edges { node {
      id eventType status body attemptCount nextAttemptAt deliveredAt createdAt replayOf
      attempts { at statusCode durationMs error responseExcerpt }
    } } } }""",
    seed=_deliveries,
    answered=lambda data: [
        (d["id"], tuple(a["statusCode"] for a in d["attempts"])) for d in _edges(data["webhookDeliveries"])
    ],
    statements=5,  # the scope, the endpoint, the page; the scope and every delivery's attempts
)


async def _notifications(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    """``n`` in-app notifications for the viewer and one for a colleague, which the viewer never sees."""
    viewer, colleague = await staff_users(sessions, world, 2, "admin")
    async with scoped_transaction(sessions, world.scope) as session:
        for i, user in [(i, viewer) for i in range(n)] + [(n, colleague)]:
            session.add(
                Notification(
                    tenant_id=world.scope.tenant_id,
                    id=uuid.uuid4(),
                    user_id=user.id,
                    topic="exception.opened",
                    severity="high",
                    title=f"{world.slug} notice for {user.name} {i:02}",
                    body="DEPARTED is late.",
                    in_app=True,
                    created_at=T0 + i * H,
                )
            )
    return Seeded(
        principal_for_user(viewer), [f"{world.slug} notice for {viewer.name} {i:02}" for i in range(n)]
    )


NOTIFICATIONS = RootList(
    query="""{ notifications(first: 50) { unreadCount edges { node {
      id title body topic exceptionId severity readAt createdAt } } } }""",
    seed=_notifications,
    answered=lambda data: [n["title"] for n in _edges(data["notifications"])],
    statements=3,  # the scope, the page, the unread count
)


async def _api_clients(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    """``n`` partner clients, every other one bound to an account."""
    shown: list[Hashable] = []
    async with scoped_transaction(sessions, world.scope) as session:
        for i in range(n):
            account = world.accounts[i % 2] if i % 2 else None
            issued = await create_api_client(
                session,
                world.scope,
                name=f"{world.slug} client {i:02}",
                scopes=("shipments:read",),
                account_id=account.id if account else None,
            )
            shown.append((issued.client.client_id, account.code if account else None))
    return Seeded(staff(world, "admin"), shown)


API_CLIENTS = RootList(
    query="""{ apiClients(includeRevoked: true) { id clientId name scopes account { id code name }
      accessTokenTtlSeconds createdAt revokedAt status } }""",
    seed=_api_clients,
    answered=lambda data: [
        (c["clientId"], c["account"]["code"] if c["account"] else None) for c in data["apiClients"]
    ],
    statements=4,  # the scope and the clients; the scope and their accounts
)


async def _email_templates(sessions: Sessions, world: TenantWorld, n: int) -> Seeded:
    keys = list(notify_rules.TemplateKey)[:n]
    async with scoped_transaction(sessions, world.scope) as session:
        for key in keys:
            template = notify_rules.Template(f"{world.slug} {key.value}", "Hello from {{ brand.name }}", None)
            await notify.upsert_template(session, world.scope, key.value, template)
    shown: list[Hashable] = [(key.name, f"{world.slug} {key.value}") for key in keys]
    return Seeded(staff(world, "admin"), shown)


EMAIL_TEMPLATES = RootList(
    query="{ emailTemplates { key subject text html builtIn fields } }",
    seed=_email_templates,
    answered=lambda data: [(t["key"], t["subject"]) for t in data["emailTemplates"] if not t["builtIn"]],
    statements=2,  # the scope, the tenant's templates
    sizes=(1, len(notify_rules.TemplateKey)),
)

ROOT_LISTS = {
    "ingestMessages": INGEST_MESSAGES,
    "teams": TEAMS,
    "rules": RULES,
    "playbooks": PLAYBOOKS,
    "escalationPolicies": ESCALATION_POLICIES,
    "assignmentRules": ASSIGNMENT_RULES,
    "responseTargets": RESPONSE_TARGETS,
    "disruptionNotices": DISRUPTION_NOTICES,
    "webhookEndpoints (shipper)": SHIPPER_WEBHOOK_ENDPOINTS,
    "webhookDeliveries": WEBHOOK_DELIVERIES,
    "notifications": NOTIFICATIONS,
    "apiClients": API_CLIENTS,
    "emailTemplates": EMAIL_TEMPLATES,
}


@pytest.mark.parametrize("case", list(ROOT_LISTS.values()), ids=list(ROOT_LISTS))
async def test_a_root_list_costs_the_same_statements_for_a_few_items_or_many(
    case: RootList,
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: Sessions,
    app_engine: AsyncEngine,
) -> None:
    small, large, other = [
        await committed_tenant(sessions, accounts=2, shipments_per_account=0) for _ in range(3)
    ]
    few, many = case.sizes
    seeded = [await case.seed(sessions, small, few), await case.seed(sessions, large, many)]
    theirs = await case.seed(sessions, other, few + 1)
    counts = []
    for mine in seeded:
        with count_statements(app_engine) as statements:
            body = await gql(client, tokens, mine.viewer, case.query, mine.variables)
        assert "errors" not in body, body["errors"]
        answered = case.answered(body["data"])
        assert sorted(answered, key=repr) == sorted(mine.shown, key=repr)
        assert not set(answered) & set(theirs.shown)
        counts.append(len(statements))
    assert [len(mine.shown) for mine in seeded] == [few, many]
    assert counts == [case.statements, case.statements], counts


# --- exceptions with every relation, on their own and under shipments ----------------------------------


@dataclass(frozen=True)
class Worked:
    """An exception as a staff user sees it once it has been worked."""

    id: str
    rule: str
    group: str
    assignee: str
    team: str
    lead: str
    members: tuple[str, ...]
    outcome: str | None
    playbook: str


async def worked_exceptions(sessions: Sessions, world: TenantWorld) -> dict[str, Worked]:
    """A customs hold on each of the world's shipments, at two ports (two cause groups); each hold assigned
    to a staff user and a team, with an action taken; every other one resolved. The tenant has its own
    playbook for customs holds. The users come in three pools (leads, members, assignees), see
    :func:`staffed_teams`."""
    users = await staff_users(sessions, world, 6)
    leads, members, assignees = users[:2], users[2:4], users[4:]
    teams = await staffed_teams(sessions, world, 2, leads, members)
    ports = ("NLRTM", "DEHAM")
    worked: dict[str, Worked] = {}
    async with scoped_transaction(sessions, world.scope) as session:
        playbook = await workflow.upsert_playbook(
            session,
            world.scope,
            workflow.PlaybookDraft(
                name=f"{world.slug} holds",
                exception_type="CUSTOMS_HOLD",
                actions=[{"code": "contact_customs_broker", "title": "Call the broker"}],
            ),
        )
        for index, shipment in enumerate(world.shipments):
            hold = NewEvent(
                source="carrier",
                classifier="ACT",
                milestone_code="CUSTOMS_HOLD",
                occurred_at=T0 + H,
                location_locode=ports[index % 2],
            )
            await record_events(session, world.scope, shipment.id, [hold], now=T0 + 2 * H)
        await detection.evaluate_shipments(
            session, world.scope, [s.id for s in world.shipments], now=T0 + 2 * H
        )
        holds = (
            await session.execute(
                scoped(select(ShipmentException), ShipmentException, world.scope)
                .where(ShipmentException.exception_type == "CUSTOMS_HOLD")
                .order_by(ShipmentException.first_seen_at, ShipmentException.id)
            )
        ).scalars()
        shipment_index = {s.id: i for i, s in enumerate(world.shipments)}
        for index, row in enumerate(list(holds)):
            actor = workflow.Actor("user", assignees[index % 2].id)
            await workflow.assign(
                session,
                world.scope,
                row.id,
                actor,
                now=NOW,
                user_id=assignees[index % 2].id,
                team_id=teams[index % 2].id,
            )
            await workflow.record_action(
                session, world.scope, row.id, actor, now=NOW, code="contact_customs_broker"
            )
            outcome = None
            if index % 2 == 0:
                outcome = "CUSTOMS_CLEARED"
                draft = ResolutionDraft(outcome="customs_cleared", root_cause="customs")
                await workflow.resolve(session, world.scope, row.id, actor, now=NOW + H, draft=draft)
            global_id = to_global_id("ShipmentException", row.id)
            worked[global_id] = Worked(
                id=global_id,
                rule="default",
                group=ports[shipment_index[row.shipment_id] % 2],
                assignee=assignees[index % 2].name,
                team=teams[index % 2].name,
                lead=leads[index % 2].name,
                members=tuple(sorted(u.name for u in members)),
                outcome=outcome,
                playbook=playbook.name,
            )
    assert len(worked) == len(world.shipments)
    return worked


EXCEPTION_FIELDS = """
  id type status
  rule { name version versions { version } }
  group { causeKey exceptionCount }
  shipment { id account { code } }
  activities { kind actorKind }
  timeInState { status seconds }
  assignee { name }
  assigneeTeam { name lead { name } manager { name } members { name } }
  resolution { outcome rootCause actionCodes }
  playbook { playbook { name } taken }
"""
EXCEPTION_PAGE = f"""query {{ exceptions(first: 50, filter: {{type: [CUSTOMS_HOLD]}}) {{ edges {{ node {{
  {EXCEPTION_FIELDS}
}} }} }} }}"""


def as_worked(node: dict[str, Any]) -> Worked:
    assert node["playbook"]["taken"] == ["CONTACT_CUSTOMS_BROKER"]
    assert node["timeInState"]
    assert node["activities"]
    return Worked(
        id=node["id"],
        rule=node["rule"]["name"],
        group=node["group"]["causeKey"],
        assignee=node["assignee"]["name"],
        team=node["assigneeTeam"]["name"],
        lead=node["assigneeTeam"]["lead"]["name"],
        members=tuple(sorted(m["name"] for m in node["assigneeTeam"]["members"])),
        outcome=node["resolution"]["outcome"] if node["resolution"] else None,
        playbook=node["playbook"]["playbook"]["name"],
    )


async def test_a_page_of_worked_exceptions_with_every_relation_costs_the_same_for_2_or_12(
    client: httpx.AsyncClient, tokens: TokenService, sessions: Sessions, app_engine: AsyncEngine
) -> None:
    """Every relation of an exception is there for every exception (assignee, team and its people,
    resolution, group, playbook), so each loader runs in both answers."""
    small = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    large = await committed_tenant(sessions, accounts=2, shipments_per_account=6)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    theirs = await worked_exceptions(sessions, other)
    counts = []
    for world in (small, large):
        worked = await worked_exceptions(sessions, world)
        with count_statements(app_engine) as statements:
            body = await gql(client, tokens, staff(world, "operations"), EXCEPTION_PAGE)
        assert "errors" not in body, body["errors"]
        answered = [as_worked(node) for node in _edges(body["data"]["exceptions"])]
        assert sorted(answered, key=repr) == sorted(worked.values(), key=repr)
        assert not {w.id for w in answered} & set(theirs)
        counts.append(len(statements))
    # one scoped transaction (scope + query) each for: the page; rules, groups, shipments, activities,
    # assignees, teams, resolutions (one tick); rule versions, group sizes, accounts, the playbooks, team
    # leads and managers; team members' ids; their users
    assert counts == [30, 30], counts


METRICS = """query($since: DateTime!, $until: DateTime!) { resolutionMetrics(since: $since, until: $until) {
  precision { ruleId ruleVersion resolved falsePositives precision }
  byType { key count medianSeconds } byAction { key count medianSeconds }
} }"""


async def test_resolution_metrics_cost_the_same_for_1_or_6_resolutions(
    client: httpx.AsyncClient, tokens: TokenService, sessions: Sessions, app_engine: AsyncEngine
) -> None:
    small = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    large = await committed_tenant(sessions, accounts=2, shipments_per_account=6)
    other = await committed_tenant(sessions, accounts=1, shipments_per_account=4)
    await worked_exceptions(sessions, other)
    window = {"since": T0.isoformat(), "until": (NOW + 2 * H).isoformat()}
    counts, resolved = [], []
    for world in (small, large):
        await worked_exceptions(sessions, world)
        with count_statements(app_engine) as statements:
            body = await gql(client, tokens, staff(world, "operations"), METRICS, window)
        metrics = body["data"]["resolutionMetrics"]
        assert [m["key"] for m in metrics["byType"]] == ["CUSTOMS_HOLD"]
        assert [m["key"] for m in metrics["byAction"]] == ["contact_customs_broker"]
        resolved.append(metrics["byType"][0]["count"])
        counts.append(len(statements))
    assert resolved == [1, 6]  # the other tenant's two resolutions are not among them
    assert counts == [2, 2], counts  # the scope; one statement for all three lists


async def carried_tenant(sessions: Sessions, shipments: int) -> TenantWorld:
    """A tenant whose shipments have a carrier and two legs, each leg with a carrier of its own."""
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    async with scoped_transaction(sessions, world.scope) as session:
        for n in range(shipments):
            draft = ShipmentDraft(
                account_id=world.accounts[0].id,
                mode="ocean",
                carrier_code="MAEU",
                origin_locode="CNSHA",
                destination_locode="DEHAM",
                references=[("booking", f"BK-{world.slug}-{n}")],
                legs=[
                    PlannedLeg(1, "ocean", "CNSHA", "NLRTM", "MAEU", "MAERSK ESSEN", f"{n}W"),
                    PlannedLeg(2, "ocean", "NLRTM", "DEHAM", "MSCU", "MSC ANNA", f"{n}E"),
                ],
                milestones=ocean_plan(T0 + dt.timedelta(days=n)),
            )
            world.shipments.append(await create_shipment(session, world.scope, draft))
    return world


SHIPMENT_PAGE = f"""query {{ shipments(first: 50) {{ edges {{ node {{
  id carrier {{ code name }} account {{ code }} references {{ value }} timeline {{ code }}
  legs {{ sequence carrier {{ code }} }} documents {{ documentType }} events(first: 3) {{ classifier }}
  exceptions {{ {EXCEPTION_FIELDS} }}
}} }} }} }}"""


async def test_a_shipment_page_with_carriers_legs_and_worked_exceptions_costs_the_same_field_by_field(
    app_state: AppState, tokens: TokenService, sessions: Sessions, app_engine: AsyncEngine
) -> None:
    """The field-by-field path (compiled reads off): shipments' carriers, legs' carriers and the open
    exceptions under each shipment with all their relations."""
    small = await carried_tenant(sessions, 2)
    large = await carried_tenant(sessions, 12)
    other = await carried_tenant(sessions, 2)
    theirs = await worked_exceptions(sessions, other)
    counts = []
    async with client_with(app_state, graphql_compiled_reads=False) as client:
        for world in (small, large):
            worked = await worked_exceptions(sessions, world)
            with count_statements(app_engine) as statements:
                body = await gql(client, tokens, staff(world, "operations"), SHIPMENT_PAGE)
            assert "errors" not in body, body["errors"]
            nodes = _edges(body["data"]["shipments"])
            assert sorted(n["id"] for n in nodes) == sorted(
                to_global_id("Shipment", s.id) for s in world.shipments
            )
            assert all(n["carrier"] == {"code": "MAEU", "name": "Maersk"} for n in nodes)
            assert all([leg["carrier"]["code"] for leg in n["legs"]] == ["MAEU", "MSCU"] for n in nodes)
            open_ones = [as_worked(e) for n in nodes for e in n["exceptions"]]
            assert sorted(open_ones, key=repr) == sorted(
                (w for w in worked.values() if w.outcome is None), key=repr
            )
            assert not {w.id for w in open_ones} & set(theirs)
            counts.append(len(statements))
    # one scoped transaction (scope + query) each for: the page; references, timelines, legs, documents,
    # events, accounts, carriers, open exceptions; legs' carriers (the shipments' are cached); then as on
    # the exception page, less shipments and accounts (cached): 22 in all
    assert counts == [44, 44], counts


async def test_the_lists_milepost_itself_defines_cost_no_statement(
    client: httpx.AsyncClient, tokens: TokenService, sessions: Sessions, app_engine: AsyncEngine
) -> None:
    world = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    query = "{ exceptionTypes { type category parameters { name default } } apiScopes { name description } }"
    with count_statements(app_engine) as statements:
        body = await gql(client, tokens, staff(world, "admin"), query)
    assert len(body["data"]["exceptionTypes"]) == 16
    assert body["data"]["apiScopes"]
    assert statements == []
