"""The workflow's queries and mutations; ``api/graphql/schema.py`` mounts them as fields.

Who may call each is the access map's (``api/graphql/access.py``). Each mutation runs one service call
in one transaction and answers with a typed payload: the success type, ``NotFoundError`` (an id that does
not exist *for the caller*: another tenant's or another account's answers the same),
``InvalidTransitionError`` (the lifecycle table said no) or ``InvalidInputError`` naming the field.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, TypeVar

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from api.graphql.context import Context
from api.graphql.exceptions.types import ExceptionActivity, ShipmentException, exception_node
from api.graphql.relay import UserInputError, expect_global_id, to_global_id
from api.graphql.tracking.types import InvalidInputError, NotFoundError
from api.graphql.workflow.types import (
    AssignmentRule,
    EscalationPolicy,
    ExceptionResolution,
    InvalidTransitionError,
    MedianTime,
    Playbook,
    ResolutionMetrics,
    ResponseTarget,
    RulePrecision,
    StaffUser,
    Team,
    escalation_row_type,
    escalation_type,
    playbook_type,
    response_target_type,
    team_node,
    user_node,
)
from domain.db import scoped
from domain.exceptions.models import ShipmentException as ShipmentExceptionRow
from domain.tenancy.models import Role
from domain.tenancy.principal import Principal
from domain.tenancy.repository import list_teams
from domain.workflow import rules, service
from domain.workflow.models import AssignmentRule as AssignmentRuleRow
from domain.workflow.models import EscalationPolicy as EscalationPolicyRow
from domain.workflow.models import ResponseTargetRow
from domain.workflow.rules import InvalidTransition
from domain.workflow.service import Actor, WorkflowError, WorkflowNotFound

Info = strawberry.Info[Context, None]
T = TypeVar("T")


def actor_of(principal: Principal) -> Actor:
    if principal.subject_kind == "api_client":
        return Actor("api_client")
    return Actor("user", principal.subject_id, is_shipper=principal.is_shipper)


async def _attempt(
    info: Info, work: Callable[[AsyncSession], Awaitable[T]], missing: str = "not found"
) -> T | NotFoundError | InvalidInputError | InvalidTransitionError:
    """Run ``work`` in one transaction; a refusal rolls it back and becomes its typed error."""
    try:
        return await info.context.loaders.run(work)
    except InvalidTransition as error:
        return InvalidTransitionError(
            message=str(error), status=str(error.status), transition=error.transition.value
        )
    except WorkflowNotFound as error:
        field, _, _ = str(error).partition(":")
        return NotFoundError(message=missing if field == "id" else str(error))
    except WorkflowError as error:
        return InvalidInputError(field=str(error).partition(":")[0], message=str(error))


def _id(global_id: strawberry.ID, type_name: str) -> uuid.UUID | None:
    return expect_global_id(global_id, type_name)


def _optional_id(
    global_id: strawberry.ID | None, type_name: str, field: str
) -> uuid.UUID | InvalidInputError | None:
    if global_id is None:
        return None
    value = expect_global_id(global_id, type_name, argument=field)
    if value is None:
        return InvalidInputError(field=field, message=f"{field}: {global_id!r} is not a {type_name} id")
    return value


# --- payloads ------------------------------------------------------------------------------------------


@strawberry.type(description="The exception after the change.")
class ExceptionChangeSuccess:
    exception: ShipmentException = strawberry.field(description="The exception as it is now.")


ExceptionChangePayload = Annotated[
    ExceptionChangeSuccess | NotFoundError | InvalidTransitionError | InvalidInputError,
    strawberry.union("ExceptionChangePayload", description="The changed exception, or why not."),
]


@strawberry.type(description="The entry was added to the exception's history.")
class ExceptionActivitySuccess:
    activity: ExceptionActivity = strawberry.field(description="The new history entry.")


ExceptionActivityPayload = Annotated[
    ExceptionActivitySuccess | NotFoundError | InvalidInputError,
    strawberry.union(
        "ExceptionActivityPayload", description="The new entry (a comment, an action), or why not."
    ),
]


@strawberry.type(description="The exception is resolved.")
class ResolveExceptionSuccess:
    exception: ShipmentException = strawberry.field(description="The exception as it is now.")
    resolution: ExceptionResolution = strawberry.field(description="The stored resolution.")


ResolveExceptionPayload = Annotated[
    ResolveExceptionSuccess | NotFoundError | InvalidTransitionError | InvalidInputError,
    strawberry.union("ResolveExceptionPayload", description="The resolution, or why not."),
]


@strawberry.type(description="The team was saved.")
class TeamSuccess:
    team: Team = strawberry.field(description="The team.")


TeamPayload = Annotated[
    TeamSuccess | NotFoundError | InvalidInputError,
    strawberry.union("TeamPayload", description="The team, or why not."),
]


@strawberry.type(description="The assignment rule was saved.")
class UpsertAssignmentRuleSuccess:
    rule: AssignmentRule = strawberry.field(description="The rule.")


UpsertAssignmentRulePayload = Annotated[
    UpsertAssignmentRuleSuccess | NotFoundError | InvalidInputError,
    strawberry.union("UpsertAssignmentRulePayload", description="The rule, or why not."),
]


@strawberry.type(description="The playbook was saved.")
class UpsertPlaybookSuccess:
    playbook: Playbook = strawberry.field(description="The playbook.")


UpsertPlaybookPayload = Annotated[
    UpsertPlaybookSuccess | InvalidInputError,
    strawberry.union("UpsertPlaybookPayload", description="The playbook, or why not."),
]


@strawberry.type(description="The escalation policy was saved.")
class UpsertEscalationPolicySuccess:
    policy: EscalationPolicy = strawberry.field(description="The policy.")


UpsertEscalationPolicyPayload = Annotated[
    UpsertEscalationPolicySuccess | NotFoundError | InvalidInputError,
    strawberry.union("UpsertEscalationPolicyPayload", description="The policy, or why not."),
]


@strawberry.type(description="The response target was saved.")
class SetResponseTargetSuccess:
    target: ResponseTarget = strawberry.field(description="The target.")


SetResponseTargetPayload = Annotated[
    SetResponseTargetSuccess | InvalidInputError,
    strawberry.union("SetResponseTargetPayload", description="The target, or why not."),
]


# --- inputs --------------------------------------------------------------------------------------------


@strawberry.input(description="An amount of money.")
class MoneyInput:
    amount: Decimal = strawberry.field(description="The amount.")
    currency: str = strawberry.field(description="ISO 4217 currency code, e.g. USD.")


@strawberry.input(description="A structured resolution: codes first; a note may accompany them.")
class ResolutionInput:
    outcome: rules.Outcome | None = strawberry.field(description="What came of it (required).")
    root_cause: rules.RootCause | None = strawberry.field(description="Why it happened (required).")
    action_codes: list[rules.ActionCode] = strawberry.field(
        default_factory=list, description="Actions taken (those recorded are added)."
    )
    cost: MoneyInput | None = strawberry.field(default=None, description="What the exception cost.")
    customer_notified: bool = strawberry.field(default=False, description="Whether the customer was told.")
    note: str | None = strawberry.field(default=None, description="Free text accompanying the codes.")


@strawberry.input(description="When an automatic action may run without a person.")
class ActionPolicyInput:
    max_value: Decimal | None = strawberry.field(default=None, description="Only up to this shipment value.")
    tiers: list[str] | None = strawberry.field(default=None, description="Only for these SLA tiers.")
    severities: list[str] | None = strawberry.field(default=None, description="Only for these severities.")


@strawberry.input(description="A playbook action.")
class PlaybookActionInput:
    code: rules.ActionCode = strawberry.field(description="What to do.")
    title: str = strawberry.field(description="How the playbook words it.")
    automatic: bool = strawberry.field(default=False, description="Run by itself where the policy allows.")
    policy: ActionPolicyInput | None = strawberry.field(
        default=None, description="Where it may run by itself."
    )


@strawberry.input(description="A playbook for an exception type, maybe for one tier and value band.")
class PlaybookInput:
    name: str = strawberry.field(description="Name.")
    exception_type: str = strawberry.field(description="The exception type.")
    sla_tier: str | None = strawberry.field(default=None, description="Only for this SLA tier.")
    value_band: rules.ValueBand | None = strawberry.field(
        default=None, description="Only for this value band."
    )
    actions: list[PlaybookActionInput] = strawberry.field(description="The actions, in order.")
    enabled: bool = strawberry.field(default=True, description="Disabled playbooks are kept, not used.")


@strawberry.input(description="An escalation step.")
class EscalationStepInput:
    trigger: rules.EscalationTrigger = strawberry.field(description="The due time it watches.")
    after_minutes: int = strawberry.field(description="Minutes after that due time.")
    target: rules.EscalationTarget = strawberry.field(description="Whom it reaches.")
    target_id: strawberry.ID | None = strawberry.field(
        default=None, description="A User id (target user) or Team id (target named_team)."
    )


@strawberry.input(description="An escalation policy.")
class EscalationPolicyInput:
    name: str = strawberry.field(description="Unique name; saving an existing name replaces it.")
    severities: list[str] | None = strawberry.field(
        default=None, description="Severities covered (null: all)."
    )
    steps: list[EscalationStepInput] = strawberry.field(description="Steps in order.")
    enabled: bool = strawberry.field(default=True, description="Disabled policies are kept, not used.")


@strawberry.input(description="An auto-assignment rule.")
class AssignmentRuleInput:
    name: str = strawberry.field(description="Unique name; saving an existing name replaces it.")
    position: int = strawberry.field(description="Rules are tried in ascending position.")
    match: JSON = strawberry.field(
        description="Allowed values per key: categories, exception_types, account_ids, modes, lanes "
        "(ORIGIN-DESTINATION UN/LOCODEs, * for any), severities. An absent key matches anything."
    )
    team_id: strawberry.ID | None = strawberry.field(default=None, description="Assign to this team.")
    user_id: strawberry.ID | None = strawberry.field(default=None, description="Assign to this staff user.")
    enabled: bool = strawberry.field(default=True, description="Disabled rules are kept, not used.")


@strawberry.input(description="A team of staff.")
class TeamInput:
    name: str = strawberry.field(description="Unique name.")
    role: Role | None = strawberry.field(default=None, description="The staff role it works as.")
    lead_user_id: strawberry.ID | None = strawberry.field(default=None, description="The lead's User id.")
    manager_user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The manager's User id."
    )
    member_ids: list[strawberry.ID] = strawberry.field(default_factory=list, description="Members' User ids.")


# --- queries -------------------------------------------------------------------------------------------


async def teams(info: Info) -> list[Team]:
    scope = info.context.principal.scope
    rows = await info.context.loaders.run(lambda session: list_teams(session, scope))
    return [team_node(row) for row in rows]


async def playbooks(info: Info) -> list[Playbook]:
    """The tenant's playbooks, then the built-in ones."""
    return [playbook_type(p) for p in await info.context.loaders.playbooks.load(None)]


async def escalation_policies(info: Info) -> list[EscalationPolicy]:
    scope = info.context.principal.scope

    async def work(session: AsyncSession) -> list[EscalationPolicyRow]:
        statement = scoped(select(EscalationPolicyRow), EscalationPolicyRow, scope).order_by(
            EscalationPolicyRow.name
        )
        return list((await session.execute(statement)).scalars())

    rows = await info.context.loaders.run(work)
    return [*(escalation_row_type(r) for r in rows), escalation_type(rules.DEFAULT_ESCALATION)]


async def assignment_rules(info: Info) -> list[AssignmentRule]:
    scope = info.context.principal.scope

    async def work(session: AsyncSession) -> list[AssignmentRuleRow]:
        statement = scoped(select(AssignmentRuleRow), AssignmentRuleRow, scope).order_by(
            AssignmentRuleRow.position, AssignmentRuleRow.name
        )
        return list((await session.execute(statement)).scalars())

    return [AssignmentRule(row=r) for r in await info.context.loaders.run(work)]


async def response_targets(info: Info) -> list[ResponseTarget]:
    """The tenant's targets, then the built-in defaults for keys it has not set."""
    scope = info.context.principal.scope

    async def work(session: AsyncSession) -> list[ResponseTargetRow]:
        statement = scoped(select(ResponseTargetRow), ResponseTargetRow, scope)
        return list((await session.execute(statement)).scalars())

    rows = await info.context.loaders.run(work)
    own = {(r.severity, r.sla_tier) for r in rows}
    defaults = [t for t in rules.DEFAULT_TARGETS if (t.severity, t.sla_tier) not in own]
    return [*(response_target_type(r) for r in rows), *(response_target_type(t) for t in defaults)]


async def resolution_metrics(info: Info, since: dt.datetime, until: dt.datetime) -> ResolutionMetrics:
    principal = info.context.principal
    try:
        report = await info.context.loaders.run(
            lambda session: service.resolution_metrics(session, principal.scope, since=since, until=until)
        )
    except WorkflowError as error:
        raise UserInputError(str(error), argument=str(error).partition(":")[0]) from None
    return ResolutionMetrics(
        precision=[
            RulePrecision(
                rule_id=strawberry.ID(to_global_id("Rule", p.rule_id)),
                rule_version=p.rule_version,
                resolved=p.resolved,
                false_positives=p.false_positives,
                precision=p.precision,
            )
            for p in report.precision
        ],
        by_type=[
            MedianTime(key=m.key, count=m.count, median_seconds=m.median.total_seconds())
            for m in report.by_type
        ],
        by_action=[
            MedianTime(key=m.key, count=m.count, median_seconds=m.median.total_seconds())
            for m in report.by_action
        ],
    )


NODE_TYPES = frozenset({"Team", "User"})


async def node(info: Info, type_name: str, value: uuid.UUID) -> Team | StaffUser | None:
    """``node(id)`` for teams and staff users (``Query.node`` has checked the caller against
    :data:`api.graphql.access.NODE_ACCESS`)."""
    if type_name == "Team":
        team = await info.context.loaders.team.load(value)
        return team_node(team) if team is not None else None
    user = await info.context.loaders.user.load(value)
    if user is None or user.account_id is not None:
        return None  # shipper users are not staff; their ids reach nothing here
    return user_node(user)


# --- lifecycle mutations -------------------------------------------------------------------------------

Step = Callable[..., Awaitable[object]]


async def _change(info: Info, id: strawberry.ID, step: Step, **kwargs: object) -> ExceptionChangePayload:
    principal = info.context.principal
    missing = f"no exception {id}"
    value = _id(id, "ShipmentException")
    if value is None:
        return NotFoundError(message=missing)
    now = info.context.state.clock()

    async def work(session: AsyncSession) -> object:
        return await step(session, principal.scope, value, actor_of(principal), now=now, **kwargs)

    result = await _attempt(info, work, missing)
    if isinstance(result, NotFoundError | InvalidInputError | InvalidTransitionError):
        return result
    return ExceptionChangeSuccess(exception=exception_node(result))  # type: ignore[arg-type]


async def acknowledge_exception(
    info: Info, id: strawberry.ID, note: str | None = None
) -> ExceptionChangePayload:
    return await _change(info, id, service.acknowledge, note=note)


async def start_work_on_exception(
    info: Info, id: strawberry.ID, note: str | None = None
) -> ExceptionChangePayload:
    return await _change(info, id, service.start_work, note=note)


async def close_exception(info: Info, id: strawberry.ID, note: str | None = None) -> ExceptionChangePayload:
    return await _change(info, id, service.close, note=note)


async def reopen_exception(info: Info, id: strawberry.ID, note: str | None = None) -> ExceptionChangePayload:
    return await _change(info, id, service.reopen, note=note)


async def assign_exception(
    info: Info,
    id: strawberry.ID,
    user_id: strawberry.ID | None = None,
    team_id: strawberry.ID | None = None,
    note: str | None = None,
) -> ExceptionChangePayload:
    """Both ids null unassigns."""
    user = _optional_id(user_id, "User", "userId")
    team = _optional_id(team_id, "Team", "teamId")
    for given in (user, team):
        if isinstance(given, InvalidInputError):
            return given
    return await _change(info, id, service.assign, user_id=user, team_id=team, note=note)


async def comment_on_exception(
    info: Info, id: strawberry.ID, body: str, customer_visible: bool = False
) -> ExceptionActivityPayload:
    principal = info.context.principal
    missing = f"no exception {id}"
    value = _id(id, "ShipmentException")
    if value is None:
        return NotFoundError(message=missing)
    now = info.context.state.clock()
    result = await _attempt(
        info,
        lambda session: service.comment(
            session,
            principal.scope,
            value,
            actor_of(principal),
            now=now,
            body=body,
            customer_visible=customer_visible,
        ),
        missing,
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    assert not isinstance(result, InvalidTransitionError)
    return ExceptionActivitySuccess(activity=ExceptionActivity(row=result))


async def record_exception_action(
    info: Info,
    id: strawberry.ID,
    action: rules.ActionCode,
    note: str | None = None,
) -> ExceptionActivityPayload:
    principal = info.context.principal
    missing = f"no exception {id}"
    value = _id(id, "ShipmentException")
    if value is None:
        return NotFoundError(message=missing)
    now = info.context.state.clock()
    result = await _attempt(
        info,
        lambda session: service.record_action(
            session, principal.scope, value, actor_of(principal), now=now, code=str(action.value), note=note
        ),
        missing,
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    assert not isinstance(result, InvalidTransitionError)
    return ExceptionActivitySuccess(activity=ExceptionActivity(row=result))


async def resolve_exception(
    info: Info, id: strawberry.ID, resolution: ResolutionInput
) -> ResolveExceptionPayload:
    principal = info.context.principal
    missing = f"no exception {id}"
    value = _id(id, "ShipmentException")
    if value is None:
        return NotFoundError(message=missing)
    draft = rules.ResolutionDraft(
        outcome=resolution.outcome.value if resolution.outcome else None,
        root_cause=resolution.root_cause.value if resolution.root_cause else None,
        action_codes=[str(a.value) for a in resolution.action_codes],
        cost_amount=resolution.cost.amount if resolution.cost else None,
        cost_currency=resolution.cost.currency if resolution.cost else None,
        customer_notified=resolution.customer_notified,
        note=resolution.note,
    )
    now = info.context.state.clock()

    async def work(session: AsyncSession) -> tuple[object, object]:
        stored = await service.resolve(
            session, principal.scope, value, actor_of(principal), now=now, draft=draft
        )
        # the row the service locked and changed, from the session's identity map (no query)
        exception = await session.get(ShipmentExceptionRow, (principal.tenant_id, value))
        return exception, stored

    result = await _attempt(info, work, missing)
    if isinstance(result, NotFoundError | InvalidInputError | InvalidTransitionError):
        return result
    exception, stored = result
    return ResolveExceptionSuccess(
        exception=exception_node(exception),  # type: ignore[arg-type]
        resolution=ExceptionResolution(row=stored, for_shipper=False),  # type: ignore[arg-type]
    )


# --- configuration mutations (admin) -------------------------------------------------------------------


async def create_team(info: Info, input: TeamInput) -> TeamPayload:
    principal = info.context.principal
    ids: dict[str, uuid.UUID | None] = {}
    for field, given in (("leadUserId", input.lead_user_id), ("managerUserId", input.manager_user_id)):
        value = _optional_id(given, "User", field)
        if isinstance(value, InvalidInputError):
            return value
        ids[field] = value
    members = []
    for index, member in enumerate(input.member_ids):
        value = _optional_id(member, "User", f"memberIds[{index}]")
        if isinstance(value, InvalidInputError):
            return value
        assert value is not None
        members.append(value)
    result = await _attempt(
        info,
        lambda session: service.create_team(
            session,
            principal.scope,
            name=input.name,
            role=input.role.value if input.role else None,
            lead_user_id=ids["leadUserId"],
            manager_user_id=ids["managerUserId"],
            member_ids=members,
        ),
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    assert not isinstance(result, InvalidTransitionError)
    return TeamSuccess(team=team_node(result))


async def upsert_assignment_rule(info: Info, input: AssignmentRuleInput) -> UpsertAssignmentRulePayload:
    principal = info.context.principal
    team = _optional_id(input.team_id, "Team", "teamId")
    user = _optional_id(input.user_id, "User", "userId")
    for given in (team, user):
        if isinstance(given, InvalidInputError):
            return given
    match = input.match
    if not isinstance(match, dict) or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in match.values()
    ):
        return InvalidInputError(field="match", message="match: an object of lists of strings")
    draft = service.AssignmentRuleDraft(
        input.name,
        input.position,
        match,
        team_id=team if isinstance(team, uuid.UUID) else None,
        user_id=user if isinstance(user, uuid.UUID) else None,
        enabled=input.enabled,
    )
    result = await _attempt(
        info, lambda session: service.upsert_assignment_rule(session, principal.scope, draft)
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    assert not isinstance(result, InvalidTransitionError)
    return UpsertAssignmentRuleSuccess(rule=AssignmentRule(row=result))


async def upsert_playbook(info: Info, input: PlaybookInput) -> UpsertPlaybookPayload:
    principal = info.context.principal
    actions = [
        {
            "code": str(a.code.value),
            "title": a.title,
            "automatic": a.automatic,
            "policy": {
                key: value
                for key, value in {
                    "max_value": str(a.policy.max_value)
                    if a.policy and a.policy.max_value is not None
                    else None,
                    "tiers": a.policy.tiers if a.policy else None,
                    "severities": a.policy.severities if a.policy else None,
                }.items()
                if value is not None
            },
        }
        for a in input.actions
    ]
    draft = service.PlaybookDraft(
        input.name,
        input.exception_type,
        actions,
        sla_tier=input.sla_tier,
        value_band=input.value_band.value if input.value_band else None,
        enabled=input.enabled,
    )
    result = await _attempt(info, lambda session: service.upsert_playbook(session, principal.scope, draft))
    if isinstance(result, NotFoundError | InvalidInputError):
        return (
            InvalidInputError(field="input", message=result.message)
            if isinstance(result, NotFoundError)
            else result
        )
    assert not isinstance(result, InvalidTransitionError)
    return UpsertPlaybookSuccess(playbook=playbook_type(service.playbook_view(result)))


async def upsert_escalation_policy(info: Info, input: EscalationPolicyInput) -> UpsertEscalationPolicyPayload:
    principal = info.context.principal
    steps = []
    for index, step in enumerate(input.steps):
        target_type = "User" if step.target == rules.EscalationTarget.USER else "Team"
        target = _optional_id(step.target_id, target_type, f"steps[{index}].targetId")
        if isinstance(target, InvalidInputError):
            return target
        steps.append(
            {
                "trigger": str(step.trigger.value),
                "after_minutes": step.after_minutes,
                "target": str(step.target.value),
                **({"target_id": str(target)} if target else {}),
            }
        )
    draft = service.EscalationPolicyDraft(
        input.name, steps, severities=input.severities, enabled=input.enabled
    )
    result = await _attempt(
        info, lambda session: service.upsert_escalation_policy(session, principal.scope, draft)
    )
    if isinstance(result, NotFoundError | InvalidInputError):
        return result
    assert not isinstance(result, InvalidTransitionError)
    return UpsertEscalationPolicySuccess(policy=escalation_row_type(result))


async def set_response_target(
    info: Info,
    severity: str,
    respond_within_minutes: int,
    resolve_within_minutes: int,
    sla_tier: str | None = None,
) -> SetResponseTargetPayload:
    principal = info.context.principal
    result = await _attempt(
        info,
        lambda session: service.set_response_target(
            session,
            principal.scope,
            severity=severity,
            sla_tier=sla_tier,
            respond_within_minutes=respond_within_minutes,
            resolve_within_minutes=resolve_within_minutes,
        ),
    )
    if isinstance(result, NotFoundError | InvalidTransitionError):
        return InvalidInputError(field="severity", message=result.message)
    if isinstance(result, InvalidInputError):
        return result
    return SetResponseTargetSuccess(target=response_target_type(result))
