"""Workflow use cases: move exceptions through their lifecycle, assign them, take playbook actions, resolve
them in codes, triage new ones, escalate overdue ones. Flush only; the edge commits.

Every change writes an immutable ``exception_activity`` entry and an outbox row (``domain.workflow.topics``)
in the caller's transaction, so notifications and subscriptions see exactly what was committed.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped, tenant_condition
from domain.exceptions.models import (
    CLOSED_STATUSES,
    Category,
    ExceptionActivity,
    ExceptionStatus,
    Severity,
    ShipmentException,
)
from domain.exceptions.repository import activities_by_exception
from domain.exceptions.taxonomy import ExceptionType
from domain.outbox.service import publish_all
from domain.shipments.models import Mode, Shipment
from domain.tenancy.models import STAFF_ROLES, Account, SlaTier, Team, TeamMember, User
from domain.tenancy.repository import active_admins
from domain.workflow import repository, rules, topics
from domain.workflow.models import (
    AssignmentRule,
    EscalationPolicy,
    ExceptionResolution,
    Playbook,
    ResponseTargetRow,
)
from domain.workflow.rules import (
    ActionCode,
    CaseFacts,
    EscalationClock,
    EscalationTarget,
    ResolutionDraft,
    Transition,
)


class WorkflowError(ValueError):
    """A request the workflow refuses: the message names the field and says why."""


class WorkflowNotFound(WorkflowError):
    """The object a request names does not exist in this scope (another tenant's answers the same)."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff or shipper user, a partner client, or the system (triage, escalation)."""

    kind: str  # "user" | "api_client" | "system"
    user_id: uuid.UUID | None = None
    is_shipper: bool = False

    @property
    def by_person(self) -> bool:
        return self.kind != "system"


SYSTEM = Actor("system")
LOCODE = re.compile(r"[A-Z]{2}[A-Z2-9]{3}")
MAX_COMMENT = 4_000


# --- loading -------------------------------------------------------------------------------------------


async def _exception(
    session: AsyncSession, scope: TenantScope, exception_id: uuid.UUID, *, lock: bool = True
) -> ShipmentException:
    statement = scoped(select(ShipmentException), ShipmentException, scope).where(
        ShipmentException.id == exception_id, ShipmentException.shadow.is_(False)
    )
    row = (await session.execute(statement.with_for_update() if lock else statement)).scalar_one_or_none()
    if row is None:
        raise WorkflowNotFound(f"id: exception {exception_id} not found")
    return row


def _activity(
    session: AsyncSession,
    scope: TenantScope,
    row: ShipmentException,
    actor: Actor,
    now: dt.datetime,
    kind: str,
    *,
    before: str | None = None,
    after: str | None = None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    customer_visible: bool = False,
) -> ExceptionActivity:
    entry = ExceptionActivity(
        tenant_id=scope.tenant_id,
        id=uuid.uuid4(),
        exception_id=row.id,
        actor_kind=actor.kind,
        actor_user_id=actor.user_id,
        kind=kind,
        from_status=before,
        to_status=after,
        note=note,
        data=data or {},
        customer_visible=customer_visible,
        created_at=now,
    )
    session.add(entry)
    return entry


async def _publish(
    session: AsyncSession, scope: TenantScope, row: ShipmentException, topic: str, **extra: Any
) -> None:
    await publish_all(session, scope, [(topic, {**topics.base_payload(row), **extra})])


def _check_aware(now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise WorkflowError("now: a time needs a UTC offset")


async def _step(
    session: AsyncSession,
    scope: TenantScope,
    row: ShipmentException,
    step: Transition,
    actor: Actor,
    now: dt.datetime,
    *,
    note: str | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    """Apply one lifecycle transition (the table decides), record it, return the status it left."""
    before = row.status
    after = rules.transition(before, step, by_person=actor.by_person)
    _activity(session, scope, row, actor, now, step.value, before=before, after=after, note=note, data=data)
    row.status = after
    return before


# --- lifecycle use cases -------------------------------------------------------------------------------


async def acknowledge(
    session: AsyncSession,
    scope: TenantScope,
    exception_id: uuid.UUID,
    actor: Actor,
    *,
    now: dt.datetime,
    note: str | None = None,
) -> ShipmentException:
    """Someone has seen it: the respond-by clock stops and unacknowledged escalation steps lapse."""
    _check_aware(now)
    row = await _exception(session, scope, exception_id)
    await _step(session, scope, row, Transition.ACKNOWLEDGE, actor, now, note=note)
    row.acknowledged_at = now
    await _reschedule_escalation(session, scope, [row], now)
    await _publish(session, scope, row, topics.ACKNOWLEDGED)
    await session.flush()
    return row


async def start_work(
    session: AsyncSession,
    scope: TenantScope,
    exception_id: uuid.UUID,
    actor: Actor,
    *,
    now: dt.datetime,
    note: str | None = None,
) -> ShipmentException:
    """Someone works on it (in progress). Starting counts as a response when it was not acknowledged."""
    _check_aware(now)
    row = await _exception(session, scope, exception_id)
    before = await _step(session, scope, row, Transition.START, actor, now, note=note)
    row.acknowledged_at = row.acknowledged_at or now
    await _reschedule_escalation(session, scope, [row], now)
    await _publish(session, scope, row, topics.STATUS_CHANGED, from_status=before)
    await session.flush()
    return row


async def close(
    session: AsyncSession,
    scope: TenantScope,
    exception_id: uuid.UUID,
    actor: Actor,
    *,
    now: dt.datetime,
    note: str | None = None,
) -> ShipmentException:
    """Archive a resolved exception: closed is final for people (detection may still reopen it when its
    condition returns within the reopen window)."""
    _check_aware(now)
    row = await _exception(session, scope, exception_id)
    before = await _step(session, scope, row, Transition.CLOSE, actor, now, note=note)
    await _publish(session, scope, row, topics.STATUS_CHANGED, from_status=before)
    await session.flush()
    return row


async def reopen(
    session: AsyncSession,
    scope: TenantScope,
    exception_id: uuid.UUID,
    actor: Actor,
    *,
    now: dt.datetime,
    note: str | None = None,
) -> ShipmentException:
    """A person reopens a resolved exception: it is triaged again (new due times, escalation from the
    start), keeping its assignee."""
    _check_aware(now)
    row = await _exception(session, scope, exception_id)
    await _step(session, scope, row, Transition.REOPEN, actor, now, note=note)
    row.reopen_count += 1
    row.resolved_at = row.resolution_reason = None
    row.acknowledged_at = None
    row.triaged_at = None
    await _publish(session, scope, row, topics.REOPENED)
    await triage(session, scope, [row.id], now=now)
    return row


async def assign(
    session: AsyncSession,
    scope: TenantScope,
    exception_id: uuid.UUID,
    actor: Actor,
    *,
    now: dt.datetime,
    user_id: uuid.UUID | None,
    team_id: uuid.UUID | None,
    note: str | None = None,
) -> ShipmentException:
    """Give the exception to a staff user and/or a team of this tenant (both None: unassign)."""
    _check_aware(now)
    await _check_assignee(session, scope, user_id, team_id)
    row = await _exception(session, scope, exception_id)
    if row.status in CLOSED_STATUSES:
        raise WorkflowError(f"id: a {row.status} exception cannot be assigned")
    _set_assignee(session, scope, row, actor, now, user_id, team_id, note=note)
    await _reschedule_escalation(session, scope, [row], now)
    await _publish_assigned(session, scope, row)
    await session.flush()
    return row


async def _publish_assigned(session: AsyncSession, scope: TenantScope, row: ShipmentException) -> None:
    await _publish(
        session,
        scope,
        row,
        topics.ASSIGNED,
        assignee_user_id=str(row.assignee_user_id) if row.assignee_user_id else None,
        assignee_team_id=str(row.assignee_team_id) if row.assignee_team_id else None,
    )


def _set_assignee(
    session: AsyncSession,
    scope: TenantScope,
    row: ShipmentException,
    actor: Actor,
    now: dt.datetime,
    user_id: uuid.UUID | None,
    team_id: uuid.UUID | None,
    *,
    note: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    def ids(user: uuid.UUID | None, team: uuid.UUID | None) -> dict[str, str | None]:
        return {"user_id": str(user) if user else None, "team_id": str(team) if team else None}

    _activity(
        session,
        scope,
        row,
        actor,
        now,
        "assigned",
        note=note,
        data={
            "from": ids(row.assignee_user_id, row.assignee_team_id),
            "to": ids(user_id, team_id),
            **(data or {}),
        },
    )
    row.assignee_user_id, row.assignee_team_id = user_id, team_id


async def _check_assignee(
    session: AsyncSession, scope: TenantScope, user_id: uuid.UUID | None, team_id: uuid.UUID | None
) -> None:
    if user_id is not None:
        user = (
            await session.execute(
                scoped(select(User), User, TenantScope(scope.tenant_id)).where(User.id == user_id)
            )
        ).scalar_one_or_none()
        if user is None:
            raise WorkflowNotFound(f"assigneeUserId: no user {user_id} in this tenant")
        if not user.is_active:
            raise WorkflowError(f"assigneeUserId: user {user.email} is deactivated")
        if user.account_id is not None or not set(user.roles) & STAFF_ROLES:
            raise WorkflowError(f"assigneeUserId: {user.email} is not staff; exceptions go to staff")
    if team_id is not None:
        team = (
            await session.execute(scoped(select(Team.id), Team, scope).where(Team.id == team_id))
        ).scalar_one_or_none()
        if team is None:
            raise WorkflowNotFound(f"assigneeTeamId: no team {team_id} in this tenant")


async def comment(
    session: AsyncSession,
    scope: TenantScope,
    exception_id: uuid.UUID,
    actor: Actor,
    *,
    now: dt.datetime,
    body: str,
    customer_visible: bool = False,
) -> ExceptionActivity:
    """Add a comment. A shipper's comment is always visible to the shipper; staff choose (internal by
    default). Comments do not change the status."""
    _check_aware(now)
    text_body = body.strip()
    if not text_body:
        raise WorkflowError("body: a comment needs text")
    if len(text_body) > MAX_COMMENT:
        raise WorkflowError(f"body: at most {MAX_COMMENT} characters (got {len(text_body)})")
    row = await _exception(session, scope, exception_id, lock=False)
    visible = customer_visible or actor.is_shipper
    entry = _activity(session, scope, row, actor, now, "comment", note=text_body, customer_visible=visible)
    await _publish(
        session,
        scope,
        row,
        topics.COMMENTED,
        activity_id=str(entry.id),
        customer_visible=visible,
        author_kind="shipper" if actor.is_shipper else "staff",
    )
    await session.flush()
    return entry


async def record_action(
    session: AsyncSession,
    scope: TenantScope,
    exception_id: uuid.UUID,
    actor: Actor,
    *,
    now: dt.datetime,
    code: str,
    note: str | None = None,
) -> ExceptionActivity:
    """Record a playbook action a person took (contacted the carrier, filed a claim, ...)."""
    _check_aware(now)
    if code not in ActionCode.__members__.values():
        raise WorkflowError(f"action: unknown action {code!r}; one of {', '.join(ActionCode)}")
    row = await _exception(session, scope, exception_id, lock=False)
    if row.status in CLOSED_STATUSES:
        raise WorkflowError(f"id: a {row.status} exception takes no more actions")
    entry = _activity(
        session, scope, row, actor, now, "action", note=note, data={"action": code, "automatic": False}
    )
    await session.flush()
    return entry


async def resolve(
    session: AsyncSession,
    scope: TenantScope,
    exception_id: uuid.UUID,
    actor: Actor,
    *,
    now: dt.datetime,
    draft: ResolutionDraft,
) -> ExceptionResolution:
    """Resolve in codes: outcome, root cause, the actions taken (those recorded since it opened are added),
    the cost and whether the customer was told. A note may accompany the codes, never replace them."""
    _check_aware(now)
    problems = rules.check_resolution(draft)
    if problems:
        raise WorkflowError("; ".join(problems))
    row = await _exception(session, scope, exception_id)
    entries = (await activities_by_exception(session, scope, [row.id])).get(row.id, [])
    opening = rules.current_opening(repository.history(entries))
    playbook_id = await _playbook_of(session, scope, row)
    await _step(
        session, scope, row, Transition.RESOLVE, actor, now, note=draft.note, data={"outcome": draft.outcome}
    )
    row.resolved_at = now
    row.resolution_reason = draft.outcome
    row.snoozed_until = None
    row.next_escalation_at = None
    resolution = ExceptionResolution(
        tenant_id=scope.tenant_id,
        id=uuid.uuid4(),
        exception_id=row.id,
        account_id=row.account_id,
        exception_type=row.exception_type,
        rule_id=row.rule_id,
        rule_version=row.rule_version,
        playbook_id=playbook_id,
        outcome=draft.outcome,
        root_cause=draft.root_cause,
        action_codes=list(dict.fromkeys([*draft.action_codes, *opening.actions])),
        cost_amount=draft.cost_amount,
        cost_currency=draft.cost_currency,
        customer_notified=draft.customer_notified,
        note=draft.note,
        resolved_by_kind="api_client" if actor.kind == "api_client" else "user",
        resolved_by_user_id=actor.user_id,
        opened_at=opening.opened_at or row.first_seen_at,
        resolved_at=now,
    )
    session.add(resolution)
    await _publish(
        session,
        scope,
        row,
        topics.RESOLVED,
        outcome=draft.outcome,
        root_cause=draft.root_cause,
        customer_notified=draft.customer_notified,
    )
    await session.flush()
    return resolution


async def _playbook_of(session: AsyncSession, scope: TenantScope, row: ShipmentException) -> uuid.UUID | None:
    facts = (await _facts(session, scope, [row]))[row.id]
    chosen = rules.choose_playbook(await playbooks_in_force(session, scope), facts)
    return chosen.id if chosen else None


# --- policies ------------------------------------------------------------------------------------------


async def playbooks_in_force(session: AsyncSession, scope: TenantScope) -> list[rules.PlaybookView]:
    """The tenant's enabled playbooks and the built-in ones (a tenant's wins at equal specificity)."""
    stored = (
        await session.execute(scoped(select(Playbook), Playbook, scope).where(Playbook.enabled))
    ).scalars()
    return [*(playbook_view(p) for p in stored), *rules.default_playbooks()]


def playbook_view(row: Playbook) -> rules.PlaybookView:
    return rules.PlaybookView(
        row.id,
        row.name,
        row.exception_type,
        row.sla_tier,
        row.value_band,
        tuple(_action(a) for a in row.actions),
    )


def _action(data: dict[str, Any]) -> rules.PlaybookAction:
    policy = data.get("policy") or {}
    return rules.PlaybookAction(
        ActionCode(data["code"]),
        data["title"],
        bool(data.get("automatic")),
        rules.ActionPolicy(
            max_value=rules.decimal_or_none(policy.get("max_value")),
            tiers=frozenset(policy["tiers"]) if policy.get("tiers") is not None else None,
            severities=frozenset(policy["severities"]) if policy.get("severities") is not None else None,
        ),
    )


async def _response_targets(session: AsyncSession, scope: TenantScope) -> list[rules.ResponseTarget]:
    rows = (await session.execute(scoped(select(ResponseTargetRow), ResponseTargetRow, scope))).scalars()
    return [
        rules.ResponseTarget(
            Severity(r.severity),
            SlaTier(r.sla_tier) if r.sla_tier else None,
            dt.timedelta(minutes=r.respond_within_minutes),
            dt.timedelta(minutes=r.resolve_within_minutes),
        )
        for r in rows
    ]


async def _escalation_policies(session: AsyncSession, scope: TenantScope) -> list[rules.EscalationPolicyView]:
    rows = (
        await session.execute(
            scoped(select(EscalationPolicy), EscalationPolicy, scope)
            .where(EscalationPolicy.enabled)
            .order_by(EscalationPolicy.name)
        )
    ).scalars()
    return [escalation_view(r) for r in rows]


def escalation_view(row: EscalationPolicy) -> rules.EscalationPolicyView:
    return rules.EscalationPolicyView(
        row.id,
        row.name,
        frozenset(row.severities) if row.severities is not None else None,
        tuple(
            rules.EscalationStep(
                rules.EscalationTrigger(s["trigger"]),
                dt.timedelta(minutes=s["after_minutes"]),
                EscalationTarget(s["target"]),
                uuid.UUID(s["target_id"]) if s.get("target_id") else None,
            )
            for s in row.steps
        ),
    )


async def _assignment_rules(session: AsyncSession, scope: TenantScope) -> list[rules.AssignmentRuleView]:
    rows = (
        await session.execute(
            scoped(select(AssignmentRule), AssignmentRule, scope).where(AssignmentRule.enabled)
        )
    ).scalars()
    return [rules.AssignmentRuleView(r.id, r.position, r.match, r.team_id, r.user_id) for r in rows]


async def _facts(
    session: AsyncSession, scope: TenantScope, rows: Sequence[ShipmentException]
) -> dict[uuid.UUID, CaseFacts]:
    """Each exception with its shipment's mode, lane, value and its account's tier (one query)."""
    if not rows:
        return {}
    shipment_ids = list({r.shipment_id for r in rows})
    shipments = await session.execute(
        scoped(
            select(
                Shipment.id,
                Shipment.mode,
                Shipment.origin_locode,
                Shipment.destination_locode,
                Shipment.declared_value,
                Shipment.declared_value_currency,
                Account.sla_tier,
            ),
            Shipment,
            scope,
        )
        .join(Account, (Account.tenant_id == Shipment.tenant_id) & (Account.id == Shipment.account_id))
        .where(Shipment.id.in_(shipment_ids))
    )
    by_id = {s.id: s for s in shipments}
    facts = {}
    for row in rows:
        shipment = by_id[row.shipment_id]
        facts[row.id] = rules.facts_of(row, shipment, shipment.sla_tier)
    return facts


# --- triage: what happens to a new (or reopened) exception --------------------------------------------


@dataclass
class TriageReport:
    triaged: int = 0
    assigned: int = 0
    automatic_actions: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    needs_person: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)  # (exception, action, why)


async def triage(
    session: AsyncSession, scope: TenantScope, exception_ids: Iterable[uuid.UUID], *, now: dt.datetime
) -> TriageReport:
    """Assign (auto-assignment rules), set due times (response targets), run the playbook's automatic
    actions where its policy allows (else a person is asked: an escalation), and schedule escalation.

    Runs once per opening: rows already triaged, closed, snoozed or shadow are left alone, so a repeated
    message changes nothing.
    """
    _check_aware(now)
    report = TriageReport()
    rows = list(
        (
            await session.execute(
                scoped(select(ShipmentException), ShipmentException, scope)
                .where(
                    ShipmentException.id.in_(list(exception_ids)),
                    ShipmentException.triaged_at.is_(None),
                    ShipmentException.shadow.is_(False),
                    ShipmentException.status.in_([ExceptionStatus.OPEN, ExceptionStatus.REOPENED]),
                )
                .order_by(ShipmentException.id)
                .with_for_update()
            )
        ).scalars()
    )
    if not rows:
        return report
    facts = await _facts(session, scope, rows)
    assignment = await _assignment_rules(session, scope)
    targets = await _response_targets(session, scope)
    playbooks = await playbooks_in_force(session, scope)
    policies = await _escalation_policies(session, scope)
    for row in rows:
        case = facts[row.id]
        opened_at = now if row.status == ExceptionStatus.REOPENED else row.first_seen_at
        if row.assignee_user_id is None and row.assignee_team_id is None:
            chosen = rules.choose_assignment(assignment, case)
            if chosen is not None:
                _set_assignee(
                    session,
                    scope,
                    row,
                    SYSTEM,
                    now,
                    chosen.user_id,
                    chosen.team_id,
                    note="auto-assigned",
                    data={"assignment_rule_id": str(chosen.id)},
                )
                await _publish_assigned(session, scope, row)
                report.assigned += 1
        target = rules.response_target(targets, row.severity, case.sla_tier)
        row.respond_by, row.resolve_by = rules.due_times(target, opened_at)
        row.escalation_steps_fired = 0
        playbook = rules.choose_playbook(playbooks, case)
        playbook_id = _str(playbook.id) if playbook else None
        for action in playbook.actions if playbook else ():
            if not action.automatic:
                continue
            verdict = rules.authorise(action, case)
            if verdict.allowed:
                entry = _activity(
                    session,
                    scope,
                    row,
                    SYSTEM,
                    now,
                    "action",
                    note=action.title,
                    data={
                        "action": action.code.value,
                        "automatic": True,
                        "playbook_id": playbook_id,
                        "reason": verdict.reason,
                    },
                )
                await _publish(
                    session,
                    scope,
                    row,
                    topics.CUSTOMER_NOTICE,
                    template=rules.AUTOMATIC_ACTIONS[action.code],
                    action_id=str(entry.id),
                )
                report.automatic_actions.append((row.id, action.code.value))
            else:
                reason = f"automatic action {action.code.value} needs a person: {verdict.reason}"
                _activity(
                    session,
                    scope,
                    row,
                    SYSTEM,
                    now,
                    "action_needs_person",
                    note=reason,
                    data={"action": action.code.value, "playbook_id": playbook_id},
                )
                await _escalate(session, scope, row, now, 0, EscalationTarget.TEAM_LEAD, None, reason)
                report.needs_person.append((row.id, action.code.value, verdict.reason))
        row.triaged_at = now
        report.triaged += 1
    await _reschedule_escalation(session, scope, rows, now, policies=policies)
    await session.flush()
    return report


def _str(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


# --- escalation ----------------------------------------------------------------------------------------

ESCALATION_BATCH = 500


async def _reschedule_escalation(
    session: AsyncSession,
    scope: TenantScope,
    rows: Sequence[ShipmentException],
    now: dt.datetime,
    *,
    policies: list[rules.EscalationPolicyView] | None = None,
) -> None:
    """Set each row's ``next_escalation_at`` from its policy (the sweep reads it through an index)."""
    pool = policies if policies is not None else await _escalation_policies(session, scope)
    for row in rows:
        plan = rules.plan_escalation(rules.choose_escalation_policy(pool, row.severity), _clock(row), now)
        row.next_escalation_at = now if plan.fire else plan.next_at


def _clock(row: ShipmentException) -> EscalationClock:
    return EscalationClock(
        status=row.status,
        respond_by=row.respond_by,
        resolve_by=row.resolve_by,
        acknowledged=row.acknowledged_at is not None,
        steps_fired=row.escalation_steps_fired,
    )


@dataclass
class EscalationReport:
    examined: int = 0
    fired: list[tuple[uuid.UUID, int, str]] = field(default_factory=list)  # (exception, step, target)


async def escalate_due(
    session: AsyncSession, scope: TenantScope, *, now: dt.datetime, limit: int = ESCALATION_BATCH
) -> EscalationReport:
    """Fire the escalation steps that are due (read through ``ix_shipment_exception_escalation_due``; rows
    another sweep holds are skipped) and schedule each exception's next step."""
    _check_aware(now)
    rows = list(
        (
            await session.execute(
                scoped(select(ShipmentException), ShipmentException, scope)
                .where(ShipmentException.next_escalation_at <= now)
                .order_by(ShipmentException.next_escalation_at, ShipmentException.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    report = EscalationReport(examined=len(rows))
    if not rows:
        return report
    policies = await _escalation_policies(session, scope)
    for row in rows:
        policy = rules.choose_escalation_policy(policies, row.severity)
        plan = rules.plan_escalation(policy, _clock(row), now)
        for number, step in plan.fire:
            why = (
                f"not acknowledged by {row.respond_by:%Y-%m-%d %H:%M} UTC"
                if step.trigger == rules.EscalationTrigger.NOT_ACKNOWLEDGED and row.respond_by
                else f"not resolved by {row.resolve_by:%Y-%m-%d %H:%M} UTC"
            )
            await _escalate(session, scope, row, now, number, step.target, step.target_id, why)
            row.escalation_steps_fired = number
            report.fired.append((row.id, number, step.target.value))
        row.next_escalation_at = plan.next_at
    await session.flush()
    return report


async def _escalate(
    session: AsyncSession,
    scope: TenantScope,
    row: ShipmentException,
    now: dt.datetime,
    step: int,
    target: EscalationTarget,
    target_id: uuid.UUID | None,
    reason: str,
) -> None:
    user_ids, team_id = await _escalation_recipients(session, scope, row, target, target_id)
    _activity(
        session,
        scope,
        row,
        SYSTEM,
        now,
        "escalated",
        note=reason,
        data={
            "step": step,
            "target": target.value,
            "user_ids": [str(u) for u in user_ids],
            "team_id": _str(team_id),
        },
    )
    await _publish(
        session,
        scope,
        row,
        topics.ESCALATED,
        step=step,
        reason=reason,
        target_user_ids=[str(u) for u in user_ids],
        target_team_id=_str(team_id),
    )


async def _escalation_recipients(
    session: AsyncSession,
    scope: TenantScope,
    row: ShipmentException,
    target: EscalationTarget,
    target_id: uuid.UUID | None,
) -> tuple[list[uuid.UUID], uuid.UUID | None]:
    """The users a step reaches. A team target without an assigned team, or a team without a lead or
    manager, falls back to the tenant's admins, so an escalation always reaches someone."""
    team_id = target_id if target == EscalationTarget.NAMED_TEAM else row.assignee_team_id
    users: list[uuid.UUID] = []
    if target == EscalationTarget.USER and target_id is not None:
        users = [target_id]
    elif team_id is not None:
        team = (
            await session.execute(scoped(select(Team), Team, scope).where(Team.id == team_id))
        ).scalar_one_or_none()
        if team is not None:
            if target in (EscalationTarget.TEAM, EscalationTarget.NAMED_TEAM):
                members = await session.execute(
                    scoped(select(TeamMember.user_id), TeamMember, scope)
                    .where(TeamMember.team_id == team.id)
                    .order_by(TeamMember.user_id)
                )
                users = [u for (u,) in members]
            elif target == EscalationTarget.TEAM_LEAD and team.lead_user_id:
                users = [team.lead_user_id]
            elif target == EscalationTarget.MANAGER and (team.manager_user_id or team.lead_user_id):
                users = [team.manager_user_id or team.lead_user_id]  # type: ignore[list-item]
    if not users:
        users = [admin.id for admin in await active_admins(session, scope)]
    return users, team_id


# --- writing policies ----------------------------------------------------------------------------------


async def create_team(
    session: AsyncSession,
    scope: TenantScope,
    *,
    name: str,
    role: str | None = None,
    lead_user_id: uuid.UUID | None = None,
    manager_user_id: uuid.UUID | None = None,
    member_ids: Sequence[uuid.UUID] = (),
) -> Team:
    """A team of staff; its lead and manager are the escalation's second and third steps by default."""
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise WorkflowError("name: a team needs a name of 1 to 200 characters")
    if role is not None and role not in STAFF_ROLES:
        raise WorkflowError(f"role: {role!r} is not a staff role ({', '.join(sorted(STAFF_ROLES))})")
    existing = await session.execute(scoped(select(Team.id), Team, scope).where(Team.name == clean))
    if existing.first() is not None:
        raise WorkflowError(f"name: a team named {clean!r} exists")
    for label, user_id in (("leadUserId", lead_user_id), ("managerUserId", manager_user_id)):
        if user_id is not None:
            await _check_staff(session, scope, user_id, label)
    for index, user_id in enumerate(member_ids):
        await _check_staff(session, scope, user_id, f"memberIds[{index}]")
    team = Team(
        tenant_id=scope.tenant_id,
        id=uuid.uuid4(),
        name=clean,
        role=role,
        lead_user_id=lead_user_id,
        manager_user_id=manager_user_id,
    )
    session.add(team)
    await session.flush()
    session.add_all(
        TeamMember(tenant_id=scope.tenant_id, team_id=team.id, user_id=u) for u in dict.fromkeys(member_ids)
    )
    await session.flush()
    return team


async def _check_staff(session: AsyncSession, scope: TenantScope, user_id: uuid.UUID, label: str) -> None:
    try:
        await _check_assignee(session, scope, user_id, None)
    except WorkflowNotFound as error:
        raise WorkflowNotFound(str(error).replace("assigneeUserId", label)) from None
    except WorkflowError as error:
        raise WorkflowError(str(error).replace("assigneeUserId", label)) from None


async def set_team_members(
    session: AsyncSession, scope: TenantScope, team_id: uuid.UUID, member_ids: Sequence[uuid.UUID]
) -> Team:
    team = (
        await session.execute(scoped(select(Team), Team, scope).where(Team.id == team_id))
    ).scalar_one_or_none()
    if team is None:
        raise WorkflowNotFound(f"teamId: no team {team_id} in this tenant")
    for index, user_id in enumerate(member_ids):
        await _check_staff(session, scope, user_id, f"memberIds[{index}]")
    await session.execute(
        delete(TeamMember).where(tenant_condition(TeamMember, scope), TeamMember.team_id == team_id)
    )
    session.add_all(
        TeamMember(tenant_id=scope.tenant_id, team_id=team_id, user_id=u) for u in dict.fromkeys(member_ids)
    )
    await session.flush()
    return team


@dataclass(frozen=True)
class AssignmentRuleDraft:
    name: str
    position: int
    match: dict[str, list[str]]
    team_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    enabled: bool = True


async def upsert_assignment_rule(
    session: AsyncSession, scope: TenantScope, draft: AssignmentRuleDraft
) -> AssignmentRule:
    """Create or replace (by name) an auto-assignment rule."""
    if not draft.name.strip():
        raise WorkflowError("name: required")
    if draft.team_id is None and draft.user_id is None:
        raise WorkflowError("teamId: a rule assigns to a team, a user or both")
    for key, values in draft.match.items():
        if key not in rules.ASSIGNMENT_MATCH_KEYS:
            raise WorkflowError(f"match.{key}: unknown key; one of {', '.join(rules.ASSIGNMENT_MATCH_KEYS)}")
        if not values:
            raise WorkflowError(f"match.{key}: list at least one value (leave the key out to match any)")
        for index, value in enumerate(values):
            _check_match_value(key, index, value)
    await _check_assignee(session, scope, draft.user_id, draft.team_id)
    row = (
        await session.execute(
            scoped(select(AssignmentRule), AssignmentRule, scope).where(
                AssignmentRule.name == draft.name.strip()
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = AssignmentRule(tenant_id=scope.tenant_id, id=uuid.uuid4(), name=draft.name.strip())
        session.add(row)
    row.position, row.match, row.team_id, row.user_id, row.enabled = (
        draft.position,
        {k: list(v) for k, v in draft.match.items()},
        draft.team_id,
        draft.user_id,
        draft.enabled,
    )
    await session.flush()
    return row


def _check_match_value(key: str, index: int, value: str) -> None:
    field_name = f"match.{key}[{index}]"
    vocab: dict[str, Iterable[str]] = {
        "categories": Category,
        "exception_types": ExceptionType,
        "severities": Severity,
        "modes": Mode,
    }
    if key in vocab and value not in {str(v) for v in vocab[key]}:
        raise WorkflowError(f"{field_name}: unknown value {value!r}")
    if key == "account_ids":
        try:
            uuid.UUID(value)
        except ValueError:
            raise WorkflowError(f"{field_name}: not an account id") from None
    if key == "lanes":
        origin, dash, destination = value.partition("-")
        if not dash or not all(side == "*" or LOCODE.fullmatch(side) for side in (origin, destination)):
            raise WorkflowError(
                f"{field_name}: a lane is ORIGIN-DESTINATION UN/LOCODEs, '*' for any: {value!r}"
            )


@dataclass(frozen=True)
class PlaybookDraft:
    name: str
    exception_type: str
    actions: list[dict[str, Any]]
    sla_tier: str | None = None
    value_band: str | None = None
    enabled: bool = True


def check_playbook_actions(actions: Sequence[dict[str, Any]]) -> list[rules.PlaybookAction]:
    """Parse a playbook's actions, naming the first bad field. Only actions Milepost can carry out by itself
    (telling the customer, asking for documents) may be automatic."""
    if not actions:
        raise WorkflowError("actions: a playbook lists at least one action")
    parsed = []
    for index, data in enumerate(actions):
        where = f"actions[{index}]"
        code = data.get("code")
        if not isinstance(code, str) or code not in ActionCode.__members__.values():
            raise WorkflowError(f"{where}.code: unknown action {code!r}; one of {', '.join(ActionCode)}")
        if not str(data.get("title") or "").strip():
            raise WorkflowError(f"{where}.title: required")
        if data.get("automatic") and ActionCode(code) not in rules.AUTOMATIC_ACTIONS:
            raise WorkflowError(
                f"{where}.automatic: {code} cannot run by itself; automatic actions: "
                + ", ".join(rules.AUTOMATIC_ACTIONS)
            )
        policy = data.get("policy") or {}
        for key in policy:
            if key not in ("max_value", "tiers", "severities"):
                raise WorkflowError(f"{where}.policy.{key}: unknown; use max_value, tiers or severities")
        if policy.get("max_value") is not None:
            try:
                if Decimal(str(policy["max_value"])) < 0:
                    raise WorkflowError(f"{where}.policy.max_value: must not be negative")
            except ArithmeticError:
                raise WorkflowError(f"{where}.policy.max_value: not a number") from None
        for key, vocab in (("tiers", SlaTier), ("severities", Severity)):
            for value in policy.get(key) or ():
                if value not in vocab.__members__.values():
                    raise WorkflowError(f"{where}.policy.{key}: unknown value {value!r}")
        parsed.append(_action({**data, "policy": policy}))
    return parsed


async def upsert_playbook(session: AsyncSession, scope: TenantScope, draft: PlaybookDraft) -> Playbook:
    """Create or replace the tenant's playbook for (type, tier, value band)."""
    if draft.exception_type not in ExceptionType.__members__.values():
        raise WorkflowError(f"exceptionType: unknown type {draft.exception_type!r}")
    if draft.sla_tier is not None and draft.sla_tier not in SlaTier.__members__.values():
        raise WorkflowError(f"slaTier: unknown tier {draft.sla_tier!r}")
    if draft.value_band is not None and draft.value_band not in rules.ValueBand.__members__.values():
        raise WorkflowError(f"valueBand: unknown band {draft.value_band!r}; low, medium or high")
    if not draft.name.strip():
        raise WorkflowError("name: required")
    check_playbook_actions(draft.actions)
    row = (
        await session.execute(
            scoped(select(Playbook), Playbook, scope).where(
                Playbook.exception_type == draft.exception_type,
                Playbook.sla_tier.is_(None)
                if draft.sla_tier is None
                else Playbook.sla_tier == draft.sla_tier,
                Playbook.value_band.is_(None)
                if draft.value_band is None
                else Playbook.value_band == draft.value_band,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = Playbook(
            tenant_id=scope.tenant_id,
            id=uuid.uuid4(),
            exception_type=draft.exception_type,
            sla_tier=draft.sla_tier,
            value_band=draft.value_band,
        )
        session.add(row)
    row.name, row.actions, row.enabled = draft.name.strip(), [dict(a) for a in draft.actions], draft.enabled
    await session.flush()
    return row


@dataclass(frozen=True)
class EscalationPolicyDraft:
    name: str
    steps: list[dict[str, Any]]
    severities: list[str] | None = None
    enabled: bool = True


async def upsert_escalation_policy(
    session: AsyncSession, scope: TenantScope, draft: EscalationPolicyDraft
) -> EscalationPolicy:
    if not draft.name.strip():
        raise WorkflowError("name: required")
    if not draft.steps:
        raise WorkflowError("steps: a policy has at least one step")
    for value in draft.severities or ():
        if value not in Severity.__members__.values():
            raise WorkflowError(f"severities: unknown severity {value!r}")
    for index, step in enumerate(draft.steps):
        where = f"steps[{index}]"
        if step.get("trigger") not in rules.EscalationTrigger.__members__.values():
            raise WorkflowError(f"{where}.trigger: one of {', '.join(rules.EscalationTrigger)}")
        after = step.get("after_minutes")
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= 60 * 24 * 30:
            raise WorkflowError(f"{where}.afterMinutes: whole minutes from 0 to 43200")
        if step.get("target") not in EscalationTarget.__members__.values():
            raise WorkflowError(f"{where}.target: one of {', '.join(EscalationTarget)}")
        target = EscalationTarget(step["target"])
        target_id = step.get("target_id")
        if target in (EscalationTarget.USER, EscalationTarget.NAMED_TEAM):
            if not target_id:
                raise WorkflowError(f"{where}.targetId: required for target {target.value}")
            try:
                ident = uuid.UUID(str(target_id))
            except ValueError:
                raise WorkflowError(f"{where}.targetId: not an id") from None
            if target == EscalationTarget.USER:
                await _check_staff(session, scope, ident, f"{where}.targetId")
            else:
                await _check_assignee(session, scope, None, ident)
        elif target_id:
            raise WorkflowError(f"{where}.targetId: only for targets user and named_team")
    row = (
        await session.execute(
            scoped(select(EscalationPolicy), EscalationPolicy, scope).where(
                EscalationPolicy.name == draft.name.strip()
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = EscalationPolicy(tenant_id=scope.tenant_id, id=uuid.uuid4(), name=draft.name.strip())
        session.add(row)
    row.steps = [dict(s) for s in draft.steps]
    row.severities = list(draft.severities) if draft.severities is not None else None
    row.enabled = draft.enabled
    await session.flush()
    return row


async def set_response_target(
    session: AsyncSession,
    scope: TenantScope,
    *,
    severity: str,
    sla_tier: str | None,
    respond_within_minutes: int,
    resolve_within_minutes: int,
) -> ResponseTargetRow:
    if severity not in Severity.__members__.values():
        raise WorkflowError(f"severity: unknown severity {severity!r}")
    if sla_tier is not None and sla_tier not in SlaTier.__members__.values():
        raise WorkflowError(f"slaTier: unknown tier {sla_tier!r}")
    if respond_within_minutes <= 0:
        raise WorkflowError("respondWithinMinutes: must be positive")
    if resolve_within_minutes < respond_within_minutes:
        raise WorkflowError("resolveWithinMinutes: must not be shorter than respondWithinMinutes")
    row = (
        await session.execute(
            scoped(select(ResponseTargetRow), ResponseTargetRow, scope).where(
                ResponseTargetRow.severity == severity,
                ResponseTargetRow.sla_tier.is_(None)
                if sla_tier is None
                else ResponseTargetRow.sla_tier == sla_tier,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = ResponseTargetRow(
            tenant_id=scope.tenant_id, id=uuid.uuid4(), severity=severity, sla_tier=sla_tier
        )
        session.add(row)
    row.respond_within_minutes, row.resolve_within_minutes = respond_within_minutes, resolve_within_minutes
    await session.flush()
    return row


# --- what the records say ------------------------------------------------------------------------------


async def time_in_states(
    session: AsyncSession, scope: TenantScope, exception_id: uuid.UUID, *, now: dt.datetime
) -> dict[str, dt.timedelta]:
    """How long the exception spent in each status, from its activity log."""
    row = await _exception(session, scope, exception_id, lock=False)
    entries = (await activities_by_exception(session, scope, [row.id])).get(row.id, [])
    return rules.time_in_states(repository.status_changes(entries), now)


@dataclass(frozen=True)
class ResolutionMetrics:
    precision: list[rules.Precision]
    by_type: list[rules.Median]
    by_action: list[rules.Median]


MAX_METRICS_WINDOW = dt.timedelta(days=366)


async def resolution_metrics(
    session: AsyncSession, scope: TenantScope, *, since: dt.datetime, until: dt.datetime
) -> ResolutionMetrics:
    """Precision per rule version (the share of person-resolved exceptions that were not false positives)
    and the median time to resolve per type and per action taken, over resolutions in ``[since, until)``."""
    if since.tzinfo is None or until.tzinfo is None:
        raise WorkflowError("since: times need a UTC offset")
    if until <= since:
        raise WorkflowError("until: must be after since")
    if until - since > MAX_METRICS_WINDOW:
        raise WorkflowError("until: the window is at most 366 days")
    cases = await repository.resolved_cases(session, scope, since=since, until=until)
    return ResolutionMetrics(
        rules.precision_by_rule(cases),
        rules.median_time_to_resolve(cases, by="type"),
        rules.median_time_to_resolve(cases, by="action"),
    )
