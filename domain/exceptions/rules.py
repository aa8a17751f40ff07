"""Detection as pure functions: ``evaluate(state, rules, now) -> Evaluation``. No I/O, the clock is passed in.

Each exception type has one rule function ``(state, parameters, now) -> Check``: the findings it makes now,
and the earliest time its answer could change without a new event (``recheck_at``: a plan plus grace
passing, a silence growing too long). The engine picks the rule in force per type for the shipment (the most
specific scope wins; shadow rules run beside it), adds rule, version, severity and priority to each finding,
and returns the earliest recheck as the shipment's ``next_check_at``.

A finding's ``fingerprint`` hashes the facts behind it (events, times, thresholds) but not ``now``: the same
facts evaluated again are the same occurrence, so re-running an evaluation changes nothing but last-seen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.exceptions.models import Category, RuleMode, Severity
from domain.exceptions.state import EventView, MilestoneView, ShipmentState
from domain.exceptions.taxonomy import TYPES, ExceptionType
from domain.shipments.models import MilestoneCode, ShipmentStatus
from domain.shipments.timeline import UNPLANNED_SEQUENCE_START
from domain.tenancy.models import SlaTier
from domain.tracking.canonical import Signal
from domain.tracking.rules import MOVEMENT_CODES
from domain.workflow import topics

HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Cause:
    """What several shipments' exceptions may share, so the cause is handled once."""

    kind: str  # vessel_voyage, port, carrier, notice
    key: str
    title: str


@dataclass(frozen=True)
class Finding:
    type: ExceptionType
    key: str | None  # the milestone (or document, or place) the finding is about; None: the shipment
    explanation: str
    evidence: Mapping[str, Any]
    lateness_hours: float | None = None  # how late against plan or promise, for severity
    cause: Cause | None = None

    @property
    def fingerprint(self) -> str:
        facts = json.dumps({"key": self.key, **self.evidence}, sort_keys=True, default=str)
        return hashlib.sha256(facts.encode()).hexdigest()


@dataclass(frozen=True)
class Check:
    findings: tuple[Finding, ...] = ()
    recheck_at: dt.datetime | None = None


@dataclass(frozen=True)
class RuleConfig:
    """A rule in force: the engine's view of a ``rule`` row (its highest version)."""

    id: uuid.UUID | None
    exception_type: ExceptionType
    name: str
    version: int
    mode: RuleMode
    parameters: Mapping[str, Any]
    scope: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuledFinding:
    """A finding as the engine raises it: with the rule that made it, severity and priority."""

    finding: Finding
    rule: RuleConfig
    category: Category
    severity: Severity
    priority_score: int

    @property
    def evidence(self) -> dict[str, Any]:
        return {
            **self.finding.evidence,
            "rule": {
                "id": str(self.rule.id) if self.rule.id else None,
                "name": self.rule.name,
                "version": self.rule.version,
                "mode": str(self.rule.mode),
                "parameters": dict(self.rule.parameters),
            },
        }


@dataclass(frozen=True)
class Evaluation:
    findings: tuple[RuledFinding, ...]  # from enabled rules
    shadow: tuple[RuledFinding, ...]  # from shadow rules: recorded, never raised
    evaluated: frozenset[ExceptionType]  # types with an enabled rule in force (others keep their exceptions)
    shadow_evaluated: frozenset[ExceptionType]
    next_check_at: dt.datetime | None


# --- helpers -------------------------------------------------------------------------------------------


def _at(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _hours(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 3600, 1)


def _milestone_evidence(m: MilestoneView) -> dict[str, Any]:
    return {
        "milestone": m.code,
        "location": m.location_locode,
        "baseline_planned_at": _at(m.baseline_planned_at),
        "planned_at": _at(m.planned_at),
        "estimated_at": _at(m.estimated_at),
        "estimated_source": m.estimated_source,
        "actual_at": _at(m.actual_at),
        "actual_source": m.actual_source,
    }


def _events_for(state: ShipmentState, code: str, classifier: str | None = None) -> list[EventView]:
    return [
        e
        for e in state.events
        if e.milestone_code == code and (classifier is None or e.classifier == classifier)
    ]


def _watched(milestones: Sequence[MilestoneView], codes: Sequence[str]) -> list[MilestoneView]:
    return [m for m in milestones if not codes or m.code in codes]


def _with_signal(state: ShipmentState, signals: Iterable[str]) -> list[EventView]:
    wanted = set(signals)
    return [e for e in state.events if wanted & set(e.signals)]


def _earliest(*times: dt.datetime | None) -> dt.datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


# --- the rules, one per type ---------------------------------------------------------------------------


def milestone_late(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    if state.finished:
        return Check()
    tolerance = float(p["tolerance_hours"]) * HOUR
    findings = []
    for m in _watched(state.milestones, p["milestones"]):
        if (
            m.actual_at
            or not m.planned_at
            or not m.estimated_at
            or m.estimated_at <= m.planned_at + tolerance
        ):
            continue
        late = m.estimated_at - m.planned_at
        findings.append(
            Finding(
                ExceptionType.MILESTONE_LATE,
                state.milestone_key(m),
                f"{m.code} is now expected at {_when(m.estimated_at)} ({m.estimated_source}), "
                f"{_hours(late)} h after its plan of {_when(m.planned_at)}, "
                f"beyond the {p['tolerance_hours']:g} h tolerance.",
                {
                    **_milestone_evidence(m),
                    "threshold_hours": p["tolerance_hours"],
                    "late_hours": _hours(late),
                    "events": [e.summary() for e in _events_for(state, m.code, "EST")[-3:]],
                },
                lateness_hours=_hours(late),
            )
        )
    return Check(tuple(findings))


def _passed_later(state: ShipmentState, milestone: MilestoneView) -> bool:
    """A later planned milestone already happened: this one was passed without a report, not missed."""
    return any(
        m.actual_at for m in state.milestones if milestone.sequence < m.sequence < UNPLANNED_SEQUENCE_START
    )


def milestone_missed(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    if state.finished:
        return Check()
    grace = float(p["grace_hours"]) * HOUR
    findings, recheck = [], None
    for m in _watched(state.milestones, p["milestones"]):
        if m.actual_at or not m.planned_at or _passed_later(state, m):
            continue
        deadline = m.planned_at + grace
        if now < deadline:
            recheck = _earliest(recheck, deadline)
            continue
        overdue = now - m.planned_at
        findings.append(
            Finding(
                ExceptionType.MILESTONE_MISSED,
                state.milestone_key(m),
                f"{m.code} was planned for {_when(m.planned_at)} and has not been reported "
                f"{p['grace_hours']:g} h after its plan.",
                {**_milestone_evidence(m), "threshold_hours": p["grace_hours"], "deadline": _at(deadline)},
                lateness_hours=_hours(overdue),
            )
        )
    return Check(tuple(findings), recheck)


def eta_slippage(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    if state.finished:
        return Check()
    findings = []
    for m in _watched(state.milestones, p["milestones"]):
        if m.actual_at:
            continue
        estimates = sorted(
            _events_for(state, m.code, "EST"), key=lambda e: (e.issued_at, e.occurred_at, str(e.id))
        )
        run = estimates[-1:]
        for earlier in reversed(estimates[:-1]):
            if earlier.occurred_at >= run[0].occurred_at:
                break
            run.insert(0, earlier)
        slips = len(run) - 1
        if slips < int(p["min_slips"]):
            continue
        total = run[-1].occurred_at - run[0].occurred_at
        if total < float(p["min_total_slip_hours"]) * HOUR:
            continue
        findings.append(
            Finding(
                ExceptionType.ETA_SLIPPAGE,
                state.milestone_key(m),
                f"The estimate for {m.code} moved later {slips} times in a row, by {_hours(total)} h in all, "
                f"from {_when(run[0].occurred_at)} to {_when(run[-1].occurred_at)}.",
                {
                    **_milestone_evidence(m),
                    "slips": slips,
                    "total_slip_hours": _hours(total),
                    "threshold": {
                        "min_slips": p["min_slips"],
                        "min_total_slip_hours": p["min_total_slip_hours"],
                    },
                    "events": [e.summary() for e in run],
                },
                lateness_hours=_hours(total),
                cause=_voyage_cause(state),
            )
        )
    return Check(tuple(findings))


def sla_at_risk(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    promise = state.promised_delivery_at
    if promise is None or state.finished:
        return Check()
    limit = promise - float(p["margin_hours"]) * HOUR
    delivery = state.milestone(MilestoneCode.DELIVERED)
    expected = state.expected_delivery()
    if expected is not None and expected > limit:
        basis = "estimate" if delivery and delivery.estimated_at else "plan"
        late = expected - promise
        return Check(
            (
                Finding(
                    ExceptionType.SLA_AT_RISK,
                    None,
                    f"Delivery is expected at {_when(expected)} (the {basis}), {_hours(late)} h after the "
                    f"{_when(promise)} promised to the customer.",
                    {
                        "promised_delivery_at": _at(promise),
                        "expected_delivery_at": _at(expected),
                        "basis": basis,
                        "margin_hours": p["margin_hours"],
                        "late_hours": _hours(late),
                        **({"delivery": _milestone_evidence(delivery)} if delivery else {}),
                    },
                    lateness_hours=_hours(late),
                ),
            )
        )
    if now >= limit:  # no expectation beyond the promise, but the promise passed without a delivery
        return Check(
            (
                Finding(
                    ExceptionType.SLA_AT_RISK,
                    None,
                    f"The delivery promised for {_when(promise)} has not happened "
                    "and no later estimate exists.",
                    {"promised_delivery_at": _at(promise), "expected_delivery_at": None, "basis": "promise"},
                    lateness_hours=_hours(now - promise),
                ),
            )
        )
    return Check(recheck_at=limit)


def no_movement(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    if state.status != ShipmentStatus.IN_TRANSIT:
        return Check()
    allowed_hours = float(p["hours_by_mode"].get(state.mode, max(p["hours_by_mode"].values())))
    actuals = [e for e in state.events if e.classifier == "ACT"]
    if not actuals:
        return Check()
    last = max(actuals, key=lambda e: (e.occurred_at, str(e.id)))
    deadline = last.occurred_at + allowed_hours * HOUR
    if now < deadline:
        return Check(recheck_at=deadline)
    silence = now - last.occurred_at
    return Check(
        (
            Finding(
                ExceptionType.NO_MOVEMENT,
                None,
                f"No scan since {_when(last.occurred_at)} ({last.raw_code} from {last.source}): "
                f"more than the {allowed_hours:g} h allowed for {state.mode}.",
                {"last_event": last.summary(), "threshold_hours": allowed_hours, "mode": state.mode},
                lateness_hours=_hours(silence - allowed_hours * HOUR),
                cause=Cause("carrier", state.carrier_code, f"Carrier {state.carrier_code}")
                if state.carrier_code
                else None,
            ),
        )
    )


def lost_after_handoff(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    if state.status != ShipmentStatus.BOOKED:
        return Check()
    handoffs = [m.actual_at for m in state.milestones if m.code == MilestoneCode.BOOKED and m.actual_at]
    if not handoffs:
        return Check()
    handoff = min(handoffs)
    deadline = handoff + float(p["hours"]) * HOUR
    if any(e.classifier == "ACT" and e.milestone_code in MOVEMENT_CODES for e in state.events):
        return Check()
    if now < deadline:
        return Check(recheck_at=deadline)
    return Check(
        (
            Finding(
                ExceptionType.LOST_AFTER_HANDOFF,
                None,
                f"Handed over at {_when(handoff)} but no carrier scan followed within {p['hours']:g} h.",
                {"handed_over_at": _at(handoff), "threshold_hours": p["hours"], "deadline": _at(deadline)},
                lateness_hours=_hours(now - deadline),
            ),
        )
    )


def customs_hold(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    holds = [
        e
        for e in state.events
        if e.classifier == "ACT"
        and (Signal.CUSTOMS_HOLD in e.signals or e.milestone_code == MilestoneCode.CUSTOMS_HOLD)
    ]
    if not holds or state.status == ShipmentStatus.CANCELLED:
        return Check()
    hold = max(holds, key=lambda e: (e.occurred_at, str(e.id)))
    releases = [
        e
        for e in _events_for(state, MilestoneCode.CUSTOMS_RELEASED, "ACT")
        if e.occurred_at >= hold.occurred_at
    ]
    if releases or state.delivered:
        return Check()
    place = hold.location_locode
    return Check(
        (
            Finding(
                ExceptionType.CUSTOMS_HOLD,
                None,
                f"Customs has held the shipment since {_when(hold.occurred_at)}"
                + (f" at {place}" if place else "")
                + f" ({hold.source} {hold.raw_code}) and no release has been reported.",
                {"hold_event": hold.summary(), "held_since": _at(hold.occurred_at)},
                lateness_hours=_hours(now - hold.occurred_at),
                cause=Cause("port", place, f"Customs holds at {place}") if place else None,
            ),
        )
    )


def documents_missing(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    if state.finished:
        return Check()
    findings: list[Finding] = []
    recheck = None
    for requirement in p["requirements"]:
        document = str(requirement["document"])
        if requirement.get("modes") and state.mode not in requirement["modes"]:
            continue
        if requirement.get("accounts") and str(state.account_id) not in requirement["accounts"]:
            continue
        if document in state.documents:
            continue
        anchor = state.milestone(str(requirement["milestone"]))
        if anchor is None or anchor.planned_at is None:
            continue
        deadline = anchor.planned_at + float(requirement.get("offset_hours", 0)) * HOUR
        if now < deadline:
            recheck = _earliest(recheck, deadline)
            continue
        findings.append(
            Finding(
                ExceptionType.DOCUMENTS_MISSING,
                f"doc:{document}"[:32],
                f"The {document.replace('_', ' ')} was due by {_when(deadline)} "
                f"({requirement.get('offset_hours', 0):g} h from the planned {anchor.code}) "
                "and has not been received.",
                {"document": document, "deadline": _at(deadline), "requirement": dict(requirement)},
                lateness_hours=_hours(now - deadline),
            )
        )
    requests = _with_signal(state, [Signal.DOCUMENTS_MISSING])
    if requests:
        latest = max(requests, key=lambda e: (e.occurred_at, str(e.id)))
        findings.append(
            Finding(
                ExceptionType.DOCUMENTS_MISSING,
                "doc:carrier_request",
                f"The carrier asked for information or documents on {_when(latest.occurred_at)} "
                f"({latest.source} {latest.raw_code}).",
                {"events": [e.summary() for e in requests]},
            )
        )
    return Check(tuple(findings), recheck)


def _signal_rule(
    exception_type: ExceptionType,
    signals: Sequence[str],
    milestones: Sequence[str],
    sentence: str,
    *,
    clears_on_delivery: bool,
) -> Callable[[ShipmentState, Mapping[str, Any], dt.datetime], Check]:
    """A rule that fires on events carrying one of ``signals`` (or an actual of one of ``milestones``)."""

    def rule(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
        events = [
            e
            for e in state.events
            if set(signals) & set(e.signals) or (e.classifier == "ACT" and e.milestone_code in milestones)
        ]
        if not events or state.status == ShipmentStatus.CANCELLED:
            return Check()
        latest = max(events, key=lambda e: (e.occurred_at, str(e.id)))
        delivered = state.delivered
        if (
            clears_on_delivery
            and delivered
            and delivered.actual_at
            and delivered.actual_at >= latest.occurred_at
        ):
            return Check()
        reason = f"{latest.source} {latest.raw_code}" + (f"/{latest.raw_reason}" if latest.raw_reason else "")
        return Check(
            (
                Finding(
                    exception_type,
                    None,
                    f"{sentence} on {_when(latest.occurred_at)} ({reason})"
                    + (
                        f" at {latest.location_locode or latest.location_name}"
                        if latest.location_locode or latest.location_name
                        else ""
                    )
                    + ".",
                    {"events": [e.summary() for e in events]},
                ),
            )
        )

    return rule


damage_reported = _signal_rule(
    ExceptionType.DAMAGE_REPORTED,
    [Signal.DAMAGE],
    [],
    "The carrier reported damage",
    clears_on_delivery=False,
)
loss_reported = _signal_rule(
    ExceptionType.LOSS_REPORTED,
    [Signal.LOSS],
    [],
    "The carrier reported the shipment lost",
    clears_on_delivery=True,
)
delivery_failed = _signal_rule(
    ExceptionType.DELIVERY_FAILED,
    [Signal.DELIVERY_FAILED, Signal.ADDRESS_ISSUE, Signal.REFUSED],
    [MilestoneCode.DELIVERY_ATTEMPTED],
    "A delivery attempt failed",
    clears_on_delivery=True,
)
return_to_sender = _signal_rule(
    ExceptionType.RETURN_TO_SENDER,
    [Signal.RETURN_TO_SENDER],
    [MilestoneCode.RETURNED],
    "The shipment is being returned to the sender",
    clears_on_delivery=False,
)


def route_deviation(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    route = state.route_locodes()
    if not route or state.status == ShipmentStatus.CANCELLED:
        return Check()
    countries = {place[:2] for place in route}
    off_route = [
        e
        for e in state.events
        if e.classifier == "ACT"
        and e.location_locode
        and e.location_locode not in route
        and not (p["same_country_ok"] and e.location_locode[:2] in countries)
    ]
    changes = _with_signal(state, [Signal.ROUTE_CHANGE])
    if not off_route and not changes:
        return Check()
    places = sorted({e.location_locode for e in off_route if e.location_locode})
    sentence = (
        f"Reported at {', '.join(places)}, not on the planned route ({', '.join(sorted(route))})."
        if places
        else f"The carrier reported a route change ({changes[-1].source} {changes[-1].raw_code})."
    )
    return Check(
        (
            Finding(
                ExceptionType.ROUTE_DEVIATION,
                None,
                sentence,
                {
                    "planned_route": sorted(route),
                    "off_route_places": places,
                    "events": [e.summary() for e in [*off_route, *changes]],
                },
            ),
        )
    )


_EXTERNAL_SIGNALS = (Signal.WEATHER, Signal.PORT_CONGESTION, Signal.STRIKE, Signal.EXTERNAL)


def _voyage_cause(state: ShipmentState) -> Cause | None:
    for leg in state.legs:
        if leg.vessel_name and leg.voyage_number:
            key = f"{leg.vessel_name.upper()}/{leg.voyage_number.upper()}"
            return Cause("vessel_voyage", key, f"Vessel {leg.vessel_name} voyage {leg.voyage_number}")
        if leg.flight_number:
            return Cause("vessel_voyage", leg.flight_number.upper(), f"Flight {leg.flight_number}")
    return None


def carrier_disruption(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    if state.finished:
        return Check()
    events = [
        e
        for e in _with_signal(state, [Signal.CARRIER_ISSUE, Signal.DELAY])
        if not set(_EXTERNAL_SIGNALS) & set(e.signals)
    ]
    if not events:
        return Check()
    latest = max(events, key=lambda e: (e.occurred_at, str(e.id)))
    cause = _voyage_cause(state) or (
        Cause("carrier", state.carrier_code, f"Carrier {state.carrier_code}") if state.carrier_code else None
    )
    reason = latest.raw_reason or latest.raw_code
    return Check(
        (
            Finding(
                ExceptionType.CARRIER_DISRUPTION,
                None,
                f"The carrier reported a delay ({latest.source} reason {reason}) "
                f"on {_when(latest.occurred_at)}.",
                {"events": [e.summary() for e in events]},
                cause=cause,
            ),
        )
    )


def _time_at(m: MilestoneView) -> dt.datetime | None:
    return m.actual_at or m.estimated_at or m.planned_at


def external_disruption(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    if state.finished:
        return Check()
    findings: list[Finding] = []
    reported = [e for e in _with_signal(state, _EXTERNAL_SIGNALS)]
    if reported:
        latest = max(reported, key=lambda e: (e.occurred_at, str(e.id)))
        place = latest.location_locode
        findings.append(
            Finding(
                ExceptionType.EXTERNAL_DISRUPTION,
                "reported",
                f"The carrier reported an external delay ({', '.join(s.lower() for s in latest.signals)}; "
                f"{latest.source} {latest.raw_reason or latest.raw_code}) on {_when(latest.occurred_at)}.",
                {"events": [e.summary() for e in reported]},
                cause=Cause("port", place, f"Disruption at {place}") if place else None,
            )
        )
    for notice in sorted(state.notices, key=lambda n: (n.starts_at, str(n.id))):
        passing = [
            m
            for m in state.milestones
            if m.location_locode == notice.location_locode
            and (t := _time_at(m)) is not None
            and notice.starts_at <= t <= notice.ends_at
        ]
        if not passing:
            continue
        m = passing[0]
        findings.append(
            Finding(
                ExceptionType.EXTERNAL_DISRUPTION,
                f"notice:{str(notice.id)[:8]}",
                f"{notice.title}: {notice.cause.replace('_', ' ')} at {notice.location_locode} from "
                f"{_when(notice.starts_at)} to {_when(notice.ends_at)}, "
                f"when the shipment's {m.code} is due there.",
                {
                    "notice": {
                        "id": str(notice.id),
                        "cause": notice.cause,
                        "title": notice.title,
                        "location": notice.location_locode,
                        "starts_at": _at(notice.starts_at),
                        "ends_at": _at(notice.ends_at),
                        "global": notice.is_global,
                    },
                    **_milestone_evidence(m),
                },
                cause=Cause("notice", str(notice.id), notice.title),
            )
        )
    return Check(tuple(findings))


def data_inconsistency(state: ShipmentState, p: Mapping[str, Any], now: dt.datetime) -> Check:
    problems: list[dict[str, Any]] = []
    planned = sorted(
        (m for m in state.milestones if m.sequence < UNPLANNED_SEQUENCE_START and m.actual_at),
        key=lambda m: m.sequence,
    )
    for earlier, later in itertools.pairwise(planned):
        if earlier.actual_at and later.actual_at and later.actual_at < earlier.actual_at - HOUR:
            detail = f"{later.code} at {_when(later.actual_at)}, before {earlier.code} at "
            detail += _when(earlier.actual_at)
            problems.append({"problem": "order", "detail": detail})
    future = float(p["future_tolerance_hours"]) * HOUR
    for e in state.events:
        if e.classifier == "ACT" and e.occurred_at > e.received_at + future:
            problems.append(
                {
                    "problem": "future_actual",
                    "detail": f"{e.source} {e.raw_code} says it happened at {_when(e.occurred_at)}, "
                    f"but it arrived at {_when(e.received_at)}",
                    "event_id": str(e.id),
                }
            )
        if e.unknown_codes:
            problems.append(
                {
                    "problem": "unknown_code",
                    "detail": f"{e.source} code(s) {', '.join(e.unknown_codes)} map to nothing",
                    "event_id": str(e.id),
                }
            )
    if not problems:
        return Check()
    first = problems[0]["detail"]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return Check(
        (
            Finding(
                ExceptionType.DATA_INCONSISTENCY,
                None,
                f"The tracking data contradicts itself: {first}{more}.",
                {"problems": problems},
            ),
        )
    )


RULES: dict[ExceptionType, Callable[[ShipmentState, Mapping[str, Any], dt.datetime], Check]] = {
    ExceptionType.MILESTONE_LATE: milestone_late,
    ExceptionType.MILESTONE_MISSED: milestone_missed,
    ExceptionType.ETA_SLIPPAGE: eta_slippage,
    ExceptionType.SLA_AT_RISK: sla_at_risk,
    ExceptionType.NO_MOVEMENT: no_movement,
    ExceptionType.LOST_AFTER_HANDOFF: lost_after_handoff,
    ExceptionType.CUSTOMS_HOLD: customs_hold,
    ExceptionType.DOCUMENTS_MISSING: documents_missing,
    ExceptionType.DAMAGE_REPORTED: damage_reported,
    ExceptionType.LOSS_REPORTED: loss_reported,
    ExceptionType.DELIVERY_FAILED: delivery_failed,
    ExceptionType.RETURN_TO_SENDER: return_to_sender,
    ExceptionType.ROUTE_DEVIATION: route_deviation,
    ExceptionType.CARRIER_DISRUPTION: carrier_disruption,
    ExceptionType.EXTERNAL_DISRUPTION: external_disruption,
    ExceptionType.DATA_INCONSISTENCY: data_inconsistency,
}


# --- scope, severity, the engine -----------------------------------------------------------------------

SCOPE_KEYS = ("modes", "carriers", "accounts", "sla_tiers", "origins", "destinations")


def in_scope(scope: Mapping[str, Any], state: ShipmentState) -> bool:
    """Whether a rule's scope covers the shipment: every dimension it names must match (lists are OR)."""
    values = {
        "modes": state.mode,
        "carriers": state.carrier_code,
        "accounts": str(state.account_id),
        "sla_tiers": state.sla_tier,
        "origins": state.origin_locode,
        "destinations": state.destination_locode,
    }
    return all(not scope.get(name) or values[name] in scope[name] for name in SCOPE_KEYS)


def _specificity(rule: RuleConfig) -> tuple[int, str]:
    return (sum(1 for name in SCOPE_KEYS if rule.scope.get(name)), rule.name)


_CATEGORY_WEIGHT = {
    Category.LOSS: 40,
    Category.DAMAGE: 35,
    Category.CUSTOMS: 30,
    Category.DELAY: 20,
    Category.ADDRESS: 25,
    Category.DOCUMENTATION: 20,
    Category.EXTERNAL: 20,
    Category.CARRIER: 15,
    Category.ROUTE: 15,
    Category.BILLING: 10,
    Category.DATA_QUALITY: 5,
}
_TIER_WEIGHT = {SlaTier.PLATINUM: 25, SlaTier.GOLD: 15, SlaTier.SILVER: 8, SlaTier.STANDARD: 0}
_PRIORITY_WEIGHT = {"critical": 20, "high": 10, "normal": 0, "low": -5}
_VALUE_BANDS = ((Decimal(250_000), 20), (Decimal(50_000), 12), (Decimal(10_000), 6))
_SEVERITY_FLOORS = ((80, Severity.CRITICAL), (55, Severity.HIGH), (30, Severity.MEDIUM))


def priority_score(category: Category, state: ShipmentState, lateness_hours: float | None) -> int:
    """0-100: category weight + SLA tier + shipment priority + value band + lateness against the promise.

    Lateness counts the larger of the finding's own lateness and the expected delivery's lateness against
    the customer's promise: 2 points per 6 hours, at most 25. Values are compared in the declared currency
    (no exchange rates); a shipment without a declared value adds nothing.
    """
    score = _CATEGORY_WEIGHT[category] + _TIER_WEIGHT.get(SlaTier(state.sla_tier), 0)
    score += _PRIORITY_WEIGHT.get(state.priority, 0)
    value = state.declared_value or Decimal(0)
    score += next((points for floor, points in _VALUE_BANDS if value >= floor), 0)
    late = [h for h in (lateness_hours, _promise_lateness(state)) if h is not None]
    if late and max(late) > 0:
        score += min(25, int(max(late) // 6) * 2)
    return max(0, min(100, score))


def _promise_lateness(state: ShipmentState) -> float | None:
    expected = state.expected_delivery()
    if state.promised_delivery_at is None or expected is None:
        return None
    return _hours(expected - state.promised_delivery_at)


def severity_for(score: int) -> Severity:
    return next((severity for floor, severity in _SEVERITY_FLOORS if score >= floor), Severity.LOW)


def _ruled(finding: Finding, rule: RuleConfig, state: ShipmentState) -> RuledFinding:
    category = TYPES[finding.type].category
    score = priority_score(category, state, finding.lateness_hours)
    return RuledFinding(finding, rule, category, severity_for(score), score)


def rules_in_force(
    rules: Iterable[RuleConfig], state: ShipmentState
) -> tuple[dict[ExceptionType, RuleConfig], list[RuleConfig]]:
    """Per type the enabled rule that applies (most specific scope wins, then name), and the shadow rules."""
    enabled: dict[ExceptionType, RuleConfig] = {}
    shadow: list[RuleConfig] = []
    for rule in rules:
        if rule.mode == RuleMode.DISABLED or not in_scope(rule.scope, state):
            continue
        if rule.mode == RuleMode.SHADOW:
            shadow.append(rule)
        elif rule.exception_type not in enabled or _specificity(rule) > _specificity(
            enabled[rule.exception_type]
        ):
            enabled[rule.exception_type] = rule
    return enabled, shadow


def evaluate(state: ShipmentState, rules: Iterable[RuleConfig], now: dt.datetime) -> Evaluation:
    enabled, shadow = rules_in_force(rules, state)
    findings: list[RuledFinding] = []
    shadow_findings: list[RuledFinding] = []
    recheck: dt.datetime | None = None
    for rule in enabled.values():
        check = RULES[rule.exception_type](state, rule.parameters, now)
        findings += [_ruled(f, rule, state) for f in check.findings]
        recheck = _earliest(recheck, check.recheck_at)
    for rule in shadow:
        check = RULES[rule.exception_type](state, rule.parameters, now)
        shadow_findings += [_ruled(f, rule, state) for f in check.findings]
        recheck = _earliest(recheck, check.recheck_at)
    # a type may raise one finding per key: if two shadow rules of a type agree, the first (by name) speaks
    return Evaluation(
        findings=tuple(findings),
        shadow=tuple(_first_per_key(shadow_findings)),
        evaluated=frozenset(enabled),
        shadow_evaluated=frozenset(r.exception_type for r in shadow),
        next_check_at=recheck,
    )


def _first_per_key(findings: Iterable[RuledFinding]) -> list[RuledFinding]:
    seen: dict[tuple[str, str | None], RuledFinding] = {}
    for f in sorted(findings, key=lambda f: f.rule.name):
        seen.setdefault((f.finding.type, f.finding.key), f)
    return list(seen.values())


# --- what the exception's shipper sees ------------------------------------------------------------------
# One decision for every way an exception leaves the tenant: the GraphQL type for shipper users, and the
# e-mails and webhooks notifications send to shipper users and their account. Names are the exception's
# public field names (GraphQL's, in snake_case). Every field is either a customer field or a staff field;
# a test checks each field of the GraphQL type is one or the other, so a new field needs a decision.
CUSTOMER_FIELDS = frozenset(
    {
        "id",
        "type",
        "category",
        "key",
        "status",
        "severity",
        "priority_score",
        "explanation",
        "evidence",  # without STAFF_EVIDENCE
        "occurrences",
        "reopen_count",
        "first_seen_at",
        "last_seen_at",
        "snoozed_until",
        "acknowledged_at",
        "resolved_at",
        "resolution_reason",
        "shadow",
        "shipment",
        "activities",  # entries and notes as domain.workflow.rules.shown_to_shipper decides
        "time_in_state",
        "resolution",  # outcome and time only (api.graphql.workflow.types.ExceptionResolution)
    }
)
STAFF_FIELDS = frozenset(
    {
        "rule",
        "group",
        "assignee",
        "assignee_team",
        "respond_by",
        "resolve_by",
        "escalation_steps_fired",
        "next_escalation_at",
        "playbook",
    }
)
# evidence keys only staff see: the rule version with its parameters (added by the engine, `RuledFinding`)
STAFF_EVIDENCE = frozenset({"rule"})


def customer_sees(field: str) -> bool:
    return field in CUSTOMER_FIELDS


def customer_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in evidence.items() if key not in STAFF_EVIDENCE}


def customer_view(exception: Mapping[str, Any]) -> dict[str, Any]:
    """The customer-safe projection of an exception given as ``{field: value}`` (any subset of its fields):
    customer fields only (an allow-list: an unknown field is dropped, never passed on), and the evidence
    without the rule internals."""
    return {
        field: customer_evidence(value) if field == "evidence" else value
        for field, value in exception.items()
        if customer_sees(field)
    }


# changes that touch staff fields only (who works it, how far it escalated): a shipper is not told of them
STAFF_TOPICS = frozenset({topics.ASSIGNED, topics.ESCALATED})


def customer_sees_change(topic: str, payload: Mapping[str, Any]) -> bool:
    """Whether the exception's shipper may learn that this change happened (live events, notifications,
    its account's webhooks): not staff-only changes, and comments only when meant for the customer."""
    if topic in STAFF_TOPICS:
        return False
    if topic == topics.COMMENTED:
        return payload.get("customer_visible") is True
    return True
