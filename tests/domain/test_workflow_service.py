"""The workflow against PostgreSQL: lifecycle use cases with their activity and outbox rows, assignment
checks, triage (auto-assignment, due times, automatic playbook actions and their policy), escalation driven
by an injected clock, structured resolutions and their metrics, and a second tenant that stays invisible."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, apply_scope, scoped
from domain.exceptions.models import ExceptionActivity, ShipmentException
from domain.outbox.models import OutboxMessage
from domain.shipments.models import Shipment
from domain.shipments.service import PlannedMilestone, ShipmentDraft, create_shipment
from domain.tenancy.models import Account, Role, Tenant, User
from domain.workflow import service
from domain.workflow.models import ExceptionResolution
from domain.workflow.rules import InvalidTransition, ResolutionDraft
from domain.workflow.service import (
    Actor,
    AssignmentRuleDraft,
    EscalationPolicyDraft,
    PlaybookDraft,
    WorkflowError,
    WorkflowNotFound,
)
from tests.factories import make_account, make_shipper_user, make_tenant, make_user

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


class World:
    """A tenant with an account, a staff user, an admin, a shipment and helpers to open exceptions on it."""

    def __init__(self, tenant: Tenant, account: Account, ops: User, admin: User, shipment: Shipment) -> None:
        self.tenant, self.account, self.ops, self.admin, self.shipment = tenant, account, ops, admin, shipment
        self.scope = TenantScope(tenant.id)

    @property
    def actor(self) -> Actor:
        return Actor("user", self.ops.id)


async def world(
    session: AsyncSession, *, tier: str = "gold", value: Decimal | None = Decimal(12_000)
) -> World:
    tenant = await make_tenant(session)
    account = await make_account(session, tenant, sla_tier=tier)
    ops = await make_user(session, tenant, roles=(Role.OPERATIONS,))
    admin = await make_user(session, tenant, roles=(Role.ADMIN,))
    scope = TenantScope(tenant.id)
    shipment = await create_shipment(
        session,
        scope,
        ShipmentDraft(
            account_id=account.id,
            mode="ocean",
            origin_locode="CNSHA",
            destination_locode="NLRTM",
            declared_value=value,
            declared_value_currency="USD" if value is not None else None,
            references=[("booking", f"BK{uuid.uuid4().hex[:10]}")],
            milestones=[PlannedMilestone("DEPARTED", T0 + 96 * H, "CNSHA")],
        ),
    )
    return World(tenant, account, ops, admin, shipment)


async def open_exception(
    session: AsyncSession,
    w: World,
    *,
    kind: str = "MILESTONE_LATE",
    category: str = "delay",
    severity: str = "high",
    at: dt.datetime = T0,
) -> ShipmentException:
    """An exception as detection opens one: the row and its 'opened' activity entry."""
    await apply_scope(session, w.scope)
    row = ShipmentException(
        tenant_id=w.tenant.id,
        id=uuid.uuid4(),
        shipment_id=w.shipment.id,
        account_id=w.account.id,
        exception_type=kind,
        category=category,
        milestone_code="DEPARTED",
        status="open",
        severity=severity,
        priority_score=60,
        explanation="DEPARTED is late.",
        evidence={},
        fingerprint="f1",
        occurrences=1,
        first_seen_at=at,
        last_seen_at=at,
    )
    session.add(row)
    await session.flush()
    session.add(
        ExceptionActivity(
            tenant_id=w.tenant.id,
            exception_id=row.id,
            actor_kind="system",
            kind="opened",
            to_status="open",
            data={},
            created_at=at,
        )
    )
    await session.flush()
    return row


async def outbox(session: AsyncSession, scope: TenantScope) -> list[tuple[str, dict[str, Any]]]:
    rows = await session.execute(
        scoped(select(OutboxMessage.topic, OutboxMessage.payload), OutboxMessage, scope).order_by(
            OutboxMessage.id
        )
    )
    return [(topic, payload) for topic, payload in rows]


async def activity(
    session: AsyncSession, scope: TenantScope, row: ShipmentException
) -> list[tuple[str, str | None]]:
    entries = await session.execute(
        scoped(select(ExceptionActivity.kind, ExceptionActivity.to_status), ExceptionActivity, scope)
        .where(ExceptionActivity.exception_id == row.id)
        .order_by(ExceptionActivity.created_at, ExceptionActivity.kind)
    )
    return [(kind, to) for kind, to in entries]


# --- lifecycle -----------------------------------------------------------------------------------------


async def test_a_case_runs_its_lifecycle_with_an_activity_entry_and_an_outbox_row_per_step(
    session: AsyncSession,
) -> None:
    w = await world(session)
    row = await open_exception(session, w)
    await service.acknowledge(session, w.scope, row.id, w.actor, now=T0 + 10 * M, note="looking")
    await service.start_work(session, w.scope, row.id, w.actor, now=T0 + 20 * M)
    resolution = await service.resolve(
        session,
        w.scope,
        row.id,
        w.actor,
        now=T0 + 3 * H,
        draft=ResolutionDraft(
            "delivered_late", "carrier", ("contact_carrier",), Decimal("120.50"), "USD", True
        ),
    )
    await service.close(session, w.scope, row.id, w.actor, now=T0 + 4 * H)

    assert row.status == "closed"
    assert row.acknowledged_at == T0 + 10 * M
    assert await activity(session, w.scope, row) == [
        ("opened", "open"),
        ("acknowledge", "acknowledged"),
        ("start", "in_progress"),
        ("resolve", "resolved"),
        ("close", "closed"),
    ]
    assert [topic for topic, _ in await outbox(session, w.scope)] == [
        "exception.acknowledged",
        "exception.status_changed",
        "exception.resolved",
        "exception.status_changed",
    ]
    assert (resolution.outcome, resolution.root_cause, resolution.action_codes) == (
        "delivered_late",
        "carrier",
        ["contact_carrier"],
    )
    assert (resolution.cost_amount, resolution.cost_currency, resolution.customer_notified) == (
        Decimal("120.50"),
        "USD",
        True,
    )
    assert resolution.resolved_at - resolution.opened_at == 3 * H
    spent = await service.time_in_states(session, w.scope, row.id, now=T0 + 5 * H)
    assert spent == {
        "open": 10 * M,
        "acknowledged": 10 * M,
        "in_progress": 3 * H - 20 * M,
        "resolved": 1 * H,
        "closed": 1 * H,
    }


async def test_an_invalid_transition_is_a_typed_error_and_changes_nothing(session: AsyncSession) -> None:
    w = await world(session)
    row = await open_exception(session, w)
    await service.acknowledge(session, w.scope, row.id, w.actor, now=T0 + M)
    with pytest.raises(
        InvalidTransition, match="a person cannot acknowledge an exception that is acknowledged"
    ):
        await service.acknowledge(session, w.scope, row.id, w.actor, now=T0 + 2 * M)
    with pytest.raises(InvalidTransition, match="cannot close an exception that is acknowledged"):
        await service.close(session, w.scope, row.id, w.actor, now=T0 + 2 * M)
    assert row.status == "acknowledged"
    assert await activity(session, w.scope, row) == [("opened", "open"), ("acknowledge", "acknowledged")]
    assert [topic for topic, _ in await outbox(session, w.scope)] == ["exception.acknowledged"]


async def test_a_resolution_without_an_outcome_is_refused_and_stores_nothing(session: AsyncSession) -> None:
    w = await world(session)
    row = await open_exception(session, w)
    with pytest.raises(WorkflowError) as caught:
        await service.resolve(
            session, w.scope, row.id, w.actor, now=T0 + H, draft=ResolutionDraft(None, "carrier", note="done")
        )
    assert str(caught.value).startswith("outcome: required, one of delivered_late,")
    assert row.status == "open"
    stored = await session.execute(scoped(select(ExceptionResolution.id), ExceptionResolution, w.scope))
    assert stored.all() == []


async def test_recorded_actions_join_the_resolution_and_a_reopen_starts_a_new_opening(
    session: AsyncSession,
) -> None:
    w = await world(session)
    row = await open_exception(session, w)
    await service.record_action(session, w.scope, row.id, w.actor, now=T0 + H, code="contact_carrier")
    with pytest.raises(WorkflowError, match="action: unknown action 'pray'"):
        await service.record_action(session, w.scope, row.id, w.actor, now=T0 + H, code="pray")
    first = await service.resolve(
        session,
        w.scope,
        row.id,
        w.actor,
        now=T0 + 2 * H,
        draft=ResolutionDraft("false_positive", "data", ("rebook",)),
    )
    assert first.action_codes == ["rebook", "contact_carrier"]
    await service.reopen(session, w.scope, row.id, w.actor, now=T0 + 5 * H, note="it is late after all")
    assert (row.status, row.reopen_count, row.resolved_at) == ("reopened", 1, None)
    assert row.triaged_at == T0 + 5 * H  # triaged again: new due times
    assert row.respond_by == T0 + 5 * H + 1 * H  # high severity: respond within an hour
    second = await service.resolve(
        session, w.scope, row.id, w.actor, now=T0 + 6 * H, draft=ResolutionDraft("delivered_late", "carrier")
    )
    assert second.opened_at == T0 + 5 * H
    # the first opening's contact_carrier belongs to the first resolution; the reopening's triage told the
    # customer by itself (the built-in playbook, value under 50,000)
    assert second.action_codes == ["notify_customer"]


# --- assignment ----------------------------------------------------------------------------------------


async def test_assignment_accepts_staff_and_teams_of_the_tenant_only(session: AsyncSession) -> None:
    w = await world(session)
    other = await world(session)
    row = await open_exception(session, w)
    shipper = await make_shipper_user(session, w.tenant, w.account)
    await apply_scope(session, w.scope)
    team = await service.create_team(
        session, w.scope, name="Ocean desk", role="operations", member_ids=[w.ops.id]
    )

    await service.assign(session, w.scope, row.id, w.actor, now=T0, user_id=w.ops.id, team_id=team.id)
    assert (row.assignee_user_id, row.assignee_team_id) == (w.ops.id, team.id)
    topic, payload = (await outbox(session, w.scope))[-1]
    assert topic == "exception.assigned"
    assert (payload["assignee_user_id"], payload["assignee_team_id"]) == (str(w.ops.id), str(team.id))

    with pytest.raises(WorkflowNotFound, match=f"assigneeUserId: no user {other.ops.id} in this tenant"):
        await service.assign(session, w.scope, row.id, w.actor, now=T0, user_id=other.ops.id, team_id=None)
    with pytest.raises(WorkflowNotFound, match="assigneeUserId: no user"):
        await service.assign(session, w.scope, row.id, w.actor, now=T0, user_id=uuid.uuid4(), team_id=None)
    with pytest.raises(WorkflowError, match="is not staff; exceptions go to staff"):
        await service.assign(session, w.scope, row.id, w.actor, now=T0, user_id=shipper.id, team_id=None)
    with pytest.raises(WorkflowNotFound, match="assigneeTeamId: no team"):
        await service.assign(session, w.scope, row.id, w.actor, now=T0, user_id=None, team_id=uuid.uuid4())
    assert (row.assignee_user_id, row.assignee_team_id) == (w.ops.id, team.id)


async def test_another_tenants_exception_is_not_found(session: AsyncSession) -> None:
    w = await world(session)
    other = await world(session)
    theirs = await open_exception(session, other)
    await apply_scope(session, w.scope)
    with pytest.raises(WorkflowNotFound, match=f"id: exception {theirs.id} not found"):
        await service.acknowledge(session, w.scope, theirs.id, w.actor, now=T0)
    with pytest.raises(WorkflowNotFound):
        await service.comment(session, w.scope, theirs.id, w.actor, now=T0, body="hello")
    report = await service.triage(session, w.scope, [theirs.id], now=T0)
    assert report.triaged == 0


async def test_comments_are_internal_unless_marked_and_a_shippers_are_always_visible(
    session: AsyncSession,
) -> None:
    w = await world(session)
    row = await open_exception(session, w)
    shipper = await make_shipper_user(session, w.tenant, w.account)
    await apply_scope(session, w.scope)
    internal = await service.comment(session, w.scope, row.id, w.actor, now=T0, body="carrier is slow again")
    public = await service.comment(
        session, w.scope, row.id, w.actor, now=T0, body="New ETA Friday", customer_visible=True
    )
    theirs = await service.comment(
        session, w.scope, row.id, Actor("user", shipper.id, is_shipper=True), now=T0, body="Please hurry"
    )
    assert (internal.customer_visible, public.customer_visible, theirs.customer_visible) == (
        False,
        True,
        True,
    )
    payloads = [p for t, p in await outbox(session, w.scope) if t == "exception.commented"]
    assert [(p["customer_visible"], p["author_kind"]) for p in payloads] == [
        (False, "staff"),
        (True, "staff"),
        (True, "shipper"),
    ]
    with pytest.raises(WorkflowError, match="body: a comment needs text"):
        await service.comment(session, w.scope, row.id, w.actor, now=T0, body="   ")
    with pytest.raises(WorkflowError, match=r"body: at most 4000 characters \(got 4001\)"):
        await service.comment(session, w.scope, row.id, w.actor, now=T0, body="x" * 4001)


# --- triage --------------------------------------------------------------------------------------------


async def test_triage_assigns_by_rule_sets_due_times_and_runs_allowed_automatic_actions(
    session: AsyncSession,
) -> None:
    w = await world(session, tier="gold", value=Decimal(12_000))
    team = await service.create_team(session, w.scope, name="Asia lanes", lead_user_id=w.admin.id)
    await service.upsert_assignment_rule(
        session,
        w.scope,
        AssignmentRuleDraft(
            "Shanghai exports", 1, {"lanes": ["CNSHA-*"], "categories": ["delay"]}, team_id=team.id
        ),
    )
    await service.set_response_target(
        session,
        w.scope,
        severity="high",
        sla_tier="gold",
        respond_within_minutes=20,
        resolve_within_minutes=600,
    )
    row = await open_exception(session, w)

    report = await service.triage(session, w.scope, [row.id], now=T0 + M)

    assert (report.triaged, report.assigned) == (1, 1)
    assert row.assignee_team_id == team.id
    assert (row.respond_by, row.resolve_by) == (T0 + 20 * M, T0 + 10 * H)
    assert row.next_escalation_at == T0 + 20 * M  # the default policy's first step: the team, at respond-by
    # MILESTONE_LATE's built-in playbook tells the customer by itself below 50,000
    assert report.automatic_actions == [(row.id, "notify_customer")]
    notice = [p for t, p in await outbox(session, w.scope) if t == "exception.customer_notice"]
    assert [p["template"] for p in notice] == ["exception_update"]
    # a repeated triage (the same message twice) changes nothing
    again = await service.triage(session, w.scope, [row.id], now=T0 + 2 * M)
    assert again.triaged == 0
    assert len([t for t, _ in await outbox(session, w.scope) if t == "exception.customer_notice"]) == 1


async def test_an_automatic_action_outside_its_policy_asks_a_person_instead(session: AsyncSession) -> None:
    w = await world(session, value=Decimal(80_000))
    team = await service.create_team(session, w.scope, name="Desk", lead_user_id=w.ops.id)
    row = await open_exception(session, w)
    row.assignee_team_id = team.id
    report = await service.triage(session, w.scope, [row.id], now=T0)
    assert report.automatic_actions == []
    assert report.needs_person == [
        (row.id, "notify_customer", "shipment value 80000.00 USD is above the limit of 50000 USD")
    ]
    escalated = [p for t, p in await outbox(session, w.scope) if t == "exception.escalated"]
    assert [(p["step"], p["target_user_ids"]) for p in escalated] == [(0, [str(w.ops.id)])]
    assert escalated[0]["reason"] == (
        "automatic action notify_customer needs a person: shipment value 80000.00 USD is above the limit of 50000 USD"
    )
    assert not [t for t, _ in await outbox(session, w.scope) if t == "exception.customer_notice"]


async def test_a_tenant_playbook_overrides_the_built_in_one(session: AsyncSession) -> None:
    w = await world(session, tier="gold")
    await service.upsert_playbook(
        session,
        w.scope,
        PlaybookDraft(
            "Gold: ask for documents",
            "MILESTONE_LATE",
            [
                {
                    "code": "request_documents",
                    "title": "Ask for the invoice",
                    "automatic": True,
                    "policy": {"tiers": ["gold"]},
                }
            ],
            sla_tier="gold",
        ),
    )
    row = await open_exception(session, w)
    report = await service.triage(session, w.scope, [row.id], now=T0)
    assert report.automatic_actions == [(row.id, "request_documents")]


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ([], "actions: a playbook lists at least one action"),
        ([{"code": "teleport", "title": "x"}], "actions[0].code: unknown action 'teleport'"),
        ([{"code": "file_claim", "title": ""}], "actions[0].title: required"),
        (
            [{"code": "file_claim", "title": "Claim", "automatic": True}],
            "actions[0].automatic: file_claim cannot run by itself",
        ),
        (
            [{"code": "notify_customer", "title": "Tell", "policy": {"max": 1}}],
            "actions[0].policy.max: unknown",
        ),
        (
            [{"code": "notify_customer", "title": "Tell", "policy": {"tiers": ["diamond"]}}],
            "actions[0].policy.tiers: unknown value 'diamond'",
        ),
    ],
)
async def test_bad_playbooks_are_refused_with_the_field(
    session: AsyncSession, actions: list[dict[str, Any]], message: str
) -> None:
    w = await world(session)
    with pytest.raises(WorkflowError, match=message.replace("[", r"\[").replace("]", r"\]")):
        await service.upsert_playbook(session, w.scope, PlaybookDraft("p", "MILESTONE_LATE", actions))


@pytest.mark.parametrize(
    ("match", "message"),
    [
        ({"colour": ["red"]}, "match.colour: unknown key"),
        ({"categories": []}, "match.categories: list at least one value"),
        ({"categories": ["weather"]}, r"match.categories\[0\]: unknown value 'weather'"),
        ({"lanes": ["Shanghai-Rotterdam"]}, r"match.lanes\[0\]: a lane is ORIGIN-DESTINATION"),
        ({"account_ids": ["nope"]}, r"match.account_ids\[0\]: not an account id"),
    ],
)
async def test_bad_assignment_rules_are_refused_with_the_field(
    session: AsyncSession, match: dict[str, list[str]], message: str
) -> None:
    w = await world(session)
    with pytest.raises(WorkflowError, match=message):
        await service.upsert_assignment_rule(
            session, w.scope, AssignmentRuleDraft("r", 1, match, user_id=w.ops.id)
        )


# --- escalation with an injected clock -----------------------------------------------------------------


async def test_escalation_steps_fire_as_the_clock_passes_the_due_times(session: AsyncSession) -> None:
    w = await world(session, value=None)
    lead = await make_user(session, w.tenant, roles=(Role.OPERATIONS,))
    manager = await make_user(session, w.tenant, roles=(Role.OPERATIONS,))
    await apply_scope(session, w.scope)
    team = await service.create_team(
        session, w.scope, name="Desk", lead_user_id=lead.id, manager_user_id=manager.id, member_ids=[w.ops.id]
    )
    row = await open_exception(session, w, severity="high")
    row.assignee_team_id = team.id
    await service.triage(session, w.scope, [row.id], now=T0)
    assert (row.respond_by, row.resolve_by) == (T0 + H, T0 + 24 * H)  # gold, high: the defaults

    async def sweep(at: dt.datetime) -> list[tuple[int, str]]:
        report = await service.escalate_due(session, w.scope, now=at)
        return [(step, target) for _, step, target in report.fired]

    assert await sweep(T0 + 59 * M) == []
    assert await sweep(T0 + H) == [(1, "team")]
    assert await sweep(T0 + H + 29 * M) == []
    assert await sweep(T0 + H + 30 * M) == [(2, "team_lead")]
    assert row.next_escalation_at == T0 + 24 * H
    await service.acknowledge(session, w.scope, row.id, w.actor, now=T0 + 2 * H)
    assert await sweep(T0 + 23 * H) == []
    assert await sweep(T0 + 24 * H) == [(3, "manager")]
    assert row.next_escalation_at is None
    assert await sweep(T0 + 48 * H) == []

    escalated = [p for t, p in await outbox(session, w.scope) if t == "exception.escalated"]
    assert [(p["step"], p["target_user_ids"], p["target_team_id"]) for p in escalated] == [
        (1, [str(w.ops.id)], str(team.id)),
        (2, [str(lead.id)], str(team.id)),
        (3, [str(manager.id)], str(team.id)),
    ]
    assert escalated[0]["reason"] == "not acknowledged by 2026-11-01 09:00 UTC"


async def test_acknowledging_in_time_skips_the_unacknowledged_steps(session: AsyncSession) -> None:
    w = await world(session)
    row = await open_exception(session, w, severity="critical")
    await service.triage(session, w.scope, [row.id], now=T0)
    await service.acknowledge(session, w.scope, row.id, w.actor, now=T0 + 5 * M)
    assert row.next_escalation_at == T0 + 4 * H  # critical: resolve within 4 h; only the manager step is left
    report = await service.escalate_due(session, w.scope, now=T0 + 3 * H)
    assert report.fired == []


async def test_a_tenant_escalation_policy_with_a_named_user_and_no_team_falls_back_to_admins(
    session: AsyncSession,
) -> None:
    w = await world(session)
    await service.upsert_escalation_policy(
        session,
        w.scope,
        EscalationPolicyDraft(
            "Critical",
            [
                {"trigger": "not_acknowledged", "after_minutes": 0, "target": "team"},
                {
                    "trigger": "not_acknowledged",
                    "after_minutes": 5,
                    "target": "user",
                    "target_id": str(w.ops.id),
                },
            ],
            severities=["high"],
        ),
    )
    row = await open_exception(session, w, severity="high")
    await service.triage(session, w.scope, [row.id], now=T0)
    report = await service.escalate_due(session, w.scope, now=T0 + 2 * H)
    assert [(step, target) for _, step, target in report.fired] == [(1, "team"), (2, "user")]
    escalated = [p for t, p in await outbox(session, w.scope) if t == "exception.escalated"]
    assert [p["target_user_ids"] for p in escalated] == [[str(w.admin.id)], [str(w.ops.id)]]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "steps: a policy has at least one step"),
        ([{"trigger": "late", "after_minutes": 0, "target": "team"}], r"steps\[0\].trigger: one of"),
        ([{"trigger": "not_resolved", "after_minutes": -5, "target": "team"}], r"steps\[0\].afterMinutes"),
        (
            [{"trigger": "not_resolved", "after_minutes": 5, "target": "user"}],
            r"steps\[0\].targetId: required",
        ),
        (
            [
                {
                    "trigger": "not_resolved",
                    "after_minutes": 5,
                    "target": "user",
                    "target_id": str(uuid.UUID(int=9)),
                }
            ],
            r"steps\[0\].targetId: no user",
        ),
    ],
)
async def test_bad_escalation_policies_are_refused_with_the_field(
    session: AsyncSession, steps: list[dict[str, Any]], message: str
) -> None:
    w = await world(session)
    with pytest.raises(WorkflowError, match=message):
        await service.upsert_escalation_policy(session, w.scope, EscalationPolicyDraft("p", steps))


async def test_the_escalation_sweep_reads_only_this_tenants_due_rows(session: AsyncSession) -> None:
    w = await world(session)
    other = await world(session)
    theirs = await open_exception(session, other)
    await service.triage(session, other.scope, [theirs.id], now=T0)
    await apply_scope(session, w.scope)
    report = await service.escalate_due(session, w.scope, now=T0 + 48 * H)
    assert report.examined == 0
    await apply_scope(session, other.scope)
    assert (await service.escalate_due(session, other.scope, now=T0 + 48 * H)).examined == 1


# --- metrics -------------------------------------------------------------------------------------------


async def test_precision_per_rule_version_and_median_time_to_resolve(session: AsyncSession) -> None:
    w = await world(session)
    rule_id = uuid.uuid4()
    from domain.exceptions.models import Rule

    session.add(
        Rule(tenant_id=w.tenant.id, id=rule_id, exception_type="MILESTONE_LATE", name="late", version=3)
    )
    await session.flush()
    outcomes = [("delivered_late", 2), ("false_positive", 4), ("delivered_late", 6), ("false_positive", 8)]
    for outcome, hours in outcomes:
        row = await open_exception(session, w)
        row.rule_id, row.rule_version = rule_id, 3
        await service.resolve(
            session,
            w.scope,
            row.id,
            w.actor,
            now=T0 + hours * H,
            draft=ResolutionDraft(outcome, "carrier", ("contact_carrier",)),
        )
    report = await service.resolution_metrics(session, w.scope, since=T0, until=T0 + 10 * H)
    assert [
        (p.rule_id, p.rule_version, p.resolved, p.false_positives, p.precision) for p in report.precision
    ] == [(rule_id, 3, 4, 2, 0.5)]
    assert [(m.key, m.count, m.median) for m in report.by_type] == [("MILESTONE_LATE", 4, 5 * H)]
    assert [(m.key, m.count, m.median) for m in report.by_action] == [("contact_carrier", 4, 5 * H)]
    other = await world(session)
    await apply_scope(session, other.scope)
    empty = await service.resolution_metrics(session, other.scope, since=T0, until=T0 + 10 * H)
    assert (empty.precision, empty.by_type, empty.by_action) == ([], [], [])
