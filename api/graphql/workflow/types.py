"""The workflow in GraphQL: teams and staff, playbooks, escalation policies, assignment rules, response
targets, resolutions and metrics. ``ShipmentException``'s workflow fields (assignee, due times, resolution,
playbook, time in state) are declared on that type and resolve to the types here.

Everything here is staff-facing, except a resolution's outcome and time, which shippers see too.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Context
from api.graphql.relay import Node, to_global_id
from api.graphql.shipments.types import Money
from domain.tenancy.models import Role as RoleValue
from domain.tenancy.models import Team as TeamRow
from domain.tenancy.models import User as UserRow
from domain.workflow import rules
from domain.workflow.models import AssignmentRule as AssignmentRuleRow
from domain.workflow.models import EscalationPolicy as EscalationPolicyRow
from domain.workflow.models import ExceptionResolution as ResolutionRow
from domain.workflow.models import ResponseTargetRow
from domain.workflow.service import escalation_view

Info = strawberry.Info[Context, None]

StaffRole = strawberry.enum(RoleValue, name="Role", description="What a user does: a staff role or shipper.")
ActionCode = strawberry.enum(rules.ActionCode, name="ActionCode", description="A playbook action.")
Outcome = strawberry.enum(rules.Outcome, name="ResolutionOutcome", description="How an exception ended.")
RootCause = strawberry.enum(rules.RootCause, name="RootCause", description="Why an exception happened.")
ValueBand = strawberry.enum(
    rules.ValueBand, name="ValueBand", description="A shipment's declared value: low, medium or high."
)
EscalationTrigger = strawberry.enum(
    rules.EscalationTrigger,
    name="EscalationTrigger",
    description="Which due time an escalation step watches.",
)
EscalationTarget = strawberry.enum(
    rules.EscalationTarget, name="EscalationTarget", description="Whom an escalation step reaches."
)


@strawberry.type(description="A staff user of this tenant.")
class StaffUser(Node):
    row: strawberry.Private[UserRow]

    @strawberry.field(description="Display name.")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="Login e-mail address.")
    def email(self) -> str:
        return self.row.email

    @strawberry.field(description="Staff roles.")
    def roles(self) -> list[StaffRole]:  # type: ignore[valid-type]
        return [RoleValue(r) for r in self.row.roles]


def user_node(row: UserRow) -> StaffUser:
    return StaffUser(id=to_global_id("User", row.id), row=row)


@strawberry.type(
    description="Staff who own exceptions together; escalation reaches its lead, then its manager."
)
class Team(Node):
    row: strawberry.Private[TeamRow]

    @strawberry.field(description="Unique name within the tenant.")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="The staff role the team works as, if any.")
    def role(self) -> StaffRole | None:  # type: ignore[valid-type]
        return RoleValue(self.row.role) if self.row.role else None

    @strawberry.field(description="The team's lead (the default policy's second escalation step).")
    async def lead(self, info: Info) -> StaffUser | None:
        return await _user(info, self.row.lead_user_id)

    @strawberry.field(description="The team's manager (the default policy's third escalation step).")
    async def manager(self, info: Info) -> StaffUser | None:
        return await _user(info, self.row.manager_user_id)

    @strawberry.field(description="Members, by id.")
    async def members(self, info: Info) -> list[StaffUser]:
        ids = await info.context.loaders.team_members.load(self.row.id)
        users = await info.context.loaders.user.load_many(ids)
        return [user_node(u) for u in users if u is not None]


def team_node(row: TeamRow) -> Team:
    return Team(id=to_global_id("Team", row.id), row=row)


async def _user(info: Info, user_id: Any) -> StaffUser | None:
    if user_id is None:
        return None
    row = await info.context.loaders.user.load(user_id)
    return user_node(row) if row is not None else None


@strawberry.type(description="Time an exception spent in one status.")
class StatusDuration:
    status: str = strawberry.field(description="The status.")
    seconds: float = strawberry.field(description="Total seconds in it (the current status until now).")


@strawberry.type(description="How a person resolved an exception, in codes; shippers see outcome and time.")
class ExceptionResolution:
    row: strawberry.Private[ResolutionRow]
    for_shipper: strawberry.Private[bool]

    @strawberry.field(description="What came of it.")
    def outcome(self) -> Outcome:  # type: ignore[valid-type]
        return rules.Outcome(self.row.outcome)

    @strawberry.field(description="When it was resolved.")
    def resolved_at(self) -> dt.datetime:
        return self.row.resolved_at

    @strawberry.field(description="Why it happened (null for shippers).")
    def root_cause(self) -> RootCause | None:  # type: ignore[valid-type]
        return None if self.for_shipper else rules.RootCause(self.row.root_cause)

    @strawberry.field(description="Actions taken during this opening (empty for shippers).")
    def action_codes(self) -> list[ActionCode]:  # type: ignore[valid-type]
        return [] if self.for_shipper else [rules.ActionCode(c) for c in self.row.action_codes]

    @strawberry.field(description="What the exception cost (null for shippers or when not recorded).")
    def cost(self) -> Money | None:
        if self.for_shipper or self.row.cost_amount is None or self.row.cost_currency is None:
            return None
        return Money(amount=self.row.cost_amount, currency=self.row.cost_currency)

    @strawberry.field(description="Whether the customer was told.")
    def customer_notified(self) -> bool:
        return self.row.customer_notified

    @strawberry.field(description="A note accompanying the codes (null for shippers).")
    def note(self) -> str | None:
        return None if self.for_shipper else self.row.note

    @strawberry.field(description="Seconds from the opening to the resolution.")
    def seconds_to_resolve(self) -> float:
        return (self.row.resolved_at - self.row.opened_at).total_seconds()


@strawberry.type(description="When an automatic action may run without a person.")
class ActionPolicy:
    max_value: Decimal | None = strawberry.field(description="Only up to this shipment value.")
    tiers: list[str] | None = strawberry.field(description="Only for these SLA tiers.")
    severities: list[str] | None = strawberry.field(description="Only for these severities.")


@strawberry.type(description="A recommended action of a playbook.")
class PlaybookAction:
    code: ActionCode = strawberry.field(description="What to do.")  # type: ignore[valid-type]
    title: str = strawberry.field(description="How the playbook words it.")
    automatic: bool = strawberry.field(description="Milepost takes it by itself where the policy allows.")
    policy: ActionPolicy = strawberry.field(description="Where it may run by itself.")


@strawberry.type(description="Recommended actions for an exception type, maybe for one tier and value band.")
class Playbook:
    id: strawberry.ID | None = strawberry.field(description="Global id; null for a built-in playbook.")
    name: str = strawberry.field(description="Name.")
    exception_type: str = strawberry.field(description="The exception type it is for.")
    sla_tier: str | None = strawberry.field(description="Only for this SLA tier (null: any).")
    value_band: ValueBand | None = strawberry.field(description="Only for this value band (null: any).")  # type: ignore[valid-type]
    built_in: bool = strawberry.field(description="Milepost's default, used when the tenant has none.")
    actions: list[PlaybookAction] = strawberry.field(description="The actions, in order.")


def playbook_type(view: rules.PlaybookView) -> Playbook:
    return Playbook(
        id=strawberry.ID(to_global_id("Playbook", view.id)) if view.id else None,
        name=view.name,
        exception_type=view.exception_type,
        sla_tier=view.sla_tier,
        value_band=rules.ValueBand(view.value_band) if view.value_band else None,
        built_in=view.id is None,
        actions=[
            PlaybookAction(
                code=a.code,
                title=a.title,
                automatic=a.automatic,
                policy=ActionPolicy(
                    max_value=a.policy.max_value,
                    tiers=sorted(a.policy.tiers) if a.policy.tiers is not None else None,
                    severities=sorted(a.policy.severities) if a.policy.severities is not None else None,
                ),
            )
            for a in view.actions
        ],
    )


@strawberry.type(description="The playbook for one exception, with what has been done of it.")
class ExceptionPlaybook:
    playbook: Playbook = strawberry.field(description="The playbook that applies.")
    taken: list[ActionCode] = strawberry.field(description="Actions recorded since the exception opened.")  # type: ignore[valid-type]


@strawberry.type(description="One escalation step.")
class EscalationStep:
    trigger: EscalationTrigger = strawberry.field(description="The due time it watches.")  # type: ignore[valid-type]
    after_minutes: int = strawberry.field(description="Minutes after that due time.")
    target: EscalationTarget = strawberry.field(description="Whom it reaches.")  # type: ignore[valid-type]
    target_id: strawberry.ID | None = strawberry.field(description="The user or team for named targets.")


@strawberry.type(description="Escalation steps for exceptions of some severities.")
class EscalationPolicy:
    id: strawberry.ID | None = strawberry.field(description="Global id; null for the built-in default.")
    name: str = strawberry.field(description="Name.")
    severities: list[str] | None = strawberry.field(description="The severities it covers (null: all).")
    enabled: bool = strawberry.field(description="Disabled policies are kept but not used.")
    steps: list[EscalationStep] = strawberry.field(description="The steps, fired in order, each once.")


def escalation_type(view: rules.EscalationPolicyView, *, enabled: bool = True) -> EscalationPolicy:
    return EscalationPolicy(
        id=strawberry.ID(to_global_id("EscalationPolicy", view.id)) if view.id else None,
        name=view.name,
        severities=sorted(view.severities) if view.severities is not None else None,
        enabled=enabled,
        steps=[
            EscalationStep(
                trigger=s.trigger,
                after_minutes=int(s.after.total_seconds() // 60),
                target=s.target,
                target_id=strawberry.ID(
                    to_global_id("User" if s.target == rules.EscalationTarget.USER else "Team", s.target_id)
                )
                if s.target_id
                else None,
            )
            for s in view.steps
        ],
    )


def escalation_row_type(row: EscalationPolicyRow) -> EscalationPolicy:
    return escalation_type(escalation_view(row), enabled=row.enabled)


@strawberry.type(description="Route matching new exceptions to a team and/or user (lowest position first).")
class AssignmentRule:
    row: strawberry.Private[AssignmentRuleRow]

    @strawberry.field(description="Global id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("AssignmentRule", self.row.id))

    @strawberry.field(description="Unique name.")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="Rules are tried in this order.")
    def position(self) -> int:
        return self.row.position

    @strawberry.field(
        description="Allowed values per key: categories, exception_types, account_ids, modes, lanes, "
        "severities."
    )
    def match(self) -> JSON:
        return self.row.match  # type: ignore[return-value]

    @strawberry.field(description="The team it assigns to.")
    async def team(self, info: Info) -> Team | None:
        if self.row.team_id is None:
            return None
        row = await info.context.loaders.team.load(self.row.team_id)
        return team_node(row) if row is not None else None

    @strawberry.field(description="The user it assigns to.")
    async def user(self, info: Info) -> StaffUser | None:
        return await _user(info, self.row.user_id)

    @strawberry.field(description="Disabled rules are kept but not used.")
    def enabled(self) -> bool:
        return self.row.enabled


@strawberry.type(
    description="How soon exceptions of a severity (and tier) must be acknowledged and resolved."
)
class ResponseTarget:
    severity: str = strawberry.field(description="The severity.")
    sla_tier: str | None = strawberry.field(description="Only for this tier (null: every tier).")
    respond_within_minutes: int = strawberry.field(description="Acknowledge within.")
    resolve_within_minutes: int = strawberry.field(description="Resolve within.")
    built_in: bool = strawberry.field(description="Milepost's default (no tenant target for this key).")


def response_target_type(value: rules.ResponseTarget | ResponseTargetRow) -> ResponseTarget:
    if isinstance(value, ResponseTargetRow):
        return ResponseTarget(
            severity=value.severity,
            sla_tier=value.sla_tier,
            respond_within_minutes=value.respond_within_minutes,
            resolve_within_minutes=value.resolve_within_minutes,
            built_in=False,
        )
    return ResponseTarget(
        severity=value.severity,
        sla_tier=value.sla_tier,
        respond_within_minutes=int(value.respond_within.total_seconds() // 60),
        resolve_within_minutes=int(value.resolve_within.total_seconds() // 60),
        built_in=True,
    )


@strawberry.type(description="How often a rule version was right, judged by people's resolutions.")
class RulePrecision:
    rule_id: strawberry.ID = strawberry.field(description="The rule's global id.")
    rule_version: int = strawberry.field(description="The version.")
    resolved: int = strawberry.field(description="Exceptions people resolved.")
    false_positives: int = strawberry.field(description="Of those, resolved as false_positive.")
    precision: float = strawberry.field(description="1 - false positives / resolved.")


@strawberry.type(description="A median time to resolve.")
class MedianTime:
    key: str = strawberry.field(description="The exception type or action code.")
    count: int = strawberry.field(description="Resolutions counted.")
    median_seconds: float = strawberry.field(description="Median seconds from opening to resolution.")


@strawberry.type(description="What people's resolutions say over a window.")
class ResolutionMetrics:
    precision: list[RulePrecision] = strawberry.field(description="Per rule version.")
    by_type: list[MedianTime] = strawberry.field(description="Median time to resolve per exception type.")
    by_action: list[MedianTime] = strawberry.field(description="Median time to resolve per action taken.")


@strawberry.type(description="The lifecycle does not allow this step from the exception's status.")
class InvalidTransitionError:
    message: str = strawberry.field(description="What was refused and what is allowed.")
    status: str = strawberry.field(description="The exception's current status.")
    transition: str = strawberry.field(description="The refused step.")
