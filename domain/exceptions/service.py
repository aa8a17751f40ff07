"""Detection use cases: evaluate shipments, sweep what is due, manage rules and notices, backtest. Flush only.

``evaluate_shipments`` is the one path from state to stored exceptions: the event-driven actor (after every
timeline change, via the outbox), the sweep (``next_check_at`` due), a new disruption notice and a rule
change all end there. Shipments are locked in id order for the evaluation, so two evaluations of one
shipment serialise and the partial unique index on open keys never sees a race.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped
from domain.documents.models import ShipmentDocument
from domain.exceptions import repository
from domain.exceptions.models import (
    CLOSED_STATUSES,
    DisruptionNotice,
    ExceptionActivity,
    ExceptionGroup,
    ExceptionStatus,
    GlobalDisruptionNotice,
    NoticeCause,
    Rule,
    RuleMode,
    ShipmentException,
)
from domain.exceptions.reconcile import DEFAULT_REOPEN_WINDOW, Change, ChangeKind, reconcile
from domain.exceptions.rules import SCOPE_KEYS, Cause, RuleConfig, RuledFinding, evaluate
from domain.exceptions.taxonomy import (
    DEFAULT_RULES,
    TYPES,
    ExceptionType,
    ParameterError,
    validate_parameters,
)
from domain.outbox.service import publish_all
from domain.shipments.models import Shipment
from domain.tracking.service import REEVALUATE_REASON, TIMELINE_CHANGED
from domain.workflow import rules as lifecycle
from domain.workflow import topics
from domain.workflow.rules import Transition

SWEEP_BATCH = 500
# the outbox topics detection writes (payloads: ``domain.workflow.topics.base_payload``)
EXCEPTION_TOPICS = topics.DETECTION_TOPICS


class DetectionError(ValueError):
    """A request detection cannot honour: the message says which field and why."""


class DetectionNotFound(DetectionError):
    """The object a request names does not exist for this scope (another tenant's answers the same)."""


def _check_aware(name: str, value: dt.datetime) -> None:
    if value.tzinfo is None:
        raise DetectionError(f"{name}: a time needs a UTC offset")


# --- rules ---------------------------------------------------------------------------------------------


def default_rule_configs() -> list[RuleConfig]:
    """The rules a tenant without any would get, as the engine runs them (not stored)."""
    return [
        RuleConfig(
            None,
            default.exception_type,
            default.name,
            1,
            RuleMode.ENABLED,
            validate_parameters(default.exception_type, default.parameters),
            dict(default.scope),
        )
        for default in DEFAULT_RULES
    ]


async def ensure_default_rules(session: AsyncSession, scope: TenantScope) -> None:
    """Give a tenant without any rule the default rule set (new tenants; tenants from before detection)."""
    existing = await session.execute(scoped(select(Rule.id), Rule, scope).limit(1))
    if existing.first() is None:
        await _store_defaults(session, scope)


async def _store_defaults(session: AsyncSession, scope: TenantScope) -> None:
    session.add_all(
        Rule(
            tenant_id=scope.tenant_id,
            exception_type=config.exception_type,
            name=config.name,
            version=config.version,
            mode=config.mode,
            parameters=dict(config.parameters),
            scope=dict(config.scope),
            description=TYPES[config.exception_type].description,
            created_by="system",
        )
        for config in default_rule_configs()
    )
    await session.flush()


async def rules_in_force(session: AsyncSession, scope: TenantScope) -> list[RuleConfig]:
    """The rules in force, the defaults stored first for a tenant without any (one read per evaluation)."""
    configs = await repository.rule_configs(session, scope)
    if configs:
        return configs
    await _store_defaults(session, scope)
    return await repository.rule_configs(session, scope)


@dataclass(frozen=True)
class RuleDraft:
    exception_type: str
    name: str = "default"
    mode: str = RuleMode.ENABLED
    parameters: Mapping[str, Any] = field(default_factory=dict)
    scope: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None


def check_rule(draft: RuleDraft) -> RuleConfig:
    """The draft as the engine would run it, or a :class:`DetectionError` naming the field at fault."""
    try:
        exception_type = ExceptionType(draft.exception_type)
    except ValueError:
        raise DetectionError(
            f"exceptionType: unknown type {draft.exception_type!r}; known: {', '.join(ExceptionType)}"
        ) from None
    try:
        mode = RuleMode(draft.mode)
    except ValueError:
        raise DetectionError(f"mode: {draft.mode!r} is not one of {', '.join(RuleMode)}") from None
    name = draft.name.strip()
    if not name or len(name) > 100:
        raise DetectionError("name: needs 1-100 characters")
    for field_name in ("parameters", "scope"):
        if not isinstance(getattr(draft, field_name), Mapping):
            raise DetectionError(f"{field_name}: expected a JSON object")
    try:
        parameters = validate_parameters(exception_type, draft.parameters)
    except ParameterError as error:
        raise DetectionError(f"parameters: {error}") from None
    unknown = sorted(set(draft.scope) - set(SCOPE_KEYS))
    if unknown:
        raise DetectionError(f"scope: unknown key(s) {', '.join(unknown)}; known: {', '.join(SCOPE_KEYS)}")
    for key, values in draft.scope.items():
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise DetectionError(f"scope.{key}: expected a list of non-empty strings")
    return RuleConfig(None, exception_type, name, 0, mode, parameters, dict(draft.scope))


async def upsert_rule(session: AsyncSession, scope: TenantScope, draft: RuleDraft, *, actor: str) -> Rule:
    """A new version of the rule ``(type, name)`` (version 1 when new). Versions are never edited, so every
    exception keeps pointing at the exact rule that raised it. The tenant's shipments are re-checked at the
    next sweep (``next_check_at`` set to now for those the rule's scope may cover)."""
    config = check_rule(draft)
    await ensure_default_rules(session, scope)
    latest = (
        await session.execute(
            scoped(select(Rule), Rule, scope)
            .where(Rule.exception_type == config.exception_type, Rule.name == config.name)
            .order_by(Rule.version.desc())
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()
    rule = Rule(
        tenant_id=scope.tenant_id,
        exception_type=config.exception_type,
        name=config.name,
        version=(latest.version + 1) if latest else 1,
        mode=config.mode,
        parameters=dict(config.parameters),
        scope=dict(config.scope),
        description=draft.description
        if draft.description is not None
        else (latest.description if latest else TYPES[config.exception_type].description),
        created_by=actor,
    )
    session.add(rule)
    await session.flush()
    await _recheck_soon(session, scope)
    return rule


async def _recheck_soon(session: AsyncSession, scope: TenantScope) -> None:
    """Make every unfinished shipment due, so a rule change applies at the next sweep (in batches)."""
    await session.execute(
        text(
            "UPDATE shipment SET next_check_at = now() "
            "WHERE tenant_id = :tenant_id AND status NOT IN ('delivered', 'cancelled')"
        ),
        {"tenant_id": scope.tenant_id},
    )


# --- evaluation ----------------------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    evaluated: int = 0
    changes: Counter[str] = field(default_factory=Counter)
    shadow_changes: Counter[str] = field(default_factory=Counter)


async def evaluate_shipments(
    session: AsyncSession,
    scope: TenantScope,
    shipment_ids: Sequence[uuid.UUID],
    *,
    now: dt.datetime,
    reopen_window: dt.timedelta = DEFAULT_REOPEN_WINDOW,
) -> EvaluationReport:
    """Evaluate these shipments now and bring their exceptions in line with what the rules find."""
    report = EvaluationReport()
    ids = sorted(set(shipment_ids))
    if not ids:
        return report
    states = await repository.load_states(session, scope, ids, lock=True)
    if not states:  # gone, another tenant's, or the tenant itself was deleted meanwhile: nothing to do
        return report
    rules = await rules_in_force(session, scope)
    rows = await repository.exceptions_of(session, scope, [s.id for s in states])
    by_shipment: dict[uuid.UUID, list[ShipmentException]] = {}
    for row in rows:
        by_shipment.setdefault(row.shipment_id, []).append(row)
    writer = _Writer(session, scope, now)
    schedule: list[tuple[uuid.UUID, dt.datetime | None]] = []
    planned = []
    for state in states:
        evaluation = evaluate(state, rules, now)
        existing = by_shipment.get(state.id, [])
        changes = reconcile(
            [repository.record_of(r) for r in existing],
            evaluation.findings,
            evaluation.shadow,
            evaluation.evaluated,
            evaluation.shadow_evaluated,
            now,
            reopen_window,
        )
        planned.append((state, evaluation, existing, changes))
    await writer.open_groups(
        c.finding.finding.cause
        for *_, changes in planned
        for c in changes
        if c.kind == ChangeKind.OPEN and c.finding is not None and c.finding.rule.mode != RuleMode.SHADOW
    )
    for state, evaluation, existing, changes in planned:
        rows_by_id = {r.id: r for r in existing}
        for change in changes:
            await writer.apply(state.id, state.account_id, change, rows_by_id)
            shadow = change.record.shadow if change.record else False
            (report.shadow_changes if shadow else report.changes)[change.kind] += 1
        # a snooze that ends is a deadline too: if the condition still holds then, the exception opens again
        snoozes = [
            r.snoozed_until
            for r in (*existing, *writer.opened.get(state.id, ()))
            if r.status == ExceptionStatus.SNOOZED and r.snoozed_until is not None
        ]
        due = min([d for d in (evaluation.next_check_at, *snoozes) if d is not None], default=None)
        schedule.append((state.id, due))
        report.evaluated += 1
    await writer.flush()
    await session.execute(
        text(
            """
            UPDATE shipment AS s SET next_check_at = u.next_check_at, evaluated_at = :now
            FROM unnest(CAST(:ids AS uuid[]), CAST(:due AS timestamptz[])) AS u(id, next_check_at)
            WHERE s.tenant_id = :tenant_id AND s.id = u.id
            """
        ),
        {
            "tenant_id": scope.tenant_id,
            "now": now,
            "ids": [i for i, _ in schedule],
            "due": [d for _, d in schedule],
        },
    )
    return report


_OPEN_GROUPS = text(
    """
    INSERT INTO exception_group AS g
        (tenant_id, id, cause_kind, cause_key, title, status, first_seen_at, last_seen_at)
    SELECT :tenant_id, gen_random_uuid(), c.kind, c.key, c.title, 'open', :now, :now
    FROM unnest(CAST(:kinds AS text[]), CAST(:keys AS text[]), CAST(:titles AS text[])) AS c(kind, key, title)
    ORDER BY c.kind, c.key
    ON CONFLICT (tenant_id, cause_kind, cause_key) WHERE status = 'open'
    DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
    RETURNING g.id, g.cause_kind, g.cause_key, g.snoozed_until
    """
)


class _Writer:
    """Applies reconciliation changes: exception rows, their activity entries, groups and outbox rows."""

    def __init__(self, session: AsyncSession, scope: TenantScope, now: dt.datetime) -> None:
        self.session = session
        self.scope = scope
        self.now = now
        self.groups: dict[tuple[str, str], tuple[uuid.UUID, dt.datetime | None]] = {}
        self.activities: list[dict[str, Any]] = []
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self.opened: dict[uuid.UUID, list[ShipmentException]] = {}

    async def apply(
        self,
        shipment_id: uuid.UUID,
        account_id: uuid.UUID,
        change: Change,
        rows: Mapping[uuid.UUID, ShipmentException],
    ) -> None:
        row = rows[change.record.id] if change.record else None
        finding = change.finding
        if change.kind == ChangeKind.AUTO_RESOLVE:
            assert row is not None
            after = lifecycle.transition(row.status, Transition.AUTO_RESOLVE, by_person=False)
            self._activity(row, "auto_resolved", row.status, after, change.reason)
            row.status = after
            row.resolved_at = self.now
            row.resolution_reason = change.reason
            row.snoozed_until = row.next_escalation_at = None
            self._publish(topics.AUTO_RESOLVED, row)
            return
        assert finding is not None
        if row is None:
            row = ShipmentException(
                tenant_id=self.scope.tenant_id,
                id=uuid.uuid4(),
                shipment_id=shipment_id,
                account_id=account_id,
                exception_type=finding.finding.type,
                milestone_code=finding.finding.key,
                shadow=finding.rule.mode == RuleMode.SHADOW,
                status=ExceptionStatus.OPEN,
                occurrences=0,
                reopen_count=0,
                first_seen_at=self.now,
            )
            self._fill(row, finding, new_occurrence=True)
            cause = finding.finding.cause
            group = self.groups[(cause.kind, cause.key)] if cause and not row.shadow else None
            if group is not None:
                row.group_id, snoozed_until = group
                if snoozed_until is not None and snoozed_until > self.now:
                    row.status, row.snoozed_until = ExceptionStatus.SNOOZED, snoozed_until
            self.session.add(row)  # written with the others at flush(): one round trip, not one per row
            self.opened.setdefault(shipment_id, []).append(row)
            self._activity(row, "opened", None, row.status, finding.finding.explanation)
            self._publish(topics.OPENED, row)
            return
        before = (row.severity, row.fingerprint)
        self._fill(row, finding, new_occurrence=change.new_occurrence)
        if change.kind == ChangeKind.UNSNOOZE:
            after = lifecycle.transition(row.status, Transition.UNSNOOZE, by_person=False)
            self._activity(row, "unsnoozed", row.status, after, "the snooze expired")
            row.status, row.snoozed_until = after, None
            row.next_escalation_at = self.now  # the escalation sweep picks its clock up again
            self._publish(topics.UPDATED, row)
        elif change.kind == ChangeKind.REOPEN:
            after = lifecycle.transition(row.status, Transition.REOPEN, by_person=False)
            self._activity(row, "reopened", row.status, after, finding.finding.explanation)
            row.status = after
            row.resolved_at = row.resolution_reason = None
            row.reopen_count += 1
            # triaged afresh (the workflow's actor, after commit): new due times, escalation from the start
            row.triaged_at = row.acknowledged_at = row.next_escalation_at = None
            row.escalation_steps_fired = 0
            self._publish(topics.REOPENED, row)
        elif (row.severity, row.fingerprint) != before:
            if change.new_occurrence:
                self._activity(row, "occurred", row.status, row.status, finding.finding.explanation)
            self._publish(topics.UPDATED, row)

    def _fill(self, row: ShipmentException, finding: RuledFinding, *, new_occurrence: bool) -> None:
        row.category = finding.category
        row.severity = finding.severity
        row.priority_score = finding.priority_score
        row.rule_id = finding.rule.id
        row.rule_version = finding.rule.version
        row.explanation = finding.finding.explanation
        row.evidence = finding.evidence
        row.fingerprint = finding.finding.fingerprint
        row.last_seen_at = self.now
        if new_occurrence:
            row.occurrences = (row.occurrences or 0) + 1

    async def open_groups(self, causes: Iterable[Cause | None]) -> None:
        """The open group of each cause, created where missing, in one statement. Rows are written in key
        order, so two evaluations that share causes wait for each other instead of deadlocking."""
        wanted = {(c.kind, c.key): c for c in causes if c is not None}
        if not wanted:
            return
        keys = sorted(wanted)
        rows = await self.session.execute(
            _OPEN_GROUPS,
            {
                "tenant_id": self.scope.tenant_id,
                "now": self.now,
                "kinds": [kind for kind, _ in keys],
                "keys": [key for _, key in keys],
                "titles": [wanted[k].title for k in keys],
            },
        )
        for row in rows:
            self.groups[(row.cause_kind, row.cause_key)] = (row.id, row.snoozed_until)

    def _activity(
        self, row: ShipmentException, kind: str, before: str | None, after: str | None, note: str | None
    ) -> None:
        self.activities.append(
            {
                "tenant_id": self.scope.tenant_id,
                "id": uuid.uuid4(),
                "exception_id": row.id,
                "actor_kind": "system",
                "kind": kind,
                "from_status": before,
                "to_status": after,
                "note": note,
                "data": {"fingerprint": row.fingerprint, "severity": row.severity},
                "created_at": self.now,
            }
        )

    def _publish(self, topic: str, row: ShipmentException) -> None:
        if row.shadow:
            return  # shadow findings are recorded for comparison, never announced
        self.outbox.append((topic, topics.base_payload(row)))

    async def flush(self) -> None:
        await self.session.flush()  # exceptions first: activities point at them
        if self.activities:
            await self.session.execute(insert(ExceptionActivity), self.activities)
        await publish_all(self.session, self.scope, self.outbox)


# --- the sweep -----------------------------------------------------------------------------------------


async def sweep(
    session: AsyncSession, scope: TenantScope, *, now: dt.datetime, limit: int = SWEEP_BATCH
) -> EvaluationReport:
    """Evaluate up to ``limit`` shipments whose ``next_check_at`` is due. Its cost follows the due rows
    (an index range scan), not the number of shipments; concurrent sweeps skip each other's rows."""
    due = await repository.due_shipments(session, scope, now, limit)
    return await evaluate_shipments(session, scope, due, now=now)


# --- notices and documents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeDraft:
    cause: str
    title: str
    location_locode: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    description: str = ""
    source: str = "api"


def _check_notice(draft: NoticeDraft) -> None:
    if draft.cause not in set(NoticeCause):
        raise DetectionError(f"cause: {draft.cause!r} is not one of {', '.join(NoticeCause)}")
    if not draft.title.strip() or len(draft.title) > 200:
        raise DetectionError("title: needs 1-200 characters")
    if not (
        len(draft.location_locode) == 5
        and draft.location_locode.isalnum()
        and draft.location_locode.isupper()
    ):
        raise DetectionError(f"locationLocode: {draft.location_locode!r} is not a UN/LOCODE")
    _check_aware("startsAt", draft.starts_at)
    _check_aware("endsAt", draft.ends_at)
    if draft.ends_at <= draft.starts_at:
        raise DetectionError("endsAt: must be after startsAt")


async def create_notice(session: AsyncSession, scope: TenantScope, draft: NoticeDraft) -> DisruptionNotice:
    """A tenant's disruption notice; the shipments passing its place are re-checked at once (outbox)."""
    _check_notice(draft)
    notice = DisruptionNotice(tenant_id=scope.tenant_id, **_notice_fields(draft))
    session.add(notice)
    await session.flush()
    await request_evaluation(
        session, scope, await repository.shipments_passing(session, scope, notice.location_locode)
    )
    return notice


async def create_global_notice(session: AsyncSession, draft: NoticeDraft) -> GlobalDisruptionNotice:
    """A platform-wide notice. Every tenant's shipments passing there are re-checked by the next sweep of
    each tenant (``mark_passing_due``), since no single transaction may touch several tenants."""
    _check_notice(draft)
    notice = GlobalDisruptionNotice(**_notice_fields(draft))
    session.add(notice)
    await session.flush()
    return notice


def _notice_fields(draft: NoticeDraft) -> dict[str, Any]:
    return {
        "cause": draft.cause,
        "title": draft.title.strip(),
        "description": draft.description,
        "location_locode": draft.location_locode,
        "starts_at": draft.starts_at,
        "ends_at": draft.ends_at,
        "source": draft.source,
    }


async def mark_passing_due(session: AsyncSession, scope: TenantScope, locode: str, now: dt.datetime) -> int:
    """Make this tenant's unfinished shipments passing ``locode`` due now (a global notice was created)."""
    ids = await repository.shipments_passing(session, scope, locode)
    if ids:
        await session.execute(
            text("UPDATE shipment SET next_check_at = :now WHERE tenant_id = :tenant_id AND id = ANY(:ids)"),
            {"now": now, "tenant_id": scope.tenant_id, "ids": ids},
        )
    return len(ids)


async def record_document(
    session: AsyncSession,
    scope: TenantScope,
    shipment_id: uuid.UUID,
    document_type: str,
    *,
    received_at: dt.datetime,
    source: str = "api",
    reference: str | None = None,
) -> ShipmentDocument:
    """A document received for a shipment (the latest receipt of a type wins); the shipment is re-checked."""
    _check_aware("receivedAt", received_at)
    kind = document_type.strip().lower()
    if not kind or len(kind) > 48 or not kind.replace("_", "").isalnum():
        raise DetectionError(f"documentType: {document_type!r} must be 1-48 letters, digits or underscores")
    shipment = await session.execute(
        scoped(select(Shipment.id), Shipment, scope).where(Shipment.id == shipment_id)
    )
    if shipment.scalar_one_or_none() is None:
        raise DetectionNotFound(f"shipmentId: shipment {shipment_id} not found")
    existing = (
        await session.execute(
            scoped(select(ShipmentDocument), ShipmentDocument, scope).where(
                ShipmentDocument.shipment_id == shipment_id, ShipmentDocument.document_type == kind
            )
        )
    ).scalar_one_or_none()
    document = existing or ShipmentDocument(
        tenant_id=scope.tenant_id, shipment_id=shipment_id, document_type=kind
    )
    document.received_at, document.source, document.reference = received_at, source, reference
    session.add(document)
    await session.flush()
    await request_evaluation(session, scope, [shipment_id])
    return document


async def request_evaluation(
    session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID]
) -> None:
    """Ask for these shipments to be evaluated after this transaction commits (an outbox row per shipment,
    the same topic capture writes after a timeline change)."""
    changes = [(TIMELINE_CHANGED, {"shipment_id": str(i), "reason": REEVALUATE_REASON}) for i in shipment_ids]
    await publish_all(session, scope, changes)


# --- snooze --------------------------------------------------------------------------------------------


async def snooze_group(
    session: AsyncSession,
    scope: TenantScope,
    group_id: uuid.UUID,
    until: dt.datetime,
    *,
    now: dt.datetime,
    actor_user_id: uuid.UUID | None = None,
) -> int:
    """Snooze every open exception of a cause group until ``until`` — and the ones that join it meanwhile."""
    _check_future_until(until, now)
    group = (
        await session.execute(
            scoped(select(ExceptionGroup), ExceptionGroup, scope).where(ExceptionGroup.id == group_id)
        )
    ).scalar_one_or_none()
    if group is None:
        raise DetectionNotFound(f"groupId: group {group_id} not found")
    group.snoozed_until = until
    members = (
        await session.execute(
            scoped(select(ShipmentException), ShipmentException, scope).where(
                ShipmentException.group_id == group_id,
                ShipmentException.status.in_([ExceptionStatus.OPEN, ExceptionStatus.REOPENED]),
            )
        )
    ).scalars()
    snoozed = []
    for row in members:
        note = f"group snoozed until {until.isoformat()}"
        _snooze(session, scope, row, until, now, actor_user_id, note, {"group_id": str(group_id)})
        snoozed.append(row.shipment_id)
    await _due_by(session, scope, snoozed, until)
    await session.flush()
    return len(snoozed)


async def snooze_exception(
    session: AsyncSession,
    scope: TenantScope,
    exception_id: uuid.UUID,
    until: dt.datetime,
    *,
    now: dt.datetime,
    actor_user_id: uuid.UUID | None = None,
    note: str | None = None,
) -> ShipmentException:
    """Quiet an open exception until ``until``; if the condition still holds then, it opens again."""
    _check_future_until(until, now)
    row = (
        await session.execute(
            scoped(select(ShipmentException), ShipmentException, scope).where(
                ShipmentException.id == exception_id
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise DetectionNotFound(f"id: exception {exception_id} not found")
    if row.status in CLOSED_STATUSES:
        raise DetectionError(f"id: a {row.status} exception cannot be snoozed")
    _snooze(session, scope, row, until, now, actor_user_id, note, {"until": until.isoformat()})
    await _due_by(session, scope, [row.shipment_id], until)
    await session.flush()
    return row


def _check_future_until(until: dt.datetime, now: dt.datetime) -> None:
    _check_aware("until", until)
    if until <= now:
        raise DetectionError("until: must be in the future")


def _snooze(
    session: AsyncSession,
    scope: TenantScope,
    row: ShipmentException,
    until: dt.datetime,
    now: dt.datetime,
    actor_user_id: uuid.UUID | None,
    note: str | None,
    data: dict[str, Any],
) -> None:
    after = lifecycle.transition(row.status, Transition.SNOOZE, by_person=actor_user_id is not None)
    session.add(
        ExceptionActivity(
            tenant_id=scope.tenant_id,
            exception_id=row.id,
            actor_kind="user" if actor_user_id else "system",
            actor_user_id=actor_user_id,
            kind="snoozed",
            from_status=row.status,
            to_status=after,
            note=note,
            data=data,
            created_at=now,
        )
    )
    row.status, row.snoozed_until = after, until
    row.next_escalation_at = None  # a snoozed exception does not escalate; waking it resumes the clock


async def _due_by(
    session: AsyncSession, scope: TenantScope, shipment_ids: Sequence[uuid.UUID], at: dt.datetime
) -> None:
    """Make sure the sweep looks at these shipments by ``at`` (when a snooze ends); an earlier due time
    stays."""
    if shipment_ids:
        await session.execute(
            text(
                "UPDATE shipment SET next_check_at = LEAST(coalesce(next_check_at, :at), :at) "
                "WHERE tenant_id = :tenant_id AND id = ANY(:ids)"
            ),
            {"at": at, "tenant_id": scope.tenant_id, "ids": list(shipment_ids)},
        )


# --- backtest ------------------------------------------------------------------------------------------

MAX_BACKTEST_SHIPMENTS = 5_000
MAX_BACKTEST_CHECKPOINTS = 400


@dataclass(frozen=True)
class BacktestExample:
    shipment_id: uuid.UUID
    exception_type: str
    key: str | None
    severity: str
    first_raised_at: dt.datetime
    explanation: str


@dataclass
class BacktestReport:
    """What a rule would have raised over a past window (nothing is written)."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    checkpoints: int
    shipments: int
    raised: Counter[str] = field(default_factory=Counter)  # by exception type
    by_severity: Counter[str] = field(default_factory=Counter)
    current_raised: Counter[str] = field(default_factory=Counter)  # the version in force, same window
    examples: list[BacktestExample] = field(default_factory=list)


async def backtest(
    session: AsyncSession,
    scope: TenantScope,
    candidate: RuleDraft,
    *,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    step: dt.timedelta = dt.timedelta(hours=6),
    max_examples: int = 10,
) -> BacktestReport:
    """Replay detection with ``candidate`` over ``[starts_at, ends_at]``, every ``step``, on the shipments
    active then, each seen as it was known at the checkpoint (events and documents received by then).

    Counted once per (shipment, type, key), at the first checkpoint that raises it, so the figures are what
    people would have seen opened — for the candidate and for the version in force now (for comparison).
    The candidate runs as if enabled, whatever its mode.
    """
    config = check_rule(candidate)
    _check_aware("startsAt", starts_at)
    _check_aware("endsAt", ends_at)
    if ends_at <= starts_at:
        raise DetectionError("endsAt: must be after startsAt")
    if step < dt.timedelta(minutes=15):
        raise DetectionError("step: at least 15 minutes")
    # counted before they are built: a wide window with a short step must not allocate millions first
    whole_steps = (ends_at - starts_at) // step
    count = whole_steps + 1 + (starts_at + whole_steps * step < ends_at)
    if count > MAX_BACKTEST_CHECKPOINTS:
        raise DetectionError(f"step: {count} checkpoints; at most {MAX_BACKTEST_CHECKPOINTS} (widen step)")
    checkpoints = [starts_at + i * step for i in range(whole_steps + 1)]
    if checkpoints[-1] < ends_at:
        checkpoints.append(ends_at)
    candidate_config = RuleConfig(
        None, config.exception_type, config.name, 0, RuleMode.ENABLED, config.parameters, config.scope
    )
    # read, never seeded: a backtest writes nothing, even for a tenant that has no rules yet
    in_force = await repository.rule_configs(session, scope) or default_rule_configs()
    current = [
        RuleConfig(r.id, r.exception_type, r.name, r.version, RuleMode.ENABLED, r.parameters, r.scope)
        for r in in_force
        if r.exception_type == config.exception_type and r.name == config.name and r.mode != RuleMode.DISABLED
    ]
    ids = await repository.shipments_active_between(
        session, scope, starts_at, ends_at, limit=MAX_BACKTEST_SHIPMENTS
    )
    report = BacktestReport(starts_at, ends_at, len(checkpoints), len(ids))
    seen: set[tuple[uuid.UUID, str, str | None]] = set()
    seen_current: set[tuple[uuid.UUID, str, str | None]] = set()
    for at in checkpoints:
        for batch in range(0, len(ids), SWEEP_BATCH):
            for state in await repository.load_states(
                session, scope, ids[batch : batch + SWEEP_BATCH], as_of=at
            ):
                if state.created_at > at:
                    continue
                for finding in evaluate(state, [candidate_config], at).findings:
                    key = (state.id, finding.finding.type, finding.finding.key)
                    if key in seen:
                        continue
                    seen.add(key)
                    report.raised[finding.finding.type] += 1
                    report.by_severity[finding.severity] += 1
                    if len(report.examples) < max_examples:
                        report.examples.append(
                            BacktestExample(
                                state.id,
                                finding.finding.type,
                                finding.finding.key,
                                finding.severity,
                                at,
                                finding.finding.explanation,
                            )
                        )
                if current:
                    for finding in evaluate(state, current, at).findings:
                        key = (state.id, finding.finding.type, finding.finding.key)
                        if key not in seen_current:
                            seen_current.add(key)
                            report.current_raised[finding.finding.type] += 1
    return report
