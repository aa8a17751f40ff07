"""No alert storms: reconciliation's invariants, whatever the order and repetition of findings, snoozes and
people resolving things. Pure: a small in-memory store applies the changes as the service does."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.exceptions.models import Category, ExceptionStatus, RuleMode, Severity
from domain.exceptions.reconcile import ChangeKind, ExceptionRecord, reconcile
from domain.exceptions.rules import Finding, RuledFinding
from domain.exceptions.taxonomy import ExceptionType
from tests.domain.detection_support import T0, H, rule

KEYS = [
    (ExceptionType.MILESTONE_LATE, "DEPARTED"),
    (ExceptionType.MILESTONE_LATE, "ARRIVED"),
    (ExceptionType.CUSTOMS_HOLD, None),
]
WINDOW = dt.timedelta(hours=72)


def ruled(exception_type: ExceptionType, key: str | None, fact: int, *, shadow: bool = False) -> RuledFinding:
    finding = Finding(exception_type, key, f"fact {fact}", {"fact": fact})
    config = rule(exception_type, mode=RuleMode.SHADOW if shadow else RuleMode.ENABLED)
    return RuledFinding(finding, config, Category.DELAY, Severity.LOW, 0)


@dataclass
class Store:
    records: list[ExceptionRecord]

    def apply(self, changes: list, now: dt.datetime) -> None:  # type: ignore[type-arg]
        for change in changes:
            if change.kind == ChangeKind.OPEN:
                finding = change.finding
                self.records.append(
                    ExceptionRecord(
                        uuid.uuid4(),
                        finding.finding.type,
                        finding.finding.key,
                        finding.rule.mode == RuleMode.SHADOW,
                        ExceptionStatus.OPEN,
                        finding.finding.fingerprint,
                    )
                )
                continue
            index = self.records.index(change.record)
            record = self.records[index]
            if change.kind == ChangeKind.AUTO_RESOLVE:
                record = replace(
                    record, status=ExceptionStatus.AUTO_RESOLVED, resolved_at=now, snoozed_until=None
                )
            elif change.kind == ChangeKind.REOPEN:
                record = replace(
                    record,
                    status=ExceptionStatus.REOPENED,
                    resolved_at=None,
                    fingerprint=change.finding.finding.fingerprint,
                )
            elif change.kind == ChangeKind.UNSNOOZE:
                record = replace(
                    record,
                    status=ExceptionStatus.OPEN,
                    snoozed_until=None,
                    fingerprint=change.finding.finding.fingerprint,
                )
            else:
                record = replace(record, fingerprint=change.finding.finding.fingerprint)
            self.records[index] = record


finding_sets = st.lists(
    st.tuples(st.integers(0, len(KEYS) - 1), st.integers(0, 2), st.booleans()), max_size=5
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("evaluate"), finding_sets),
        st.tuples(st.just("resolve"), st.integers(0, 20)),
        st.tuples(st.just("snooze"), st.integers(0, 20), st.integers(1, 48)),
        st.tuples(st.just("wait"), st.integers(1, 100)),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_never_two_open_exceptions_for_one_key_and_findings_always_have_one(plan: list[tuple]) -> None:  # type: ignore[type-arg]
    store = Store([])
    now = T0
    for step in plan:
        if step[0] == "wait":
            now += step[1] * H
            continue
        if step[0] in ("resolve", "snooze"):
            open_records = [r for r in store.records if r.is_open]
            if open_records:
                target = open_records[step[1] % len(open_records)]
                index = store.records.index(target)
                if step[0] == "resolve":
                    store.records[index] = replace(target, status=ExceptionStatus.RESOLVED, resolved_at=now)
                else:
                    store.records[index] = replace(
                        target, status=ExceptionStatus.SNOOZED, snoozed_until=now + step[2] * H
                    )
            continue
        findings = {}
        for key_index, fact, shadow in step[1]:
            exception_type, key = KEYS[key_index]
            findings.setdefault(
                (exception_type, key, shadow), ruled(exception_type, key, fact, shadow=shadow)
            )
        enabled = [f for (_, _, shadow), f in findings.items() if not shadow]
        shadowed = [f for (_, _, shadow), f in findings.items() if shadow]
        types = {t for t, _ in KEYS}
        before = list(store.records)
        changes = reconcile(store.records, enabled, shadowed, types, types, now, WINDOW)
        store.apply(changes, now)

        open_keys = [r.identity for r in store.records if r.is_open]
        assert len(open_keys) == len(set(open_keys)), "two open exceptions for one key"
        for identity, finding in findings.items():
            opened = [r for r in store.records if r.is_open and r.identity == identity]
            if opened:
                assert opened[0].fingerprint == finding.finding.fingerprint
                continue
            # the only way a finding has no open exception: a person resolved these very facts
            closed = [r for r in before if r.identity == identity and not r.is_open]
            latest = max(closed, key=lambda r: r.resolved_at or T0)
            assert latest.status == ExceptionStatus.RESOLVED
            assert latest.fingerprint == finding.finding.fingerprint
        for record in store.records:
            if record.is_open and record.identity not in findings:
                raise AssertionError(f"{record.identity} stays open without a finding")
        for record in store.records:
            if record.status == ExceptionStatus.SNOOZED:
                assert record.snoozed_until is not None
                assert record.snoozed_until > now, "an expired snooze with a live finding opens again"


def test_the_same_facts_twice_are_one_occurrence_and_new_facts_another() -> None:
    late = ruled(ExceptionType.MILESTONE_LATE, "DEPARTED", 1)
    [opened] = reconcile([], [late], [], {"MILESTONE_LATE"}, set(), T0)
    assert (opened.kind, opened.new_occurrence) == (ChangeKind.OPEN, True)
    record = ExceptionRecord(
        uuid.uuid4(), "MILESTONE_LATE", "DEPARTED", False, "open", late.finding.fingerprint
    )
    [same] = reconcile([record], [late], [], {"MILESTONE_LATE"}, set(), T0 + H)
    assert (same.kind, same.new_occurrence) == (ChangeKind.UPDATE, False)
    later = ruled(ExceptionType.MILESTONE_LATE, "DEPARTED", 2)
    [new] = reconcile([record], [later], [], {"MILESTONE_LATE"}, set(), T0 + H)
    assert (new.kind, new.new_occurrence) == (ChangeKind.UPDATE, True)


def test_recurrence_reopens_within_the_window_and_opens_anew_after_it() -> None:
    late = ruled(ExceptionType.MILESTONE_LATE, "DEPARTED", 1)
    cleared = ExceptionRecord(
        uuid.uuid4(), "MILESTONE_LATE", "DEPARTED", False, "auto_resolved", "old", resolved_at=T0
    )
    [within] = reconcile([cleared], [late], [], {"MILESTONE_LATE"}, set(), T0 + 71 * H, WINDOW)
    assert (within.kind, within.record) == (ChangeKind.REOPEN, cleared)
    [after] = reconcile([cleared], [late], [], {"MILESTONE_LATE"}, set(), T0 + 73 * H, WINDOW)
    assert (after.kind, after.record) == (ChangeKind.OPEN, None)


def test_a_persons_resolution_holds_until_the_facts_change() -> None:
    late = ruled(ExceptionType.MILESTONE_LATE, "DEPARTED", 1)
    handled = ExceptionRecord(
        uuid.uuid4(),
        "MILESTONE_LATE",
        "DEPARTED",
        False,
        "resolved",
        late.finding.fingerprint,
        resolved_at=T0,
    )
    assert reconcile([handled], [late], [], {"MILESTONE_LATE"}, set(), T0 + 500 * H) == []
    worse = ruled(ExceptionType.MILESTONE_LATE, "DEPARTED", 2)
    [back] = reconcile([handled], [worse], [], {"MILESTONE_LATE"}, set(), T0 + H)
    assert back.kind == ChangeKind.REOPEN


def test_types_whose_rule_did_not_run_keep_their_exceptions() -> None:
    record = ExceptionRecord(uuid.uuid4(), "CUSTOMS_HOLD", None, False, "open", "x")
    assert reconcile([record], [], [], {"MILESTONE_LATE"}, set(), T0) == []
    [resolved] = reconcile([record], [], [], {"CUSTOMS_HOLD"}, set(), T0)
    assert resolved.kind == ChangeKind.AUTO_RESOLVE
    assert resolved.reason == "CUSTOMS_HOLD no longer detected: the condition cleared"
