"""Every exception type as a pure function of (state, parameters, now): fires, stays quiet, says when to look
again. No database."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.exceptions import rules
from domain.exceptions.models import Category, RuleMode, Severity
from domain.exceptions.rules import RULES, evaluate, priority_score, rules_in_force, severity_for
from domain.exceptions.taxonomy import (
    DEFAULT_RULES,
    TYPES,
    ExceptionType,
    ParameterError,
    validate_parameters,
)
from domain.tracking.canonical import Signal
from tests.domain.detection_support import (
    ACCOUNT,
    T0,
    H,
    event,
    milestone,
    notice,
    ocean_milestones,
    params,
    rule,
    shipment,
)

E = ExceptionType


def check(exception_type: ExceptionType, state: object, now: dt.datetime, **overrides: object) -> rules.Check:
    return RULES[exception_type](state, params(exception_type, **overrides), now)  # type: ignore[arg-type]


def test_every_type_has_a_rule_a_spec_and_a_default() -> None:
    assert set(RULES) == set(ExceptionType) == set(TYPES)
    assert {d.exception_type for d in DEFAULT_RULES} == set(ExceptionType)
    for exception_type in ExceptionType:
        validate_parameters(exception_type, {})  # every default passes its own spec


def test_parameters_are_checked_with_the_parameter_named() -> None:
    with pytest.raises(ParameterError, match=r"MILESTONE_LATE: unknown parameter\(s\) tolerance"):
        validate_parameters(E.MILESTONE_LATE, {"tolerance": 3})
    with pytest.raises(ParameterError, match=r"MILESTONE_LATE\.tolerance_hours: expected float, got str"):
        validate_parameters(E.MILESTONE_LATE, {"tolerance_hours": "3"})
    with pytest.raises(ParameterError, match=r"NO_MOVEMENT\.hours_by_mode: 0 is below the minimum 1"):
        validate_parameters(E.NO_MOVEMENT, {"hours_by_mode": {"ocean": 0}})
    with pytest.raises(ParameterError, match="expected int, got bool"):
        validate_parameters(E.ETA_SLIPPAGE, {"min_slips": True})
    assert validate_parameters(E.MILESTONE_LATE, {"tolerance_hours": 3})["tolerance_hours"] == 3.0


# --- delay ---------------------------------------------------------------------------------------------


def test_milestone_late_when_the_estimate_lies_beyond_plan_and_tolerance() -> None:
    state = shipment(milestones=ocean_milestones(DEPARTED={"estimated": T0 + 96 * H + 18 * H}))
    [finding] = check(E.MILESTONE_LATE, state, T0).findings
    assert finding.key == "DEPARTED"
    assert finding.lateness_hours == 18.0
    assert finding.evidence["planned_at"] == (T0 + 96 * H).isoformat()
    assert finding.evidence["estimated_at"] == (T0 + 114 * H).isoformat()
    assert finding.evidence["threshold_hours"] == 6
    assert finding.explanation == (
        "DEPARTED is now expected at 2026-11-06 02:00 UTC (carrier), 18.0 h after its plan of "
        "2026-11-05 08:00 UTC, beyond the 6 h tolerance."
    )


def test_milestone_late_stays_quiet_within_tolerance_after_the_actual_and_for_unwatched_milestones() -> None:
    within = shipment(milestones=ocean_milestones(DEPARTED={"estimated": T0 + 96 * H + 6 * H}))
    assert check(E.MILESTONE_LATE, within, T0).findings == ()
    happened = shipment(
        milestones=ocean_milestones(DEPARTED={"estimated": T0 + 120 * H, "actual": T0 + 119 * H})
    )
    assert check(E.MILESTONE_LATE, happened, T0).findings == ()
    late = shipment(milestones=ocean_milestones(DEPARTED={"estimated": T0 + 120 * H}))
    assert check(E.MILESTONE_LATE, late, T0, milestones=["ARRIVED"]).findings == ()


def test_milestone_missed_fires_after_plan_and_grace_and_says_when_to_look_again_before() -> None:
    state = shipment(status="booked")
    deadline = T0 + 96 * H + 6 * H
    before = check(E.MILESTONE_MISSED, state, deadline - H)
    assert [f.key for f in before.findings] == ["BOOKED"]  # planned at T0, never reported
    assert before.recheck_at == deadline
    after = check(E.MILESTONE_MISSED, state, deadline)
    assert [f.key for f in after.findings] == ["BOOKED", "DEPARTED"]
    assert after.findings[1].evidence["deadline"] == deadline.isoformat()


def test_a_milestone_passed_without_report_is_not_missed() -> None:
    state = shipment(milestones=ocean_milestones(DEPARTED={"actual": T0 + 97 * H}))
    assert check(E.MILESTONE_MISSED, state, T0 + 200 * H).findings == ()  # BOOKED skipped, DEPARTED happened


def test_finished_shipments_raise_no_time_driven_exceptions() -> None:
    delivered = shipment(status="delivered")
    for exception_type in (E.MILESTONE_MISSED, E.MILESTONE_LATE, E.SLA_AT_RISK, E.NO_MOVEMENT):
        result = check(exception_type, delivered, T0 + 2000 * H)
        assert result == rules.Check(), exception_type


def test_eta_slippage_counts_successive_later_estimates() -> None:
    estimates = [
        event("ARRIVED", classifier="EST", at=T0 + 720 * H, received=T0),
        event("ARRIVED", classifier="EST", at=T0 + 730 * H, received=T0 + 24 * H),
        event("ARRIVED", classifier="EST", at=T0 + 745 * H, received=T0 + 48 * H),
    ]
    state = shipment(events=tuple(estimates))
    [finding] = check(E.ETA_SLIPPAGE, state, T0 + 50 * H).findings
    assert (finding.key, finding.evidence["slips"], finding.evidence["total_slip_hours"]) == (
        "ARRIVED",
        2,
        25.0,
    )
    assert finding.cause == rules.Cause(
        "vessel_voyage", "MAERSK KOLKATA/245W", "Vessel MAERSK KOLKATA voyage 245W"
    )
    improved = event("ARRIVED", classifier="EST", at=T0 + 740 * H, received=T0 + 72 * H)
    assert check(E.ETA_SLIPPAGE, replace(state, events=(*estimates, improved)), T0 + 80 * H).findings == ()
    assert check(E.ETA_SLIPPAGE, state, T0 + 50 * H, min_total_slip_hours=30).findings == ()


def test_sla_at_risk_against_the_estimate_and_when_the_promise_passes() -> None:
    promise = T0 + 820 * H
    late = shipment(
        promised_delivery_at=promise, milestones=ocean_milestones(DELIVERED={"estimated": promise + 30 * H})
    )
    [finding] = check(E.SLA_AT_RISK, late, T0).findings
    assert (finding.evidence["basis"], finding.lateness_hours) == ("estimate", 30.0)
    on_plan = shipment(promised_delivery_at=promise)  # planned T0 + 816 h: before the promise
    result = check(E.SLA_AT_RISK, on_plan, T0)
    assert (result.findings, result.recheck_at) == ((), promise)
    assert check(E.SLA_AT_RISK, on_plan, T0, margin_hours=10).findings[0].evidence["basis"] == "plan"
    no_plan = shipment(promised_delivery_at=promise, milestones=ocean_milestones()[:3])
    [passed] = check(E.SLA_AT_RISK, no_plan, promise + H).findings
    assert passed.evidence["basis"] == "promise"
    assert check(E.SLA_AT_RISK, shipment(), T0).findings == ()  # no promise, no SLA


def test_no_movement_after_the_silence_allowed_per_mode() -> None:
    scan = event("DEPARTED", at=T0 + 96 * H, place="CNSHA")
    state = shipment(events=(scan,))
    quiet = check(E.NO_MOVEMENT, state, T0 + 96 * H + 95 * H)
    assert (quiet.findings, quiet.recheck_at) == ((), T0 + 96 * H + 96 * H)
    [finding] = check(E.NO_MOVEMENT, state, T0 + 96 * H + 100 * H).findings
    assert (finding.evidence["threshold_hours"], finding.lateness_hours) == (96.0, 4.0)
    parcel = replace(state, mode="parcel")
    assert check(E.NO_MOVEMENT, parcel, T0 + 96 * H + 49 * H).findings != ()
    assert check(E.NO_MOVEMENT, replace(state, status="booked"), T0 + 2000 * H).findings == ()


def test_lost_after_handoff_when_no_carrier_scan_follows_the_label() -> None:
    label = shipment(
        mode="parcel",
        status="booked",
        milestones=(milestone("BOOKED", 1, actual=T0), milestone("DELIVERED", 2)),
    )
    early = check(E.LOST_AFTER_HANDOFF, label, T0 + 47 * H)
    assert (early.findings, early.recheck_at) == ((), T0 + 48 * H)
    [finding] = check(E.LOST_AFTER_HANDOFF, label, T0 + 49 * H).findings
    assert finding.evidence["handed_over_at"] == T0.isoformat()
    scanned = replace(label, status="in_transit", events=(event("PICKED_UP", at=T0 + 3 * H),))
    assert check(E.LOST_AFTER_HANDOFF, scanned, T0 + 100 * H).findings == ()


# --- customs, documents, signals -----------------------------------------------------------------------


def test_customs_hold_until_a_later_release() -> None:
    hold = event(None, at=T0 + 730 * H, signals=(Signal.CUSTOMS_HOLD,), place="NLRTM", raw="CH")
    state = shipment(events=(hold,))
    [finding] = check(E.CUSTOMS_HOLD, state, T0 + 740 * H).findings
    assert finding.cause == rules.Cause("port", "NLRTM", "Customs holds at NLRTM")
    assert "since 2026-12-01 18:00 UTC at NLRTM" in finding.explanation
    released = replace(state, events=(hold, event("CUSTOMS_RELEASED", at=T0 + 760 * H)))
    assert check(E.CUSTOMS_HOLD, released, T0 + 770 * H).findings == ()
    earlier_release = replace(state, events=(event("CUSTOMS_RELEASED", at=T0 + 700 * H), hold))
    assert len(check(E.CUSTOMS_HOLD, earlier_release, T0 + 770 * H).findings) == 1


def test_documents_missing_by_deadline_per_mode_and_on_a_carrier_request() -> None:
    state = shipment()
    deadline = T0 + 96 * H - 48 * H
    early = check(E.DOCUMENTS_MISSING, state, deadline - H)
    assert (early.findings, early.recheck_at) == ((), deadline)
    keys = [f.key for f in check(E.DOCUMENTS_MISSING, state, deadline).findings]
    assert keys == ["doc:commercial_invoice", "doc:packing_list"]
    received = replace(state, documents={"commercial_invoice": T0, "packing_list": T0})
    assert check(E.DOCUMENTS_MISSING, received, deadline + H).findings == ()
    road = replace(state, mode="road")
    assert check(E.DOCUMENTS_MISSING, road, deadline + H).findings == ()
    asked = replace(received, events=(event(None, signals=(Signal.DOCUMENTS_MISSING,), raw="PENU"),))
    assert [f.key for f in check(E.DOCUMENTS_MISSING, asked, deadline).findings] == ["doc:carrier_request"]


@pytest.mark.parametrize(
    ("exception_type", "signal", "clears_on_delivery"),
    [
        (E.DAMAGE_REPORTED, Signal.DAMAGE, False),
        (E.LOSS_REPORTED, Signal.LOSS, True),
        (E.DELIVERY_FAILED, Signal.REFUSED, True),
        (E.DELIVERY_FAILED, Signal.ADDRESS_ISSUE, True),
        (E.RETURN_TO_SENDER, Signal.RETURN_TO_SENDER, False),
    ],
)
def test_signal_types_fire_on_their_signal(
    exception_type: ExceptionType, signal: str, clears_on_delivery: bool
) -> None:
    report = event(None, at=T0 + 800 * H, signals=(signal,), raw="A9", reason="BG", place="NLRTM")
    state = shipment(events=(report,))
    [finding] = check(exception_type, state, T0 + 801 * H).findings
    assert finding.evidence["events"][0]["event_id"] == str(report.id)
    assert "(x12 A9/BG) at NLRTM" in finding.explanation
    delivered = replace(
        state,
        status="delivered",
        milestones=ocean_milestones(DELIVERED={"actual": T0 + 810 * H}),
        events=(report, event("DELIVERED", at=T0 + 810 * H)),
    )
    assert (check(exception_type, delivered, T0 + 811 * H).findings == ()) is clears_on_delivery
    assert check(exception_type, shipment(), T0).findings == ()


def test_a_failed_attempt_milestone_is_a_delivery_failure() -> None:
    state = shipment(events=(event("DELIVERY_ATTEMPTED", at=T0 + 800 * H),))
    assert len(check(E.DELIVERY_FAILED, state, T0 + 801 * H).findings) == 1


def test_route_deviation_for_a_place_off_the_planned_route() -> None:
    off = event("TRANSSHIPMENT_ARRIVED", at=T0 + 300 * H, place="USLAX")
    [finding] = check(E.ROUTE_DEVIATION, shipment(events=(off,)), T0 + 301 * H).findings
    assert finding.evidence["off_route_places"] == ["USLAX"]
    assert finding.evidence["planned_route"] == ["CNSHA", "NLRTM"]
    nearby = event("DEPARTED", at=T0 + 97 * H, place="CNNGB")
    assert check(E.ROUTE_DEVIATION, shipment(events=(nearby,)), T0).findings == ()
    assert len(check(E.ROUTE_DEVIATION, shipment(events=(nearby,)), T0, same_country_ok=False).findings) == 1
    rerouted = event(None, signals=(Signal.ROUTE_CHANGE,), raw="RR")
    assert (
        "route change" in check(E.ROUTE_DEVIATION, shipment(events=(rerouted,)), T0).findings[0].explanation
    )


def test_carrier_and_external_delays_are_told_apart_by_their_reason() -> None:
    carrier = event(None, signals=(Signal.DELAY, Signal.CARRIER_ISSUE), raw="SD", reason="AO")
    weather = event(None, signals=(Signal.DELAY, Signal.WEATHER), raw="SD", reason="AS", place="NLRTM")
    [finding] = check(E.CARRIER_DISRUPTION, shipment(events=(carrier, weather)), T0).findings
    assert finding.evidence["events"] == [carrier.summary()]
    assert finding.cause is not None
    assert finding.cause.kind == "vessel_voyage"
    [external] = check(E.EXTERNAL_DISRUPTION, shipment(events=(carrier, weather)), T0).findings
    assert (external.key, external.cause) == ("reported", rules.Cause("port", "NLRTM", "Disruption at NLRTM"))


def test_a_disruption_notice_applies_to_shipments_due_there_in_its_window() -> None:
    arrival = T0 + 720 * H
    strike = notice("NLRTM", arrival - 24 * H, arrival + 24 * H)
    [finding] = check(E.EXTERNAL_DISRUPTION, shipment(notices=(strike,)), T0).findings
    assert finding.key == f"notice:{str(strike.id)[:8]}"
    assert finding.cause == rules.Cause("notice", str(strike.id), "strike at NLRTM")
    assert finding.evidence["milestone"] == "ARRIVED"
    elsewhere_in_time = notice("NLRTM", arrival + 200 * H, arrival + 300 * H)
    assert check(E.EXTERNAL_DISRUPTION, shipment(notices=(elsewhere_in_time,)), T0).findings == ()
    slipped = shipment(
        notices=(elsewhere_in_time,), milestones=ocean_milestones(ARRIVED={"estimated": arrival + 250 * H})
    )
    assert len(check(E.EXTERNAL_DISRUPTION, slipped, T0).findings) == 1  # the estimate moved into the window


def test_data_inconsistency_lists_every_problem() -> None:
    state = shipment(
        milestones=ocean_milestones(DEPARTED={"actual": T0 + 100 * H}, ARRIVED={"actual": T0 + 50 * H}),
        events=(
            event("ARRIVED", at=T0 + 500 * H, received=T0 + 10 * H),
            event(None, raw="ZZ", unknown=("x12.status:ZZ",), signals=(Signal.DATA_QUALITY,)),
        ),
    )
    [finding] = check(E.DATA_INCONSISTENCY, state, T0 + 600 * H).findings
    assert [p["problem"] for p in finding.evidence["problems"]] == ["order", "future_actual", "unknown_code"]
    assert finding.explanation.endswith("(and 2 more).")
    assert check(E.DATA_INCONSISTENCY, shipment(), T0).findings == ()


# --- the engine ----------------------------------------------------------------------------------------


def test_the_most_specific_enabled_rule_wins_and_shadow_rules_run_beside_it() -> None:
    general = rule(E.NO_MOVEMENT)
    ocean = rule(E.NO_MOVEMENT, name="ocean", scope={"modes": ["ocean"]}, hours_by_mode={"ocean": 10})
    air = rule(E.NO_MOVEMENT, name="air", scope={"modes": ["air"]}, hours_by_mode={"air": 1})
    trial = rule(E.NO_MOVEMENT, name="trial", mode=RuleMode.SHADOW, hours_by_mode={"ocean": 5})
    off = rule(E.MILESTONE_LATE, mode=RuleMode.DISABLED)
    enabled, shadow = rules_in_force([general, ocean, air, trial, off], shipment())
    assert (enabled, shadow) == ({E.NO_MOVEMENT: ocean}, [trial])

    state = shipment(events=(event("DEPARTED", at=T0),))
    result = evaluate(state, [general, ocean, trial], T0 + 7 * H)
    assert [f.rule.name for f in result.findings] == []
    assert [f.rule.name for f in result.shadow] == ["trial"]
    assert result.next_check_at == T0 + 10 * H
    assert (result.evaluated, result.shadow_evaluated) == ({E.NO_MOVEMENT}, {E.NO_MOVEMENT})
    later = evaluate(state, [general, ocean, trial], T0 + 11 * H)
    assert [(f.rule.name, f.rule.version) for f in later.findings] == [("ocean", 1)]
    assert later.findings[0].evidence["rule"]["parameters"] == {"hours_by_mode": {"ocean": 10}}


def test_scope_matches_every_named_dimension() -> None:
    state = shipment(sla_tier="gold")
    assert rules.in_scope({"modes": ["ocean"], "sla_tiers": ["gold", "platinum"]}, state)
    assert not rules.in_scope({"modes": ["ocean"], "carriers": ["CMDU"]}, state)
    assert rules.in_scope(
        {"accounts": [str(ACCOUNT)], "origins": ["CNSHA"], "destinations": ["NLRTM"]}, state
    )


def test_a_findings_fingerprint_does_not_depend_on_when_it_is_evaluated() -> None:
    state = shipment(status="booked", events=(event(None, signals=(Signal.DAMAGE,)),))
    all_rules = [rule(t) for t in ExceptionType]
    first = {
        (f.finding.type, f.finding.key): f.finding.fingerprint
        for f in evaluate(state, all_rules, T0 + 200 * H).findings
    }
    again = {
        (f.finding.type, f.finding.key): f.finding.fingerprint
        for f in evaluate(state, all_rules, T0 + 260 * H).findings
    }
    assert first
    assert first == again


def test_severity_follows_category_tier_value_priority_and_lateness() -> None:
    standard = shipment()
    assert priority_score(Category.DATA_QUALITY, standard, None) == 5
    assert severity_for(5) == Severity.LOW
    gold = replace(standard, sla_tier="gold", priority="high", declared_value=Decimal(60_000))
    assert priority_score(Category.DELAY, gold, 48) == 20 + 15 + 10 + 12 + 16
    vip = replace(gold, sla_tier="platinum", priority="critical", declared_value=Decimal(300_000))
    assert priority_score(Category.LOSS, vip, 48) == 100  # 121, capped
    assert (severity_for(29), severity_for(30), severity_for(55), severity_for(80)) == (
        Severity.LOW,
        Severity.MEDIUM,
        Severity.HIGH,
        Severity.CRITICAL,
    )


_TIERS = ["standard", "silver", "gold", "platinum"]
_PRIORITIES = ["low", "normal", "high", "critical"]


@given(
    category=st.sampled_from(list(Category)),
    tier=st.integers(0, 3),
    priority=st.integers(0, 3),
    value=st.integers(0, 10**6),
    lateness=st.one_of(st.none(), st.floats(-100, 1000)),
    bump=st.sampled_from(["tier", "priority", "value", "lateness"]),
)
def test_severity_never_drops_when_one_factor_grows(
    category: Category, tier: int, priority: int, value: int, lateness: float | None, bump: str
) -> None:
    base = shipment(sla_tier=_TIERS[tier], priority=_PRIORITIES[priority], declared_value=Decimal(value))
    more = {
        "tier": replace(base, sla_tier=_TIERS[min(3, tier + 1)]),
        "priority": replace(base, priority=_PRIORITIES[min(3, priority + 1)]),
        "value": replace(base, declared_value=Decimal(value * 2 + 1)),
        "lateness": base,
    }[bump]
    grown = (lateness or 0) + 24 if bump == "lateness" else lateness
    before = priority_score(category, base, lateness)
    after = priority_score(category, more, grown)
    assert 0 <= before <= after <= 100


# --- what the exception's shipper sees -------------------------------------------------------------------


def test_the_customer_view_keeps_customer_fields_only_and_the_evidence_without_the_rule() -> None:
    assert rules.CUSTOMER_FIELDS.isdisjoint(rules.STAFF_FIELDS)
    staff = {
        "id": "e1",
        "type": "MILESTONE_LATE",
        "status": "open",
        "explanation": "DEPARTED is late.",
        "evidence": {"rule": {"id": "r1", "parameters": {"tolerance_hours": 6}}, "planned_at": "2026-11-05"},
        "assignee": "u1",
        "assignee_team": "t1",
        "group": "g1",
        "respond_by": "2026-11-01T10:00:00+00:00",
        "internal_note": "never",  # a field nobody decided on is dropped, not passed on
    }
    assert rules.customer_view(staff) == {
        "id": "e1",
        "type": "MILESTONE_LATE",
        "status": "open",
        "explanation": "DEPARTED is late.",
        "evidence": {"planned_at": "2026-11-05"},
    }


@pytest.mark.parametrize(
    ("topic", "payload", "seen"),
    [
        ("exception.opened", {}, True),
        ("exception.updated", {}, True),
        ("exception.acknowledged", {}, True),
        ("exception.status_changed", {"from_status": "acknowledged"}, True),
        ("exception.resolved", {"outcome": "delivered_late"}, True),
        ("exception.customer_notice", {"template": "documents_requested"}, True),
        ("exception.assigned", {"assignee_user_id": "u"}, False),
        ("exception.escalated", {"step": 1}, False),
        ("exception.commented", {"customer_visible": False}, False),
        ("exception.commented", {"customer_visible": "yes"}, False),  # only a real true
        ("exception.commented", {"customer_visible": True}, True),
    ],
)
def test_which_changes_a_shipper_may_learn_of(topic: str, payload: dict[str, object], seen: bool) -> None:
    assert rules.customer_sees_change(topic, payload) is seen
