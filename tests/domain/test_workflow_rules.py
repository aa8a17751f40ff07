"""The workflow's pure rules: the lifecycle table, time in state, due times, auto-assignment, playbooks and
their policies, escalation with an injected clock, resolution vocabularies and the metrics. No database."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from domain.exceptions.models import ExceptionStatus, Severity
from domain.exceptions.taxonomy import ExceptionType
from domain.tenancy.models import SlaTier
from domain.workflow import rules
from domain.workflow.rules import (
    ActionCode,
    ActionPolicy,
    AssignmentRuleView,
    CaseFacts,
    EscalationClock,
    EscalationPolicyView,
    EscalationStep,
    EscalationTarget,
    EscalationTrigger,
    InvalidTransition,
    PlaybookAction,
    PlaybookView,
    ResolutionDraft,
    ResolvedCase,
    ResponseTarget,
    StatusChange,
    Transition,
)

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)

# The lifecycle, written out independently of the code: (from, transition) -> to for a person; every pair
# not listed must be refused.
OP, RO, ACK, IP, SN, RES, AR, CL = (
    "open",
    "reopened",
    "acknowledged",
    "in_progress",
    "snoozed",
    "resolved",
    "auto_resolved",
    "closed",
)
PERSON = {
    (OP, "acknowledge"): ACK,
    (RO, "acknowledge"): ACK,
    (OP, "start"): IP,
    (RO, "start"): IP,
    (ACK, "start"): IP,
    (OP, "snooze"): SN,
    (RO, "snooze"): SN,
    (ACK, "snooze"): SN,
    (IP, "snooze"): SN,
    (SN, "snooze"): SN,
    (SN, "unsnooze"): OP,
    (OP, "resolve"): RES,
    (RO, "resolve"): RES,
    (ACK, "resolve"): RES,
    (IP, "resolve"): RES,
    (SN, "resolve"): RES,
    (RES, "reopen"): RO,
    (AR, "reopen"): RO,
    (RES, "close"): CL,
    (AR, "close"): CL,
}
# the system may also auto-resolve anything still open, and reopen a closed exception whose condition returned
SYSTEM = {
    **PERSON,
    **{(s, "auto_resolve"): AR for s in (OP, RO, ACK, IP, SN)},
    (CL, "reopen"): RO,
}
ALL_PAIRS = [(s.value, t) for s in ExceptionStatus for t in Transition]


@pytest.mark.parametrize(("status", "step"), ALL_PAIRS)
def test_lifecycle_table_for_a_person(status: str, step: Transition) -> None:
    expected = PERSON.get((status, step.value))
    if expected is None:
        with pytest.raises(InvalidTransition) as caught:
            rules.transition(status, step, by_person=True)
        assert str(caught.value).startswith(
            f"status: a person cannot {step.value} an exception that is {status}"
        )
    else:
        assert rules.transition(status, step, by_person=True) == expected


@pytest.mark.parametrize(("status", "step"), ALL_PAIRS)
def test_lifecycle_table_for_the_system(status: str, step: Transition) -> None:
    expected = SYSTEM.get((status, step.value))
    if expected is None:
        with pytest.raises(InvalidTransition):
            rules.transition(status, step, by_person=False)
    else:
        assert rules.transition(status, step, by_person=False) == expected


def test_an_invalid_transition_names_what_is_allowed() -> None:
    with pytest.raises(InvalidTransition) as caught:
        rules.transition("acknowledged", Transition.ACKNOWLEDGE, by_person=True)
    assert str(caught.value) == (
        "status: a person cannot acknowledge an exception that is acknowledged (allowed: resolve, snooze, start)"
    )
    with pytest.raises(InvalidTransition, match=r"that is closed \(no transition allowed\)"):
        rules.transition("closed", Transition.REOPEN, by_person=True)


def test_time_in_states_adds_up_each_status_in_any_order() -> None:
    changes = [
        StatusChange(T0 + 3 * H, "in_progress"),
        StatusChange(T0, "open"),
        StatusChange(T0 + 1 * H, "acknowledged"),
        StatusChange(T0 + 5 * H, "snoozed"),
        StatusChange(T0 + 7 * H, "open"),
        StatusChange(T0 + 8 * H, "resolved"),
    ]
    spent = rules.time_in_states(changes, now=T0 + 10 * H)
    assert spent == {
        "open": 2 * H,  # 0-1 and 7-8
        "acknowledged": 2 * H,
        "in_progress": 2 * H,
        "snoozed": 2 * H,
        "resolved": 2 * H,  # until now
    }
    assert rules.time_in_states(changes, now=T0 + 10 * H, until=T0 + 9 * H)["resolved"] == 1 * H


def test_due_times_take_the_tier_specific_target_then_the_general_then_the_default() -> None:
    tenant = [
        ResponseTarget(Severity.HIGH, None, 2 * H, 48 * H),
        ResponseTarget(Severity.HIGH, SlaTier.GOLD, 30 * M, 8 * H),
    ]
    assert rules.response_target(tenant, "high", "gold").respond_within == 30 * M
    assert rules.response_target(tenant, "high", "silver").respond_within == 2 * H
    assert rules.response_target(tenant, "critical", "silver").respond_within == 15 * M  # default
    assert rules.response_target([], "low", "platinum").respond_within == 12 * H  # default platinum
    assert rules.due_times(rules.response_target(tenant, "high", "gold"), T0) == (T0 + 30 * M, T0 + 8 * H)


def facts(**changes: object) -> CaseFacts:
    base = CaseFacts(
        exception_id=uuid.UUID(int=1),
        exception_type="MILESTONE_LATE",
        category="delay",
        severity="high",
        status="open",
        account_id=uuid.UUID(int=7),
        sla_tier="gold",
        mode="ocean",
        origin_locode="CNSHA",
        destination_locode="NLRTM",
        declared_value=Decimal(12_000),
        declared_value_currency="USD",
        opened_at=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_auto_assignment_takes_the_first_matching_rule_by_position() -> None:
    team_a, team_b, user = uuid.UUID(int=10), uuid.UUID(int=11), uuid.UUID(int=12)
    by_lane = AssignmentRuleView(uuid.UUID(int=1), 2, {"lanes": ["CNSHA-*"]}, team_a, None)
    customs = AssignmentRuleView(uuid.UUID(int=2), 1, {"categories": ["customs"]}, team_b, user)
    account = AssignmentRuleView(
        uuid.UUID(int=3), 3, {"account_ids": [str(uuid.UUID(int=7))], "modes": ["air"]}, None, user
    )
    pool = [by_lane, customs, account]
    assert rules.choose_assignment(pool, facts()) == by_lane
    assert rules.choose_assignment(pool, facts(category="customs")) == customs
    assert rules.choose_assignment(pool, facts(origin_locode="USLAX", mode="air")) == account
    assert rules.choose_assignment(pool, facts(origin_locode="USLAX")) is None
    assert rules.assignment_matches({"lanes": ["*-NLRTM"], "severities": ["high"]}, facts())
    assert not rules.assignment_matches({"lanes": ["*-DEHAM"]}, facts())
    assert not rules.assignment_matches({"exception_types": ["CUSTOMS_HOLD"]}, facts())


def test_every_exception_type_has_a_built_in_playbook() -> None:
    assert {p.exception_type for p in rules.default_playbooks()} == set(ExceptionType)
    for playbook in rules.default_playbooks():
        automatic = [a.code for a in playbook.actions if a.automatic]
        assert set(automatic) <= set(rules.AUTOMATIC_ACTIONS), playbook.name


def test_the_most_specific_playbook_wins_and_a_tenant_beats_the_default_at_equal_specificity() -> None:
    act = (PlaybookAction(ActionCode.CONTACT_CARRIER, "Call"),)
    default = next(p for p in rules.default_playbooks() if p.exception_type == "MILESTONE_LATE")
    tenant_general = PlaybookView(uuid.UUID(int=1), "ours", "MILESTONE_LATE", None, None, act)
    gold = PlaybookView(uuid.UUID(int=2), "gold", "MILESTONE_LATE", "gold", None, act)
    gold_medium = PlaybookView(uuid.UUID(int=3), "gold medium", "MILESTONE_LATE", "gold", "medium", act)
    assert rules.choose_playbook([default], facts()) == default
    assert rules.choose_playbook([default, tenant_general], facts()) == tenant_general
    assert rules.choose_playbook([default, tenant_general, gold], facts()) == gold
    assert rules.choose_playbook([default, gold, gold_medium], facts()) == gold_medium
    assert rules.choose_playbook([default, gold, gold_medium], facts(declared_value=Decimal(60_000))) == gold
    assert rules.choose_playbook([gold], facts(sla_tier="silver")) is None


def test_value_bands() -> None:
    assert rules.value_band(None) == "low"
    assert rules.value_band(Decimal("9999.99")) == "low"
    assert rules.value_band(Decimal(10_000)) == "medium"
    assert rules.value_band(Decimal(50_000)) == "high"


def test_an_automatic_action_runs_only_inside_its_policy() -> None:
    notify = PlaybookAction(
        ActionCode.NOTIFY_CUSTOMER,
        "Tell them",
        automatic=True,
        policy=ActionPolicy(max_value=Decimal(50_000), tiers=frozenset({"gold", "platinum"})),
    )
    assert rules.authorise(notify, facts()) == rules.Authorisation(True, "within the playbook's policy")
    assert rules.authorise(notify, facts(declared_value=None)).allowed
    assert rules.authorise(notify, facts(declared_value=Decimal(75_000))) == rules.Authorisation(
        False, "shipment value 75000 USD is above the limit of 50000 USD"
    )
    assert rules.authorise(notify, facts(sla_tier="silver")) == rules.Authorisation(
        False, "the silver tier is not among gold, platinum"
    )
    manual = PlaybookAction(ActionCode.FILE_CLAIM, "Claim")
    assert rules.authorise(manual, facts()) == rules.Authorisation(
        False, "file_claim is not automatic: a person takes it"
    )
    only_low = replace(notify, policy=ActionPolicy(severities=frozenset({"low"})))
    assert rules.authorise(only_low, facts()) == rules.Authorisation(False, "severity high is not among low")


POLICY = EscalationPolicyView(
    None,
    "test",
    None,
    (
        EscalationStep(EscalationTrigger.NOT_ACKNOWLEDGED, dt.timedelta(0), EscalationTarget.TEAM),
        EscalationStep(EscalationTrigger.NOT_ACKNOWLEDGED, 30 * M, EscalationTarget.TEAM_LEAD),
        EscalationStep(EscalationTrigger.NOT_RESOLVED, dt.timedelta(0), EscalationTarget.MANAGER),
    ),
)


def clock(**changes: object) -> EscalationClock:
    base = EscalationClock("open", T0 + 1 * H, T0 + 24 * H, acknowledged=False, steps_fired=0)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_escalation_fires_each_step_once_in_order_as_the_clock_moves() -> None:
    assert rules.plan_escalation(POLICY, clock(), T0) == rules.EscalationPlan((), T0 + 1 * H)
    at_due = rules.plan_escalation(POLICY, clock(), T0 + 1 * H)
    assert [n for n, _ in at_due.fire] == [1]
    assert at_due.next_at == T0 + 1 * H + 30 * M
    later = rules.plan_escalation(POLICY, clock(steps_fired=1), T0 + 2 * H)
    assert [n for n, _ in later.fire] == [2]
    assert later.next_at == T0 + 24 * H
    # a sweep that was late fires everything that is due, in order
    assert [n for n, _ in rules.plan_escalation(POLICY, clock(), T0 + 30 * H).fire] == [1, 2, 3]
    assert rules.plan_escalation(POLICY, clock(steps_fired=3), T0 + 30 * H) == rules.EscalationPlan((), None)


def test_acknowledging_in_time_passes_over_the_unacknowledged_steps() -> None:
    plan = rules.plan_escalation(POLICY, clock(acknowledged=True), T0 + 2 * H)
    assert plan == rules.EscalationPlan((), T0 + 24 * H)
    assert [n for n, _ in rules.plan_escalation(POLICY, clock(acknowledged=True), T0 + 25 * H).fire] == [3]


@pytest.mark.parametrize("status", ["snoozed", "resolved", "auto_resolved", "closed"])
def test_snoozed_and_finished_exceptions_do_not_escalate(status: str) -> None:
    assert rules.plan_escalation(POLICY, clock(status=status), T0 + 30 * H) == rules.EscalationPlan((), None)


def test_the_escalation_policy_for_a_severity() -> None:
    named = replace(POLICY, name="critical", severities=frozenset({"critical"}))
    general = replace(POLICY, name="general")
    assert rules.choose_escalation_policy([general, named], "critical") == named
    assert rules.choose_escalation_policy([general, named], "low") == general
    assert rules.choose_escalation_policy([named], "low") == rules.DEFAULT_ESCALATION


def test_a_resolution_needs_its_codes_and_names_each_problem() -> None:
    assert rules.check_resolution(ResolutionDraft("delivered_late", "carrier", ("contact_carrier",))) == []
    assert rules.check_resolution(ResolutionDraft(None, None, note="sorted it out")) == [
        "outcome: required, one of " + ", ".join(rules.Outcome),
        "rootCause: required, one of " + ", ".join(rules.RootCause),
    ]
    assert rules.check_resolution(
        ResolutionDraft(
            "fixed",
            "gremlins",
            ("call_mum", "rebook", "rebook"),
            cost_amount=Decimal(-1),
            cost_currency="usd",
        )
    ) == [
        "outcome: unknown code 'fixed'; one of " + ", ".join(rules.Outcome),
        "rootCause: unknown code 'gremlins'; one of " + ", ".join(rules.RootCause),
        "actionCodes[0]: unknown action 'call_mum'",
        "actionCodes: an action is listed twice",
        "cost.amount: must not be negative",
        "cost.currency: a three-letter ISO 4217 code (e.g. USD) is required with an amount",
    ]
    assert rules.check_resolution(ResolutionDraft("refunded", "carrier", cost_currency="EUR")) == [
        "cost.amount: required with a currency"
    ]


def case(
    kind: str, outcome: str, hours: float, actions: tuple[str, ...] = (), version: int = 1
) -> ResolvedCase:
    return ResolvedCase(kind, uuid.UUID(int=5), version, outcome, actions, dt.timedelta(hours=hours))


def test_median_time_to_resolve_per_type_and_per_action() -> None:
    cases = [
        case("MILESTONE_LATE", "delivered_late", 2, ("contact_carrier",)),
        case("MILESTONE_LATE", "delivered_late", 4, ("contact_carrier", "notify_customer")),
        case("MILESTONE_LATE", "false_positive", 9),
        case("CUSTOMS_HOLD", "customs_cleared", 30, ("request_documents",)),
    ]
    assert rules.median_time_to_resolve(cases, by="type") == [
        rules.Median("CUSTOMS_HOLD", 1, 30 * H),
        rules.Median("MILESTONE_LATE", 3, 4 * H),
    ]
    assert rules.median_time_to_resolve(cases, by="action") == [
        rules.Median("contact_carrier", 2, 3 * H),
        rules.Median("notify_customer", 1, 4 * H),
        rules.Median("request_documents", 1, 30 * H),
    ]


def test_precision_per_rule_version_counts_false_positives() -> None:
    cases = [
        case("MILESTONE_LATE", "delivered_late", 1),
        case("MILESTONE_LATE", "false_positive", 1),
        case("MILESTONE_LATE", "false_positive", 1),
        case("MILESTONE_LATE", "reshipped", 1),
        case("MILESTONE_LATE", "false_positive", 1, version=2),
    ]
    precision = rules.precision_by_rule(cases)
    assert [(p.rule_version, p.resolved, p.false_positives, p.precision) for p in precision] == [
        (1, 4, 2, 0.5),
        (2, 1, 1, 0.0),
    ]


def test_the_current_opening_starts_at_the_last_reopening_even_among_entries_of_one_instant() -> None:
    entries = [
        ("opened", "open", T0, {}),
        ("action", None, T0 + H, {"action": "contact_carrier"}),
        ("resolve", "resolved", T0 + 2 * H, {}),
        # the reopening and its triage's automatic action share one instant, written in either order
        ("action", None, T0 + 5 * H, {"action": "notify_customer"}),
        ("reopen", "reopened", T0 + 5 * H, {}),
        ("action", None, T0 + 6 * H, {"action": "notify_customer"}),
        ("action", None, T0 + 7 * H, {"action": "rebook"}),
    ]
    assert rules.current_opening(entries) == rules.Opening(T0 + 5 * H, ("notify_customer", "rebook"))
    assert rules.current_opening(entries[:3]) == rules.Opening(T0, ("contact_carrier",))
    assert rules.current_opening([]) == rules.Opening(None, ())
