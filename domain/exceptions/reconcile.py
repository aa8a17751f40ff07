"""From findings to exception changes, without alert storms: a pure function of the exceptions a shipment has,
what the engine found now, and ``now``.

One exception is open per key ``(type, key, shadow)``. A finding whose key is open updates it (a new
occurrence only when its facts changed); a snoozed one stays quiet until the snooze expires. A finding whose
key closed recently (within the reopen window) comes back as the same exception, reopened; a person's
resolution of the very same facts (same fingerprint) holds whatever its age — only new facts bring it back.
An open exception whose rule ran and found nothing is auto-resolved, with the reason.
Exceptions of types whose rule did not run (disabled, out of scope) are left as they are.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from domain.exceptions.models import CLOSED_STATUSES, ExceptionStatus
from domain.exceptions.rules import RuledFinding

DEFAULT_REOPEN_WINDOW = dt.timedelta(days=3)

Key = tuple[str, str | None, bool]  # (exception type, key, shadow)


@dataclass(frozen=True)
class ExceptionRecord:
    """What reconciliation needs of a stored exception."""

    id: uuid.UUID
    exception_type: str
    key: str | None
    shadow: bool
    status: str
    fingerprint: str
    snoozed_until: dt.datetime | None = None
    resolved_at: dt.datetime | None = None

    @property
    def identity(self) -> Key:
        return (self.exception_type, self.key, self.shadow)

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES


class ChangeKind(StrEnum):
    OPEN = "open"  # a new exception
    UPDATE = "update"  # the same exception seen again (``new_occurrence`` when its facts changed)
    UNSNOOZE = "unsnooze"  # its snooze expired and the condition still holds
    REOPEN = "reopen"  # a recently closed exception whose condition came back
    AUTO_RESOLVE = "auto_resolve"  # the condition cleared


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    finding: RuledFinding | None  # None only for AUTO_RESOLVE
    record: ExceptionRecord | None  # None only for OPEN
    new_occurrence: bool = False
    reason: str | None = None


def finding_identity(finding: RuledFinding, shadow: bool) -> Key:
    return (finding.finding.type, finding.finding.key, shadow)


def reconcile(
    records: Sequence[ExceptionRecord],
    findings: Sequence[RuledFinding],
    shadow_findings: Sequence[RuledFinding],
    evaluated: Collection[str],
    shadow_evaluated: Collection[str],
    now: dt.datetime,
    reopen_window: dt.timedelta = DEFAULT_REOPEN_WINDOW,
) -> list[Change]:
    open_by_key = {r.identity: r for r in records if r.is_open}
    latest_closed: dict[Key, ExceptionRecord] = {}
    for record in records:
        if record.is_open or record.resolved_at is None:
            continue
        current = latest_closed.get(record.identity)
        if current is None or (record.resolved_at, str(record.id)) > (
            current.resolved_at or now,
            str(current.id),
        ):
            latest_closed[record.identity] = record

    changes: list[Change] = []
    found: set[Key] = set()
    for shadow, group in ((False, findings), (True, shadow_findings)):
        for finding in group:
            identity = finding_identity(finding, shadow)
            if identity in found:  # one finding per key: the engine guarantees it, this keeps it true
                continue
            found.add(identity)
            changes += _for_finding(
                finding, open_by_key.get(identity), latest_closed.get(identity), now, reopen_window
            )

    for identity, record in open_by_key.items():
        ran = shadow_evaluated if record.shadow else evaluated
        if identity not in found and record.exception_type in ran:
            changes.append(
                Change(
                    ChangeKind.AUTO_RESOLVE,
                    None,
                    record,
                    reason=f"{record.exception_type} no longer detected: the condition cleared",
                )
            )
    return changes


def _for_finding(
    finding: RuledFinding,
    open_record: ExceptionRecord | None,
    closed: ExceptionRecord | None,
    now: dt.datetime,
    reopen_window: dt.timedelta,
) -> list[Change]:
    fingerprint = finding.finding.fingerprint
    if open_record is not None:
        new = open_record.fingerprint != fingerprint
        if open_record.status == ExceptionStatus.SNOOZED and (
            open_record.snoozed_until is None or open_record.snoozed_until <= now
        ):
            return [Change(ChangeKind.UNSNOOZE, finding, open_record, new_occurrence=new)]
        return [Change(ChangeKind.UPDATE, finding, open_record, new_occurrence=new)]
    if closed is not None:
        handled_by_person = closed.status != ExceptionStatus.AUTO_RESOLVED
        if handled_by_person and closed.fingerprint == fingerprint:
            return []  # a person resolved exactly these facts; only new facts bring it back
        if closed.resolved_at is not None and closed.resolved_at >= now - reopen_window:
            return [Change(ChangeKind.REOPEN, finding, closed, new_occurrence=True)]
    return [Change(ChangeKind.OPEN, finding, None, new_occurrence=True)]
