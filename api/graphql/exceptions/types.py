"""Detection in GraphQL: exceptions with their history, groups, rules, notices and backtest reports.

The exception type is called ``ShipmentException`` (as its table is): ``Exception`` would shadow Python's
built-in here and the base exception class in the languages clients generate code in (TypeScript, Java, C#).

Shippers see their own account's exceptions (row-level security and ``scoped()`` filter by account) and
only the customer's part of each: no rule, no cause group, no rule internals in the evidence, no notes in
the history; shadow exceptions are never theirs to see.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Context
from api.graphql.relay import Node, PageInfo, to_global_id
from api.graphql.shipments.types import Shipment, shipment_node
from api.graphql.tracking.types import InvalidInputError, NotFoundError
from api.graphql.workflow.types import (
    ExceptionPlaybook,
    ExceptionResolution,
    StaffUser,
    StatusDuration,
    Team,
    playbook_type,
    team_node,
    user_node,
)
from domain.documents.models import ShipmentDocument as ShipmentDocumentRow
from domain.exceptions import models, taxonomy
from domain.exceptions.repository import AnyNotice
from domain.exceptions.repository import ExceptionOrder as ExceptionOrderValue
from domain.exceptions.rules import customer_evidence, customer_sees
from domain.exceptions.service import BacktestReport as BacktestReportValue
from domain.workflow import rules as workflow_rules
from domain.workflow.repository import history, status_changes
from domain.workflow.rules import ActionCode as ActionCodeValue
from domain.workflow.rules import shown_to_shipper

ExceptionStatus = strawberry.enum(
    models.ExceptionStatus, name="ExceptionStatus", description="Where an exception is in its life."
)
Severity = strawberry.enum(models.Severity, name="Severity", description="How urgent an exception is.")
ExceptionCategory = strawberry.enum(
    models.Category, name="ExceptionCategory", description="The kind of problem an exception type is."
)
ExceptionType = strawberry.enum(
    taxonomy.ExceptionType, name="ExceptionType", description="What Milepost detects (see `exceptionTypes`)."
)
RuleMode = strawberry.enum(
    models.RuleMode,
    name="RuleMode",
    description="Enabled rules raise exceptions; shadow rules only record them for comparison.",
)
NoticeCause = strawberry.enum(models.NoticeCause, name="NoticeCause", description="Why a place is disrupted.")
GroupStatus = strawberry.enum(
    models.GroupStatus, name="ExceptionGroupStatus", description="Whether a cause group is still open."
)


def _is_shipper(info: strawberry.Info[Context, None]) -> bool:
    return info.context.principal.is_shipper


def _hidden(info: strawberry.Info[Context, None], field: str) -> bool:
    """Whether ``field`` is withheld from this viewer: a shipper and a staff field (the decision is the
    domain's, ``domain.exceptions.rules.CUSTOMER_FIELDS``, shared with notifications)."""
    return _is_shipper(info) and not customer_sees(field)


@strawberry.type(description="A detection rule version: thresholds and scope for one exception type.")
class Rule(Node):
    row: strawberry.Private[models.Rule]

    @strawberry.field(description="The exception type the rule detects.")
    def exception_type(self) -> ExceptionType:  # type: ignore[valid-type]
        return taxonomy.ExceptionType(self.row.exception_type)

    @strawberry.field(description="The rule's name within its type (`default` unless a tenant adds more).")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="Version of (type, name), from 1; the highest is in force.")
    def version(self) -> int:
        return self.row.version

    @strawberry.field(description="Enabled, disabled or shadow.")
    def mode(self) -> RuleMode:  # type: ignore[valid-type]
        return models.RuleMode(self.row.mode)

    @strawberry.field(
        description="Which shipments it covers: modes, carriers, accounts, slaTiers, origins, destinations."
    )
    def scope(self) -> JSON:
        return cast(JSON, self.row.scope)

    @strawberry.field(description="The type's thresholds (see `exceptionTypes` for each parameter).")
    def parameters(self) -> JSON:
        return cast(JSON, self.row.parameters)

    @strawberry.field(description="What the rule is for, in words.")
    def description(self) -> str:
        return self.row.description

    @strawberry.field(description="Who wrote this version (a user or client id, or `system`).")
    def created_by(self) -> str | None:
        return self.row.created_by

    @strawberry.field(description="When this version was written.")
    def created_at(self) -> dt.datetime:
        return self.row.created_at

    @strawberry.field(description="Every version of this rule, newest first.")
    async def versions(self, info: strawberry.Info[Context, None]) -> list[Rule]:
        rows = await info.context.loaders.rule_versions.load((self.row.exception_type, self.row.name))
        return [rule_node(row) for row in rows]


def rule_node(row: models.Rule) -> Rule:
    return Rule(id=to_global_id("Rule", row.id), row=row)


@strawberry.type(
    description="Exceptions with one cause (a voyage, a port, a carrier, a notice), handled once."
)
class ExceptionGroup(Node):
    row: strawberry.Private[models.ExceptionGroup]

    @strawberry.field(description="vessel_voyage, port, carrier or notice.")
    def cause_kind(self) -> str:
        return self.row.cause_kind

    @strawberry.field(description="The cause itself, e.g. a voyage number or a UN/LOCODE.")
    def cause_key(self) -> str:
        return self.row.cause_key

    @strawberry.field(description="The cause in words.")
    def title(self) -> str:
        return self.row.title

    @strawberry.field(description="Open while exceptions keep joining it.")
    def status(self) -> GroupStatus:  # type: ignore[valid-type]
        return models.GroupStatus(self.row.status)

    @strawberry.field(description="When the first exception joined.")
    def first_seen_at(self) -> dt.datetime:
        return self.row.first_seen_at

    @strawberry.field(description="When an exception last joined or was seen again.")
    def last_seen_at(self) -> dt.datetime:
        return self.row.last_seen_at

    @strawberry.field(description="Until when the group (and whoever joins it meanwhile) is snoozed.")
    def snoozed_until(self) -> dt.datetime | None:
        return self.row.snoozed_until

    @strawberry.field(description="How many exceptions (any status) belong to the group.")
    async def exception_count(self, info: strawberry.Info[Context, None]) -> int:
        return await info.context.loaders.group_size.load(self.row.id)


def group_node(row: models.ExceptionGroup) -> ExceptionGroup:
    return ExceptionGroup(id=to_global_id("ExceptionGroup", row.id), row=row)


@strawberry.type(description="One entry of an exception's history.")
class ExceptionActivity:
    row: strawberry.Private[models.ExceptionActivity]

    @strawberry.field(description="Opaque id of the entry.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field(description="opened, occurred, snoozed, unsnoozed, reopened, auto_resolved, ...")
    def kind(self) -> str:
        return self.row.kind

    @strawberry.field(description="Status before the entry, if it changed one.")
    def from_status(self) -> ExceptionStatus | None:  # type: ignore[valid-type]
        return models.ExceptionStatus(self.row.from_status) if self.row.from_status else None

    @strawberry.field(description="Status after the entry.")
    def to_status(self) -> ExceptionStatus | None:  # type: ignore[valid-type]
        return models.ExceptionStatus(self.row.to_status) if self.row.to_status else None

    @strawberry.field(
        description="What was said or found (for shippers only on comments meant for them; other notes are "
        "internal)."
    )
    def note(self, info: strawberry.Info[Context, None]) -> str | None:
        if _is_shipper(info) and not shown_to_shipper(self.row.kind, self.row.customer_visible)[1]:
            return None
        return self.row.note

    @strawberry.field(description="Whether the shipper sees this entry's note.")
    def customer_visible(self) -> bool:
        return self.row.customer_visible

    @strawberry.field(description="Structured details: the action taken, an assignment, an escalation step.")
    def data(self, info: strawberry.Info[Context, None]) -> JSON | None:
        return None if _is_shipper(info) else cast(JSON, self.row.data)

    @strawberry.field(description="user, system or api_client.")
    def actor_kind(self) -> str:
        return self.row.actor_kind

    @strawberry.field(description="When it happened.")
    def created_at(self) -> dt.datetime:
        return self.row.created_at


@strawberry.type(description="A detected problem with a shipment; one is open per (shipment, type, key).")
class ShipmentException(Node):
    row: strawberry.Private[models.ShipmentException]

    @strawberry.field(description="What was detected.")
    def type(self) -> ExceptionType:  # type: ignore[valid-type]
        return taxonomy.ExceptionType(self.row.exception_type)

    @strawberry.field(description="The type's category.")
    def category(self) -> ExceptionCategory:  # type: ignore[valid-type]
        return models.Category(self.row.category)

    @strawberry.field(
        description="What the exception is about within the shipment: a milestone code, `doc:<type>`, "
        "`notice:<id>`; null for the shipment as a whole."
    )
    def key(self) -> str | None:
        return self.row.milestone_code

    @strawberry.field(description="Life-cycle status.")
    def status(self) -> ExceptionStatus:  # type: ignore[valid-type]
        return models.ExceptionStatus(self.row.status)

    @strawberry.field(description="Severity, from the priority score.")
    def severity(self) -> Severity:  # type: ignore[valid-type]
        return models.Severity(self.row.severity)

    @strawberry.field(description="0-100: category, SLA tier, priority, value and lateness.")
    def priority_score(self) -> int:
        return self.row.priority_score

    @strawberry.field(description="One sentence saying what was found and against which threshold.")
    def explanation(self) -> str:
        return self.row.explanation

    @strawberry.field(
        description="The facts behind it: times with their sources, triggering events, the threshold and "
        "(staff only) the rule with its parameters."
    )
    def evidence(self, info: strawberry.Info[Context, None]) -> JSON:
        return cast(JSON, customer_evidence(self.row.evidence) if _is_shipper(info) else self.row.evidence)

    @strawberry.field(description="How often the facts changed while it stayed open (1 for a new one).")
    def occurrences(self) -> int:
        return self.row.occurrences

    @strawberry.field(description="How often it came back after being resolved.")
    def reopen_count(self) -> int:
        return self.row.reopen_count

    @strawberry.field(description="When it was first detected.")
    def first_seen_at(self) -> dt.datetime:
        return self.row.first_seen_at

    @strawberry.field(description="When it was last detected.")
    def last_seen_at(self) -> dt.datetime:
        return self.row.last_seen_at

    @strawberry.field(description="Until when it is snoozed.")
    def snoozed_until(self) -> dt.datetime | None:
        return self.row.snoozed_until

    @strawberry.field(description="When it was resolved (by a person or automatically).")
    def resolved_at(self) -> dt.datetime | None:
        return self.row.resolved_at

    @strawberry.field(description="Why it was resolved.")
    def resolution_reason(self) -> str | None:
        return self.row.resolution_reason

    @strawberry.field(description="Raised by a shadow rule: recorded for comparison, in nobody's queue.")
    def shadow(self) -> bool:
        return self.row.shadow

    @strawberry.field(description="The exact rule version that raised it (null for shippers).")
    async def rule(self, info: strawberry.Info[Context, None]) -> Rule | None:
        if self.row.rule_id is None or _hidden(info, "rule"):
            return None
        row = await info.context.loaders.rule.load(self.row.rule_id)
        return rule_node(row) if row is not None else None

    @strawberry.field(description="The cause group it belongs to (null for shippers).")
    async def group(self, info: strawberry.Info[Context, None]) -> ExceptionGroup | None:
        if self.row.group_id is None or _hidden(info, "group"):
            return None
        row = await info.context.loaders.group.load(self.row.group_id)
        return group_node(row) if row is not None else None

    @strawberry.field(description="The shipment it concerns.")
    async def shipment(self, info: strawberry.Info[Context, None]) -> Shipment | None:
        row = await info.context.loaders.shipment.load(self.row.shipment_id)
        return shipment_node(row) if row is not None else None

    @strawberry.field(
        description="Its history, oldest entry first (shippers see status changes and the comments meant "
        "for them)."
    )
    async def activities(self, info: strawberry.Info[Context, None]) -> list[ExceptionActivity]:
        rows = await info.context.loaders.activities.load(self.row.id)
        if _is_shipper(info):
            rows = [r for r in rows if shown_to_shipper(r.kind, r.customer_visible)[0]]
        return [ExceptionActivity(row=row) for row in rows]

    @strawberry.field(description="Seconds spent in each status so far, from its history.")
    async def time_in_state(self, info: strawberry.Info[Context, None]) -> list[StatusDuration]:
        rows = await info.context.loaders.activities.load(self.row.id)
        spent = workflow_rules.time_in_states(status_changes(rows), info.context.now)
        return [StatusDuration(status=k, seconds=v.total_seconds()) for k, v in sorted(spent.items())]

    @strawberry.field(description="The staff user it is assigned to (null for shippers).")
    async def assignee(self, info: strawberry.Info[Context, None]) -> StaffUser | None:
        if self.row.assignee_user_id is None or _hidden(info, "assignee"):
            return None
        row = await info.context.loaders.user.load(self.row.assignee_user_id)
        return user_node(row) if row is not None else None

    @strawberry.field(description="The team it is assigned to (null for shippers).")
    async def assignee_team(self, info: strawberry.Info[Context, None]) -> Team | None:
        if self.row.assignee_team_id is None or _hidden(info, "assignee_team"):
            return None
        row = await info.context.loaders.team.load(self.row.assignee_team_id)
        return team_node(row) if row is not None else None

    @strawberry.field(description="When someone acknowledged it (or started work on it).")
    def acknowledged_at(self) -> dt.datetime | None:
        return self.row.acknowledged_at

    @strawberry.field(description="Acknowledge by this time (its severity's and tier's target; staff only).")
    def respond_by(self, info: strawberry.Info[Context, None]) -> dt.datetime | None:
        return None if _hidden(info, "respond_by") else self.row.respond_by

    @strawberry.field(description="Resolve by this time (staff only).")
    def resolve_by(self, info: strawberry.Info[Context, None]) -> dt.datetime | None:
        return None if _hidden(info, "resolve_by") else self.row.resolve_by

    @strawberry.field(description="Escalation steps fired in this opening (staff only).")
    def escalation_steps_fired(self, info: strawberry.Info[Context, None]) -> int | None:
        return None if _hidden(info, "escalation_steps_fired") else self.row.escalation_steps_fired

    @strawberry.field(description="When the next escalation step is due (staff only).")
    def next_escalation_at(self, info: strawberry.Info[Context, None]) -> dt.datetime | None:
        return None if _hidden(info, "next_escalation_at") else self.row.next_escalation_at

    @strawberry.field(description="Its latest structured resolution (shippers see outcome and time).")
    async def resolution(self, info: strawberry.Info[Context, None]) -> ExceptionResolution | None:
        row = await info.context.loaders.resolution.load(self.row.id)
        return ExceptionResolution(row=row, for_shipper=_is_shipper(info)) if row is not None else None

    @strawberry.field(description="The playbook that applies and the actions taken so far (staff only).")
    async def playbook(self, info: strawberry.Info[Context, None]) -> ExceptionPlaybook | None:
        if _hidden(info, "playbook"):
            return None
        loaders = info.context.loaders
        shipment = await loaders.shipment.load(self.row.shipment_id)
        account = await loaders.account.load(self.row.account_id)
        if shipment is None or account is None:
            return None
        facts = workflow_rules.facts_of(self.row, shipment, account.sla_tier)
        chosen = workflow_rules.choose_playbook(await loaders.playbooks.load(None), facts)
        if chosen is None:
            return None
        entries = await loaders.activities.load(self.row.id)
        opening = workflow_rules.current_opening(history(entries))
        return ExceptionPlaybook(
            playbook=playbook_type(chosen), taken=[ActionCodeValue(c) for c in opening.actions]
        )


def exception_node(row: models.ShipmentException) -> ShipmentException:
    return ShipmentException(id=to_global_id("ShipmentException", row.id), row=row)


@strawberry.type(description="An exception in a connection, with its cursor.")
class ShipmentExceptionEdge:
    cursor: str = strawberry.field(description="Opaque position; pass as `after` to continue.")
    node: ShipmentException = strawberry.field(description="The exception.")


@strawberry.type(description="A page of exceptions, newest first.")
class ShipmentExceptionConnection:
    edges: list[ShipmentExceptionEdge] = strawberry.field(description="The exceptions of this page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.input(description="Narrow an exception list; all given conditions must hold.")
class ExceptionFilter:
    status: list[ExceptionStatus] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these statuses."
    )
    type: list[ExceptionType] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these types."
    )
    severity: list[Severity] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these severities."
    )
    category: list[ExceptionCategory] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these categories."
    )
    shipment_id: strawberry.ID | None = strawberry.field(default=None, description="Of this shipment.")
    group_id: strawberry.ID | None = strawberry.field(default=None, description="In this cause group.")
    shadow: bool = strawberry.field(
        default=False, description="Shadow exceptions instead of live ones (staff and partners only)."
    )
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="Assigned to this staff user (staff and partners only)."
    )
    team_id: strawberry.ID | None = strawberry.field(
        default=None, description="Assigned to this team (staff and partners only)."
    )
    unassigned: bool = strawberry.field(
        default=False, description="Assigned to nobody (staff and partners only)."
    )


ExceptionOrder = strawberry.enum(
    ExceptionOrderValue,
    name="ExceptionOrder",
    description="NEWEST: newest first. PRIORITY: the queue, highest priority score first. RESPOND_BY: the "
    "most urgent response first, those without a respond-by time last.",
)


@strawberry.type(description="A disruption at a place over a time window (the tenant's or platform-wide).")
class DisruptionNotice(Node):
    row: strawberry.Private[AnyNotice]

    @strawberry.field(description="Why the place is disrupted.")
    def cause(self) -> NoticeCause:  # type: ignore[valid-type]
        return models.NoticeCause(self.row.cause)

    @strawberry.field(description="Short title, used in explanations.")
    def title(self) -> str:
        return self.row.title

    @strawberry.field(description="Details.")
    def description(self) -> str:
        return self.row.description

    @strawberry.field(description="The place (UN/LOCODE).")
    def location_locode(self) -> str:
        return self.row.location_locode

    @strawberry.field(description="When the disruption starts.")
    def starts_at(self) -> dt.datetime:
        return self.row.starts_at

    @strawberry.field(description="When it ends.")
    def ends_at(self) -> dt.datetime:
        return self.row.ends_at

    @strawberry.field(description="api, cli, or the feed it came from.")
    def source(self) -> str:
        return self.row.source

    @strawberry.field(description="Platform-wide (applies to every tenant) rather than this tenant's own.")
    def is_global(self) -> bool:
        return isinstance(self.row, models.GlobalDisruptionNotice)

    @strawberry.field(description="When it was recorded.")
    def created_at(self) -> dt.datetime:
        return self.row.created_at


def notice_node(row: AnyNotice) -> DisruptionNotice:
    kind = "GlobalDisruptionNotice" if isinstance(row, models.GlobalDisruptionNotice) else "DisruptionNotice"
    return DisruptionNotice(id=to_global_id(kind, row.id), row=row)


@strawberry.type(description="One threshold of an exception type.")
class RuleParameterSpec:
    name: str = strawberry.field(description="The parameter's name in a rule's `parameters`.")
    kind: str = strawberry.field(description="JSON kind: int, float, bool, str, list or dict.")
    default: JSON = strawberry.field(description="The value a rule gets when it does not set one.")
    minimum: float | None = strawberry.field(description="Smallest number allowed (for dict: each value).")
    maximum: float | None = strawberry.field(description="Largest number allowed (for dict: each value).")
    description: str = strawberry.field(description="What it controls.")


@strawberry.type(description="An exception type Milepost detects, with its parameters.")
class ExceptionTypeSpec:
    type: ExceptionType = strawberry.field(description="The type.")  # type: ignore[valid-type]
    category: ExceptionCategory = strawberry.field(description="Its category.")  # type: ignore[valid-type]
    description: str = strawberry.field(description="When it fires, in words.")
    parameters: list[RuleParameterSpec] = strawberry.field(description="The thresholds a rule may set.")


def type_specs() -> list[ExceptionTypeSpec]:
    return [
        ExceptionTypeSpec(
            type=spec.type,
            category=spec.category,
            description=spec.description,
            parameters=[
                RuleParameterSpec(
                    name=name,
                    kind=parameter.kind.__name__,
                    default=cast(JSON, parameter.default),
                    minimum=parameter.minimum,
                    maximum=parameter.maximum,
                    description=parameter.description,
                )
                for name, parameter in spec.parameters.items()
            ],
        )
        for spec in taxonomy.TYPES.values()
    ]


@strawberry.type(description="A count for one key (an exception type or a severity).")
class KeyCount:
    key: str = strawberry.field(description="The type or severity.")
    count: int = strawberry.field(description="How many.")


def key_counts(counts: dict[str, int]) -> list[KeyCount]:
    return [KeyCount(key=key, count=count) for key, count in sorted(counts.items())]


@strawberry.type(description="One finding a backtest would have raised.")
class BacktestExample:
    shipment_id: strawberry.ID = strawberry.field(description="The shipment (global id).")
    type: ExceptionType = strawberry.field(description="What it found.")  # type: ignore[valid-type]
    key: str | None = strawberry.field(description="Milestone or other key, as on exceptions.")
    severity: Severity = strawberry.field(description="Severity at the time.")  # type: ignore[valid-type]
    first_raised_at: dt.datetime = strawberry.field(description="The first checkpoint that raised it.")
    explanation: str = strawberry.field(description="The explanation it would have had.")


@strawberry.type(description="What a rule would have raised over a past window; nothing was written.")
class BacktestReport:
    starts_at: dt.datetime = strawberry.field(description="Start of the window.")
    ends_at: dt.datetime = strawberry.field(description="End of the window.")
    checkpoints: int = strawberry.field(description="How many moments were replayed.")
    shipments: int = strawberry.field(description="Shipments active in the window.")
    raised: list[KeyCount] = strawberry.field(description="Exceptions the candidate raises, by type.")
    by_severity: list[KeyCount] = strawberry.field(description="The same, by severity.")
    current_raised: list[KeyCount] = strawberry.field(
        description="What the version in force now raises over the same window, by type."
    )
    examples: list[BacktestExample] = strawberry.field(description="Some of the candidate's findings.")


def backtest_report(report: BacktestReportValue) -> BacktestReport:
    return BacktestReport(
        starts_at=report.starts_at,
        ends_at=report.ends_at,
        checkpoints=report.checkpoints,
        shipments=report.shipments,
        raised=key_counts(report.raised),
        by_severity=key_counts(report.by_severity),
        current_raised=key_counts(report.current_raised),
        examples=[
            BacktestExample(
                shipment_id=to_global_id("Shipment", example.shipment_id),
                type=taxonomy.ExceptionType(example.exception_type),
                key=example.key,
                severity=models.Severity(example.severity),
                first_raised_at=example.first_raised_at,
                explanation=example.explanation,
            )
            for example in report.examples
        ],
    )


@strawberry.type(description="A document received for a shipment.")
class ShipmentDocument:
    document_type: str = strawberry.field(description="e.g. commercial_invoice, packing_list.")
    received_at: dt.datetime = strawberry.field(description="When it was received.")
    source: str = strawberry.field(description="Where it came from (api, a feed).")
    reference: str | None = strawberry.field(description="Its number or file reference, if given.")


def document_node(row: ShipmentDocumentRow) -> ShipmentDocument:
    return ShipmentDocument(
        document_type=row.document_type,
        received_at=row.received_at,
        source=row.source,
        reference=row.reference,
    )


# --- inputs and payloads -------------------------------------------------------------------------------


@strawberry.input(description="A rule change: writes a new version of (exceptionType, name).")
class RuleInput:
    exception_type: str = strawberry.field(description="One of `exceptionTypes`, e.g. MILESTONE_LATE.")
    name: str = strawberry.field(default="default", description="The rule's name within its type.")
    mode: RuleMode = strawberry.field(  # type: ignore[valid-type]
        default=models.RuleMode.ENABLED, description="Enabled, disabled or shadow."
    )
    parameters: JSON = strawberry.field(
        default_factory=dict, description="Thresholds; missing ones take the type's defaults."
    )
    scope: JSON = strawberry.field(
        default_factory=dict,
        description="Lists of modes, carriers, accounts, slaTiers, origins, destinations; none: everything.",
    )
    description: str | None = strawberry.field(
        default=None, description="What the rule is for; null keeps the previous version's."
    )


@strawberry.input(description="Replay a candidate rule over a past window.")
class BacktestRuleInput:
    rule: RuleInput = strawberry.field(description="The candidate (runs as if enabled).")
    starts_at: dt.datetime = strawberry.field(description="Start of the window (with a UTC offset).")
    ends_at: dt.datetime = strawberry.field(description="End of the window.")
    step_hours: float = strawberry.field(default=6.0, description="Hours between checkpoints (≥ 0.25).")


@strawberry.input(description="A disruption at a place over a time window.")
class DisruptionNoticeInput:
    cause: NoticeCause = strawberry.field(description="Why.")  # type: ignore[valid-type]
    title: str = strawberry.field(description="Short title (1-200 characters).")
    location_locode: str = strawberry.field(description="The place (UN/LOCODE, e.g. NLRTM).")
    starts_at: dt.datetime = strawberry.field(description="When it starts (with a UTC offset).")
    ends_at: dt.datetime = strawberry.field(description="When it ends.")
    description: str = strawberry.field(default="", description="Details.")


@strawberry.type(description="The rule version was written.")
class UpsertRuleSuccess:
    rule: Rule = strawberry.field(description="The new version, now in force.")


@strawberry.type(description="The backtest ran.")
class BacktestRuleSuccess:
    report: BacktestReport = strawberry.field(description="What the candidate would have raised.")


@strawberry.type(description="The exception was snoozed.")
class SnoozeExceptionSuccess:
    exception: ShipmentException = strawberry.field(description="The snoozed exception.")


@strawberry.type(description="The group and its open exceptions were snoozed.")
class SnoozeExceptionGroupSuccess:
    group: ExceptionGroup = strawberry.field(description="The snoozed group.")
    snoozed: int = strawberry.field(description="How many of its exceptions were snoozed now.")


@strawberry.type(description="The notice was recorded; shipments passing the place are re-checked.")
class CreateDisruptionNoticeSuccess:
    notice: DisruptionNotice = strawberry.field(description="The new notice.")


@strawberry.type(description="The document was recorded; the shipment is re-checked.")
class RecordShipmentDocumentSuccess:
    document: ShipmentDocument = strawberry.field(description="The document as stored.")
    shipment: Shipment = strawberry.field(description="The shipment it was recorded for.")


UpsertRulePayload = Annotated[
    UpsertRuleSuccess | InvalidInputError,
    strawberry.union("UpsertRulePayload", description="The new rule version, or why not."),
]
BacktestRulePayload = Annotated[
    BacktestRuleSuccess | InvalidInputError,
    strawberry.union("BacktestRulePayload", description="The backtest report, or why not."),
]
SnoozeExceptionPayload = Annotated[
    SnoozeExceptionSuccess | NotFoundError | InvalidInputError,
    strawberry.union("SnoozeExceptionPayload", description="The snoozed exception, or why not."),
]
SnoozeExceptionGroupPayload = Annotated[
    SnoozeExceptionGroupSuccess | NotFoundError | InvalidInputError,
    strawberry.union("SnoozeExceptionGroupPayload", description="The snoozed group, or why not."),
]
CreateDisruptionNoticePayload = Annotated[
    CreateDisruptionNoticeSuccess | InvalidInputError,
    strawberry.union("CreateDisruptionNoticePayload", description="The new notice, or why not."),
]
RecordShipmentDocumentPayload = Annotated[
    RecordShipmentDocumentSuccess | NotFoundError | InvalidInputError,
    strawberry.union("RecordShipmentDocumentPayload", description="The stored document, or why not."),
]
