from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import TenantOwned, utcnow
from domain.db import Base
from domain.shipments.models import LOCODE_CHECK
from domain.tenancy.models import sql_in


class Category(StrEnum):
    DELAY = "delay"
    CUSTOMS = "customs"
    DOCUMENTATION = "documentation"
    DAMAGE = "damage"
    LOSS = "loss"
    ADDRESS = "address"
    ROUTE = "route"
    CARRIER = "carrier"
    EXTERNAL = "external"
    DATA_QUALITY = "data_quality"
    BILLING = "billing"


class ExceptionStatus(StrEnum):
    OPEN = "open"
    REOPENED = "reopened"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    AUTO_RESOLVED = "auto_resolved"
    CLOSED = "closed"


CLOSED_STATUSES = (ExceptionStatus.RESOLVED, ExceptionStatus.AUTO_RESOLVED, ExceptionStatus.CLOSED)
OPEN_STATUSES = tuple(s for s in ExceptionStatus if s not in CLOSED_STATUSES)


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RuleMode(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    SHADOW = "shadow"


class Rule(TenantOwned, Base):
    """A tenant's detection rule for one exception type; a change is a new version row, never an edit.

    The rule in force for ``(exception_type, name)`` is its highest version. ``scope`` narrows the shipments
    it applies to (modes, carriers, lanes, accounts, SLA tiers); ``parameters`` are the type's thresholds.
    """

    __tablename__ = "rule"

    exception_type: Mapped[str] = mapped_column(String(48))
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    mode: Mapped[str] = mapped_column(String(16), default=RuleMode.ENABLED)
    scope: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by: Mapped[str | None] = mapped_column(Text, nullable=True)  # the principal's subject

    __table_args__ = (
        UniqueConstraint("tenant_id", "exception_type", "name", "version"),
        CheckConstraint(sql_in("mode", RuleMode), name="mode"),
        CheckConstraint("version >= 1", name="version"),
    )


class GroupStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ExceptionGroup(TenantOwned, Base):
    """Exceptions with one cause (a vessel voyage, a port, a carrier, a disruption notice), handled once."""

    __tablename__ = "exception_group"

    cause_kind: Mapped[str] = mapped_column(String(24))
    cause_key: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=GroupStatus.OPEN)
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    snoozed_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        CheckConstraint(sql_in("status", GroupStatus), name="status"),
        Index(
            "uq_exception_group_open_cause",
            "tenant_id",
            "cause_kind",
            "cause_key",
            unique=True,
            postgresql_where=text("status = 'open'"),
        ),
    )


class ShipmentException(TenantOwned, Base):
    """A detected problem with a shipment: one open row per (shipment, type, milestone)."""

    __tablename__ = "shipment_exception"

    shipment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)  # the shipment's, so shippers see their own
    exception_type: Mapped[str] = mapped_column(String(48))
    category: Mapped[str] = mapped_column(String(24))
    milestone_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # raised by a shadow rule: recorded for comparison, never notified, not in anyone's queue
    shadow: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    status: Mapped[str] = mapped_column(String(16), default=ExceptionStatus.OPEN)
    severity: Mapped[str] = mapped_column(String(16))
    priority_score: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rule_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    rule_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    group_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    explanation: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # a hash of the facts behind the finding: a new occurrence is counted only when it changes
    fingerprint: Mapped[str] = mapped_column(String(64), default="", server_default="")
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    assignee_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    assignee_team_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    snoozed_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolution_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the workflow: when it was acknowledged, when it must be answered and resolved, how far it escalated
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    respond_by: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolve_by: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    escalation_steps_fired: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_escalation_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # set once triage (assignment, due times, automatic playbook actions) has run for the current opening
    triaged_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "shipment_id"], ["shipment.tenant_id", "shipment.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        ForeignKeyConstraint(["tenant_id", "rule_id"], ["rule.tenant_id", "rule.id"]),
        ForeignKeyConstraint(["tenant_id", "group_id"], ["exception_group.tenant_id", "exception_group.id"]),
        ForeignKeyConstraint(["tenant_id", "assignee_user_id"], ["app_user.tenant_id", "app_user.id"]),
        ForeignKeyConstraint(["tenant_id", "assignee_team_id"], ["team.tenant_id", "team.id"]),
        CheckConstraint(sql_in("category", Category), name="category"),
        CheckConstraint(sql_in("status", ExceptionStatus), name="status"),
        CheckConstraint(sql_in("severity", Severity), name="severity"),
        Index(
            "uq_shipment_exception_open_key",
            "tenant_id",
            "shipment_id",
            "exception_type",
            text("coalesce(milestone_code, '')"),
            "shadow",
            unique=True,
            postgresql_where=text(f"NOT ({sql_in('status', CLOSED_STATUSES)})"),
        ),
        Index("ix_shipment_exception_shipment", "tenant_id", "shipment_id"),
        Index("ix_shipment_exception_queue", "tenant_id", "status", "severity", "last_seen_at"),
        Index(
            "ix_shipment_exception_group", "tenant_id", "group_id", postgresql_where="group_id IS NOT NULL"
        ),
        # the escalation sweep reads what is due, like detection's ix_shipment_due
        Index(
            "ix_shipment_exception_escalation_due",
            "tenant_id",
            "next_escalation_at",
            postgresql_where="next_escalation_at IS NOT NULL",
        ),
        # the queue (exceptions ordered by priority); keyset pages continue on (score, created_at, id)
        Index("ix_shipment_exception_priority", "tenant_id", "priority_score", "created_at", "id"),
        Index(
            "ix_shipment_exception_assignee",
            "tenant_id",
            "assignee_user_id",
            postgresql_where="assignee_user_id IS NOT NULL",
        ),
    )


class ExceptionActivity(TenantOwned, Base):
    """An immutable entry in an exception's history: who did what, when, from which state to which."""

    __tablename__ = "exception_activity"

    exception_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # insertion order: entries of one transaction share their time, this keeps them in the order written
    position: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    # shippers see an entry's note only when this is set (their own comments, staff replies meant for them)
    customer_visible: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "exception_id"],
            ["shipment_exception.tenant_id", "shipment_exception.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(["tenant_id", "actor_user_id"], ["app_user.tenant_id", "app_user.id"]),
        CheckConstraint("actor_kind IN ('user', 'system', 'api_client')", name="actor_kind"),
        Index("ix_exception_activity_exception", "tenant_id", "exception_id", "created_at"),
    )


class NoticeCause(StrEnum):
    WEATHER = "weather"
    PORT_CONGESTION = "port_congestion"
    STRIKE = "strike"
    CARRIER = "carrier"
    OTHER = "other"


class NoticeColumns:
    """A disruption: a cause at a place over a time window, applied to every shipment passing there then."""

    cause: Mapped[str] = mapped_column(String(24))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    location_locode: Mapped[str] = mapped_column(String(5))
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(32), default="api")  # api, cli, or the feed it came from
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def _notice_checks() -> tuple[CheckConstraint, ...]:
    return (
        CheckConstraint(sql_in("cause", NoticeCause), name="cause"),
        CheckConstraint("ends_at > starts_at", name="window"),
        CheckConstraint(f"location_locode {LOCODE_CHECK}", name="location_locode"),
    )


class DisruptionNotice(NoticeColumns, TenantOwned, Base):
    """A tenant's own disruption notice."""

    __tablename__ = "disruption_notice"
    __table_args__ = (*_notice_checks(), Index("ix_disruption_notice_place", "tenant_id", "location_locode"))


class GlobalDisruptionNotice(NoticeColumns, Base):
    """A platform-wide notice (a typhoon, a port strike) that applies to every tenant's shipments."""

    __tablename__ = "global_disruption_notice"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )

    __table_args__ = (*_notice_checks(), Index("ix_global_disruption_notice_place", "location_locode"))
