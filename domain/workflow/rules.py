"""The exception workflow as pure functions: the lifecycle table, time in state, due times, auto-assignment,
playbook choice and authorisation, escalation steps, resolution vocabularies. No I/O; the clock is passed in.
"""

from __future__ import annotations

import datetime as dt
import statistics
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from domain.exceptions.models import ExceptionStatus, Severity
from domain.exceptions.taxonomy import ExceptionType
from domain.tenancy.models import SlaTier

S = ExceptionStatus

# --- the lifecycle -------------------------------------------------------------------------------------


class Transition(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    START = "start"  # someone works on it: in_progress
    SNOOZE = "snooze"
    UNSNOOZE = "unsnooze"  # the snooze ended (or a person woke it early)
    RESOLVE = "resolve"
    AUTO_RESOLVE = "auto_resolve"  # detection: the condition cleared
    REOPEN = "reopen"
    CLOSE = "close"


_WORKING = (S.OPEN, S.REOPENED, S.ACKNOWLEDGED, S.IN_PROGRESS)
_FINISHED = (S.RESOLVED, S.AUTO_RESOLVED)

# (from, transition) -> to. Anything not listed is refused. Closed is final for people; detection may still
# reopen a recently closed exception whose condition came back (a new fact, not a change of mind).
TRANSITIONS: Mapping[tuple[ExceptionStatus, Transition], ExceptionStatus] = {
    **{(s, Transition.ACKNOWLEDGE): S.ACKNOWLEDGED for s in (S.OPEN, S.REOPENED)},
    **{(s, Transition.START): S.IN_PROGRESS for s in (S.OPEN, S.REOPENED, S.ACKNOWLEDGED)},
    **{(s, Transition.SNOOZE): S.SNOOZED for s in (*_WORKING, S.SNOOZED)},  # again: a new end
    (S.SNOOZED, Transition.UNSNOOZE): S.OPEN,
    **{(s, Transition.RESOLVE): S.RESOLVED for s in (*_WORKING, S.SNOOZED)},
    **{(s, Transition.AUTO_RESOLVE): S.AUTO_RESOLVED for s in (*_WORKING, S.SNOOZED)},
    **{(s, Transition.REOPEN): S.REOPENED for s in (*_FINISHED, S.CLOSED)},
    **{(s, Transition.CLOSE): S.CLOSED for s in _FINISHED},
}
# transitions only the system makes: a person resolves (with a structured resolution), detection auto-resolves
SYSTEM_ONLY = frozenset({Transition.AUTO_RESOLVE})
# a person may reopen what is resolved, not what is closed (closed means archived)
PERSON_REFUSED = frozenset({(S.CLOSED, Transition.REOPEN)})


class InvalidTransition(ValueError):
    """A transition the lifecycle table does not allow from the exception's current status."""

    def __init__(self, status: str, transition: Transition, *, by_person: bool) -> None:
        self.status = status
        self.transition = transition
        allowed = sorted(t for (s, t) in TRANSITIONS if s == status and _allowed_for(s, t, by_person))
        who = "a person" if by_person else "the system"
        super().__init__(
            f"status: {who} cannot {transition.value} an exception that is {status}"
            + (f" (allowed: {', '.join(allowed)})" if allowed else " (no transition allowed)")
        )


def _allowed_for(status: ExceptionStatus, transition: Transition, by_person: bool) -> bool:
    if not by_person:
        return True
    return transition not in SYSTEM_ONLY and (status, transition) not in PERSON_REFUSED


def transition(status: str, step: Transition, *, by_person: bool) -> ExceptionStatus:
    """The status after ``step`` from ``status``, or :class:`InvalidTransition`."""
    current = ExceptionStatus(status)
    after = TRANSITIONS.get((current, step))
    if after is None or not _allowed_for(current, step, by_person):
        raise InvalidTransition(current, step, by_person=by_person)
    return after


@dataclass(frozen=True)
class StatusChange:
    at: dt.datetime
    to_status: str


def time_in_states(
    changes: Iterable[StatusChange], now: dt.datetime, *, until: dt.datetime | None = None
) -> dict[str, dt.timedelta]:
    """Seconds spent in each status, from the activity log's status changes (in any order). The last status
    runs until ``until`` (the exception's close) or ``now``."""
    ordered = sorted(changes, key=lambda c: c.at)
    spent: dict[str, dt.timedelta] = {}
    for current, following in zip(ordered, [*ordered[1:], None], strict=True):
        end = following.at if following else (until or now)
        spent[current.to_status] = spent.get(current.to_status, dt.timedelta()) + max(
            end - current.at, dt.timedelta()
        )
    return spent


# --- due times -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseTarget:
    """How soon an exception must be acknowledged and resolved: per severity, optionally per SLA tier."""

    severity: Severity
    sla_tier: SlaTier | None
    respond_within: dt.timedelta
    resolve_within: dt.timedelta


_H = dt.timedelta(hours=1)
DEFAULT_TARGETS: tuple[ResponseTarget, ...] = (
    ResponseTarget(Severity.CRITICAL, None, 0.25 * _H, 4 * _H),
    ResponseTarget(Severity.HIGH, None, 1 * _H, 24 * _H),
    ResponseTarget(Severity.MEDIUM, None, 4 * _H, 72 * _H),
    ResponseTarget(Severity.LOW, None, 24 * _H, 168 * _H),
    # platinum customers: twice as fast
    ResponseTarget(Severity.CRITICAL, SlaTier.PLATINUM, 0.125 * _H, 2 * _H),
    ResponseTarget(Severity.HIGH, SlaTier.PLATINUM, 0.5 * _H, 12 * _H),
    ResponseTarget(Severity.MEDIUM, SlaTier.PLATINUM, 2 * _H, 36 * _H),
    ResponseTarget(Severity.LOW, SlaTier.PLATINUM, 12 * _H, 84 * _H),
)


def response_target(targets: Sequence[ResponseTarget], severity: str, sla_tier: str) -> ResponseTarget:
    """The tenant's target for this severity and tier (a tier-specific one wins); the default otherwise."""
    for pool in (targets, DEFAULT_TARGETS):
        exact = [t for t in pool if t.severity == severity and t.sla_tier == sla_tier]
        general = [t for t in pool if t.severity == severity and t.sla_tier is None]
        if exact or general:
            return (exact or general)[0]
    raise ValueError(f"severity: no response target for {severity!r}")


def due_times(target: ResponseTarget, opened_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(respond by, resolve by) for an exception opened (or reopened) at ``opened_at``."""
    return opened_at + target.respond_within, opened_at + target.resolve_within


# --- shipment facts the workflow decides on -------------------------------------------------------------


class ValueBand(StrEnum):
    LOW = "low"  # under 10,000 in the declared currency, or no declared value
    MEDIUM = "medium"  # 10,000 to 50,000
    HIGH = "high"  # 50,000 and more


def value_band(value: Decimal | None) -> ValueBand:
    if value is not None and value >= 50_000:
        return ValueBand.HIGH
    if value is not None and value >= 10_000:
        return ValueBand.MEDIUM
    return ValueBand.LOW


@dataclass(frozen=True)
class CaseFacts:
    """What triage, playbooks and escalation know of an exception and its shipment."""

    exception_id: uuid.UUID
    exception_type: str
    category: str
    severity: str
    status: str
    account_id: uuid.UUID
    sla_tier: str
    mode: str
    origin_locode: str | None
    destination_locode: str | None
    declared_value: Decimal | None
    declared_value_currency: str | None
    opened_at: dt.datetime
    acknowledged_at: dt.datetime | None = None
    assignee_user_id: uuid.UUID | None = None
    assignee_team_id: uuid.UUID | None = None


def facts_of(exception: Any, shipment: Any, sla_tier: str) -> CaseFacts:
    """The facts of a ``ShipmentException`` row and its ``Shipment`` row (typed loosely: rows or views)."""
    return CaseFacts(
        exception_id=exception.id,
        exception_type=exception.exception_type,
        category=exception.category,
        severity=exception.severity,
        status=exception.status,
        account_id=exception.account_id,
        sla_tier=sla_tier,
        mode=shipment.mode,
        origin_locode=shipment.origin_locode,
        destination_locode=shipment.destination_locode,
        declared_value=shipment.declared_value,
        declared_value_currency=shipment.declared_value_currency,
        opened_at=exception.first_seen_at,
        acknowledged_at=exception.acknowledged_at,
        assignee_user_id=exception.assignee_user_id,
        assignee_team_id=exception.assignee_team_id,
    )


# what a shipper sees of an exception's history: status changes (without their notes) and the comments
# meant for them; assignment, escalation, actions and internal comments stay inside the tenant
_SHIPPER_KINDS = frozenset(
    {"opened", "reopened", "auto_resolved", "acknowledge", "start", "resolve", "close"}
)


def shown_to_shipper(kind: str, customer_visible: bool) -> tuple[bool, bool]:
    """(show the entry, show its note) for a shipper."""
    if customer_visible:
        return True, True
    return kind in _SHIPPER_KINDS, False


HistoryEntry = tuple[str, str | None, dt.datetime, Mapping[str, Any]]  # (kind, to_status, at, data)


@dataclass(frozen=True)
class Opening:
    """The current opening of an exception: when it began (its last reopening, else its first entry) and
    the actions recorded since, each once, in order."""

    opened_at: dt.datetime | None
    actions: tuple[str, ...]


def current_opening(entries: Sequence[HistoryEntry]) -> Opening:
    """Entries written in one transaction share their time, so the opening is found by time (the last
    reopening, else the earliest entry), not by position, and its actions are those from then on."""
    if not entries:
        return Opening(None, ())
    reopened = [at for _, to_status, at, _ in entries if to_status == ExceptionStatus.REOPENED]
    opened_at = max(reopened) if reopened else min(at for _, _, at, _ in entries)
    taken = [
        str(data["action"])
        for kind, _, at, data in sorted(entries, key=lambda e: e[2])
        if kind == "action" and at >= opened_at
    ]
    return Opening(opened_at, tuple(dict.fromkeys(taken)))


# --- auto-assignment -----------------------------------------------------------------------------------

ASSIGNMENT_MATCH_KEYS = ("categories", "exception_types", "account_ids", "modes", "lanes", "severities")


@dataclass(frozen=True)
class AssignmentRuleView:
    """Send matching exceptions to a team and/or a user. ``match`` lists allowed values per key (an absent
    key matches anything); lanes are ``"ORIGN-DESTN"`` pairs of UN/LOCODEs, ``*`` for either side."""

    id: uuid.UUID
    position: int
    match: Mapping[str, Sequence[str]]
    team_id: uuid.UUID | None
    user_id: uuid.UUID | None


def _lane_matches(lanes: Sequence[str], facts: CaseFacts) -> bool:
    for lane in lanes:
        origin, _, destination = lane.partition("-")
        if origin in ("*", facts.origin_locode) and destination in ("*", facts.destination_locode):
            return True
    return False


def assignment_matches(match: Mapping[str, Sequence[str]], facts: CaseFacts) -> bool:
    values = {
        "categories": facts.category,
        "exception_types": facts.exception_type,
        "account_ids": str(facts.account_id),
        "modes": facts.mode,
        "severities": facts.severity,
    }
    for key, allowed in match.items():
        if key == "lanes":
            if not _lane_matches(allowed, facts):
                return False
        elif values[key] not in allowed:
            return False
    return True


def choose_assignment(rules: Iterable[AssignmentRuleView], facts: CaseFacts) -> AssignmentRuleView | None:
    """The first rule (by position) that matches, or none."""
    return next(
        (r for r in sorted(rules, key=lambda r: r.position) if assignment_matches(r.match, facts)), None
    )


# --- playbooks -----------------------------------------------------------------------------------------


class ActionCode(StrEnum):
    CONTACT_CARRIER = "contact_carrier"
    NOTIFY_CUSTOMER = "notify_customer"
    REQUEST_DOCUMENTS = "request_documents"
    RESHIP_EXPEDITED = "reship_expedited"
    REBOOK = "rebook"
    FILE_CLAIM = "file_claim"
    CONTACT_CUSTOMS_BROKER = "contact_customs_broker"
    VERIFY_ADDRESS = "verify_address"
    ARRANGE_INSPECTION = "arrange_inspection"
    UPDATE_ESTIMATE = "update_estimate"
    CORRECT_DATA = "correct_data"
    DISPUTE_INVOICE = "dispute_invoice"
    ESCALATE_TO_CARRIER_ACCOUNT_MANAGER = "escalate_to_carrier_account_manager"


# what an automatic action does by itself: the e-mail template it sends to the shipper
AUTOMATIC_ACTIONS: Mapping[ActionCode, str] = {
    ActionCode.NOTIFY_CUSTOMER: "exception_update",
    ActionCode.REQUEST_DOCUMENTS: "documents_requested",
}


@dataclass(frozen=True)
class ActionPolicy:
    """When an automatic action may run without a person: below a shipment value and/or for some tiers."""

    max_value: Decimal | None = None  # in the shipment's declared currency; no declared value passes
    tiers: frozenset[str] | None = None  # None: every tier
    severities: frozenset[str] | None = None  # None: every severity


@dataclass(frozen=True)
class PlaybookAction:
    code: ActionCode
    title: str
    automatic: bool = False
    policy: ActionPolicy = field(default_factory=ActionPolicy)


@dataclass(frozen=True)
class PlaybookView:
    id: uuid.UUID | None  # None for a built-in default
    name: str
    exception_type: str
    sla_tier: str | None
    value_band: str | None
    actions: tuple[PlaybookAction, ...]


def choose_playbook(playbooks: Iterable[PlaybookView], facts: CaseFacts) -> PlaybookView | None:
    """The most specific playbook for the exception's type: tier and value band both, then either, then
    neither; a tenant's playbook wins over the built-in one of the same specificity."""
    band = value_band(facts.declared_value)
    candidates = [
        p
        for p in playbooks
        if p.exception_type == facts.exception_type
        and p.sla_tier in (None, facts.sla_tier)
        and p.value_band in (None, band)
    ]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda p: (p.sla_tier is not None) + (p.value_band is not None) + 0.5 * (p.id is not None),
    )


@dataclass(frozen=True)
class Authorisation:
    allowed: bool
    reason: str


def authorise(action: PlaybookAction, facts: CaseFacts) -> Authorisation:
    """May this automatic action run by itself for this exception? The reason says why (or why not)."""
    if not action.automatic:
        return Authorisation(False, f"{action.code.value} is not automatic: a person takes it")
    policy = action.policy
    if policy.tiers is not None and facts.sla_tier not in policy.tiers:
        return Authorisation(
            False, f"the {facts.sla_tier} tier is not among {', '.join(sorted(policy.tiers))}"
        )
    if policy.severities is not None and facts.severity not in policy.severities:
        return Authorisation(
            False, f"severity {facts.severity} is not among {', '.join(sorted(policy.severities))}"
        )
    value = facts.declared_value
    if policy.max_value is not None and value is not None and value > policy.max_value:
        currency = f" {facts.declared_value_currency}" if facts.declared_value_currency else ""
        return Authorisation(
            False, f"shipment value {value}{currency} is above the limit of {policy.max_value}{currency}"
        )
    return Authorisation(True, "within the playbook's policy")


def _steps(*items: tuple[ActionCode, str] | PlaybookAction) -> tuple[PlaybookAction, ...]:
    return tuple(i if isinstance(i, PlaybookAction) else PlaybookAction(i[0], i[1]) for i in items)


_NOTIFY_SMALL = PlaybookAction(
    ActionCode.NOTIFY_CUSTOMER,
    "Tell the customer, with the new estimate",
    automatic=True,
    policy=ActionPolicy(max_value=Decimal(50_000)),
)
_REQUEST_DOCS = PlaybookAction(
    ActionCode.REQUEST_DOCUMENTS, "Ask the shipper for the missing documents", automatic=True
)
_A = ActionCode
E = ExceptionType
# built-in playbooks, one per exception type (a test checks every type has one); tenants add their own
DEFAULT_PLAYBOOK_ACTIONS: Mapping[ExceptionType, tuple[PlaybookAction, ...]] = {
    E.MILESTONE_LATE: _steps((_A.CONTACT_CARRIER, "Ask the carrier for a firm new time"), _NOTIFY_SMALL),
    E.MILESTONE_MISSED: _steps((_A.CONTACT_CARRIER, "Ask the carrier whether it happened"), _NOTIFY_SMALL),
    E.ETA_SLIPPAGE: _steps(
        (_A.CONTACT_CARRIER, "Confirm the new estimate with the carrier"),
        _NOTIFY_SMALL,
        (_A.UPDATE_ESTIMATE, "Record the confirmed estimate"),
    ),
    E.SLA_AT_RISK: _steps(
        (_A.CONTACT_CARRIER, "Confirm the delivery estimate with the carrier"),
        _NOTIFY_SMALL,
        (_A.RESHIP_EXPEDITED, "Reship expedited if the promise cannot be kept"),
    ),
    E.NO_MOVEMENT: _steps(
        (_A.CONTACT_CARRIER, "Ask the carrier for the shipment's whereabouts"),
        (_A.UPDATE_ESTIMATE, "Record the new estimate"),
    ),
    E.LOST_AFTER_HANDOFF: _steps(
        (_A.CONTACT_CARRIER, "Ask the receiving carrier to confirm the hand-off"),
        (_A.ESCALATE_TO_CARRIER_ACCOUNT_MANAGER, "Escalate to the carrier's account manager"),
    ),
    E.CUSTOMS_HOLD: _steps(
        (_A.CONTACT_CUSTOMS_BROKER, "Ask the broker what customs needs"), _REQUEST_DOCS, _NOTIFY_SMALL
    ),
    E.DOCUMENTS_MISSING: _steps(_REQUEST_DOCS, (_A.CONTACT_CUSTOMS_BROKER, "Warn the customs broker")),
    E.DAMAGE_REPORTED: _steps(
        (_A.ARRANGE_INSPECTION, "Arrange a survey of the goods"),
        (_A.NOTIFY_CUSTOMER, "Tell the customer"),
        (_A.FILE_CLAIM, "File a claim with the carrier"),
    ),
    E.LOSS_REPORTED: _steps(
        (_A.CONTACT_CARRIER, "Ask the carrier to trace the shipment"),
        (_A.NOTIFY_CUSTOMER, "Tell the customer"),
        (_A.RESHIP_EXPEDITED, "Reship expedited"),
        (_A.FILE_CLAIM, "File a claim with the carrier"),
    ),
    E.DELIVERY_FAILED: _steps(
        (_A.CONTACT_CARRIER, "Arrange a new delivery attempt"),
        (_A.VERIFY_ADDRESS, "Verify the address with the consignee"),
        _NOTIFY_SMALL,
    ),
    E.RETURN_TO_SENDER: _steps(
        (_A.CONTACT_CARRIER, "Ask why it is being returned"), (_A.NOTIFY_CUSTOMER, "Tell the customer")
    ),
    E.ROUTE_DEVIATION: _steps(
        (_A.CONTACT_CARRIER, "Ask the carrier why the route changed"),
        (_A.UPDATE_ESTIMATE, "Record the new estimate"),
    ),
    E.CARRIER_DISRUPTION: _steps(
        (_A.CONTACT_CARRIER, "Ask the carrier for its recovery plan"), _NOTIFY_SMALL, (_A.REBOOK, "Re-book")
    ),
    E.EXTERNAL_DISRUPTION: _steps(
        (_A.UPDATE_ESTIMATE, "Record the new estimate"), _NOTIFY_SMALL, (_A.REBOOK, "Re-book around it")
    ),
    E.DATA_INCONSISTENCY: _steps((_A.CORRECT_DATA, "Correct the mapping or the data")),
}


def default_playbooks() -> list[PlaybookView]:
    return [
        PlaybookView(None, f"Default: {kind.value.replace('_', ' ').lower()}", kind, None, None, actions)
        for kind, actions in DEFAULT_PLAYBOOK_ACTIONS.items()
    ]


# --- escalation ----------------------------------------------------------------------------------------


class EscalationTrigger(StrEnum):
    NOT_ACKNOWLEDGED = "not_acknowledged"  # still unacknowledged this long after the respond-by time
    NOT_RESOLVED = "not_resolved"  # still unresolved this long after the resolve-by time


class EscalationTarget(StrEnum):
    TEAM = "team"  # the assigned team's members
    TEAM_LEAD = "team_lead"  # the assigned team's lead
    MANAGER = "manager"  # the assigned team's manager
    USER = "user"  # a named user
    NAMED_TEAM = "named_team"  # a named team's members


@dataclass(frozen=True)
class EscalationStep:
    trigger: EscalationTrigger
    after: dt.timedelta
    target: EscalationTarget
    target_id: uuid.UUID | None = None  # for USER and NAMED_TEAM


@dataclass(frozen=True)
class EscalationPolicyView:
    id: uuid.UUID | None
    name: str
    severities: frozenset[str] | None  # None: every severity
    steps: tuple[EscalationStep, ...]


DEFAULT_ESCALATION = EscalationPolicyView(
    None,
    "Default: team, then lead, then manager",
    None,
    (
        EscalationStep(EscalationTrigger.NOT_ACKNOWLEDGED, dt.timedelta(0), EscalationTarget.TEAM),
        EscalationStep(
            EscalationTrigger.NOT_ACKNOWLEDGED, dt.timedelta(minutes=30), EscalationTarget.TEAM_LEAD
        ),
        EscalationStep(EscalationTrigger.NOT_RESOLVED, dt.timedelta(0), EscalationTarget.MANAGER),
    ),
)


def choose_escalation_policy(policies: Iterable[EscalationPolicyView], severity: str) -> EscalationPolicyView:
    """A tenant policy naming this severity, else a tenant policy for every severity, else the default."""
    pool = list(policies)
    named = [p for p in pool if p.severities is not None and severity in p.severities]
    general = [p for p in pool if p.severities is None]
    return (named or general or [DEFAULT_ESCALATION])[0]


@dataclass(frozen=True)
class EscalationClock:
    """The exception's escalation state: its due times, whether it was acknowledged, how far it went."""

    status: str
    respond_by: dt.datetime | None
    resolve_by: dt.datetime | None
    acknowledged: bool
    steps_fired: int


def step_due_at(step: EscalationStep, clock: EscalationClock) -> dt.datetime | None:
    """When this step fires if nothing changes, or None when its condition no longer can hold."""
    if step.trigger == EscalationTrigger.NOT_ACKNOWLEDGED:
        if clock.acknowledged or clock.respond_by is None:
            return None
        return clock.respond_by + step.after
    if clock.resolve_by is None:
        return None
    return clock.resolve_by + step.after


_ESCALATING = frozenset({S.OPEN, S.REOPENED, S.ACKNOWLEDGED, S.IN_PROGRESS})


@dataclass(frozen=True)
class EscalationPlan:
    fire: tuple[tuple[int, EscalationStep], ...]  # (step number from 1, step) to fire now, in order
    next_at: dt.datetime | None  # when to look again


def plan_escalation(policy: EscalationPolicyView, clock: EscalationClock, now: dt.datetime) -> EscalationPlan:
    """Which steps fire now and when the next one is due. Steps fire in order, each once; a step whose
    condition no longer holds (acknowledged in time) is passed over. Snoozed and finished exceptions do not
    escalate; the clock resumes when they open again."""
    if clock.status not in _ESCALATING:
        return EscalationPlan((), None)
    fire: list[tuple[int, EscalationStep]] = []
    next_at: dt.datetime | None = None
    for number, step in enumerate(policy.steps, start=1):
        if number <= clock.steps_fired:
            continue
        due = step_due_at(step, clock)
        if due is None:
            continue
        if due <= now:
            fire.append((number, step))
        elif next_at is None or due < next_at:
            next_at = due
    return EscalationPlan(tuple(fire), next_at)


# --- resolution ----------------------------------------------------------------------------------------


class Outcome(StrEnum):
    DELIVERED_LATE = "delivered_late"
    DELIVERED_ON_TIME = "delivered_on_time"
    RESHIPPED = "reshipped"
    REFUNDED = "refunded"
    CLAIM_FILED = "claim_filed"
    CUSTOMER_ACCEPTED_DELAY = "customer_accepted_delay"
    REROUTED = "rerouted"
    DOCUMENTS_PROVIDED = "documents_provided"
    CUSTOMS_CLEARED = "customs_cleared"
    DATA_CORRECTED = "data_corrected"
    CANCELLED = "cancelled"
    FALSE_POSITIVE = "false_positive"


class RootCause(StrEnum):
    CARRIER = "carrier"
    SHIPPER = "shipper"
    CONSIGNEE = "consignee"
    CUSTOMS = "customs"
    WEATHER = "weather"
    INTERNAL = "internal"
    DATA = "data"


@dataclass(frozen=True)
class ResolutionDraft:
    outcome: str | None
    root_cause: str | None
    action_codes: Sequence[str] = ()
    cost_amount: Decimal | None = None
    cost_currency: str | None = None
    customer_notified: bool = False
    note: str | None = None


MAX_NOTE = 4_000


def check_resolution(draft: ResolutionDraft) -> list[str]:
    """Every problem with a resolution, each naming its field; an empty list means it may be stored. A note
    may accompany the codes but never replaces them."""
    problems: list[str] = []
    if not draft.outcome:
        problems.append(f"outcome: required, one of {', '.join(Outcome)}")
    elif draft.outcome not in Outcome.__members__.values():
        problems.append(f"outcome: unknown code {draft.outcome!r}; one of {', '.join(Outcome)}")
    if not draft.root_cause:
        problems.append(f"rootCause: required, one of {', '.join(RootCause)}")
    elif draft.root_cause not in RootCause.__members__.values():
        problems.append(f"rootCause: unknown code {draft.root_cause!r}; one of {', '.join(RootCause)}")
    for index, code in enumerate(draft.action_codes):
        if code not in ActionCode.__members__.values():
            problems.append(f"actionCodes[{index}]: unknown action {code!r}")
    if len(set(draft.action_codes)) != len(draft.action_codes):
        problems.append("actionCodes: an action is listed twice")
    if draft.cost_amount is not None:
        if draft.cost_amount < 0:
            problems.append("cost.amount: must not be negative")
        if (
            not draft.cost_currency
            or len(draft.cost_currency) != 3
            or not draft.cost_currency.isalpha()
            or not draft.cost_currency.isupper()
        ):
            problems.append(
                "cost.currency: a three-letter ISO 4217 code (e.g. USD) is required with an amount"
            )
    elif draft.cost_currency is not None:
        problems.append("cost.amount: required with a currency")
    if draft.note is not None and len(draft.note) > MAX_NOTE:
        problems.append(f"note: at most {MAX_NOTE} characters (got {len(draft.note)})")
    return problems


# --- metrics -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedCase:
    exception_type: str
    rule_id: uuid.UUID | None
    rule_version: int | None
    outcome: str
    action_codes: tuple[str, ...]
    time_to_resolve: dt.timedelta


@dataclass(frozen=True)
class Median:
    key: str
    count: int
    median: dt.timedelta


def median_time_to_resolve(cases: Iterable[ResolvedCase], *, by: str) -> list[Median]:
    """Median time to resolve per exception type (``by="type"``) or per action taken (``by="action"``; a
    case counts once for each action it lists), sorted by key."""
    groups: dict[str, list[float]] = {}
    for case in cases:
        keys = (case.exception_type,) if by == "type" else case.action_codes
        for key in keys:
            groups.setdefault(key, []).append(case.time_to_resolve.total_seconds())
    return [
        Median(key, len(values), dt.timedelta(seconds=statistics.median(values)))
        for key, values in sorted(groups.items())
    ]


@dataclass(frozen=True)
class Precision:
    rule_id: uuid.UUID
    rule_version: int
    resolved: int
    false_positives: int

    @property
    def precision(self) -> float:
        """Share of person-resolved exceptions that were real (1 - the false-positive share)."""
        return 1 - self.false_positives / self.resolved if self.resolved else 1.0


def precision_by_rule(cases: Iterable[ResolvedCase]) -> list[Precision]:
    counts: dict[tuple[uuid.UUID, int], list[int]] = {}
    for case in cases:
        if case.rule_id is None or case.rule_version is None:
            continue
        tally = counts.setdefault((case.rule_id, case.rule_version), [0, 0])
        tally[0] += 1
        tally[1] += case.outcome == Outcome.FALSE_POSITIVE
    return [
        Precision(rule, version, n, fp)
        for (rule, version), (n, fp) in sorted(counts.items(), key=lambda i: (str(i[0][0]), i[0][1]))
    ]


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
