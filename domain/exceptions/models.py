from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import TenantOwned
from domain.db import Base
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
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    AUTO_RESOLVED = "auto_resolved"
    CLOSED = "closed"


CLOSED_STATUSES = (ExceptionStatus.RESOLVED, ExceptionStatus.AUTO_RESOLVED, ExceptionStatus.CLOSED)


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
    """A tenant's detection rule for one exception type; a change is a new version, never an edit."""

    __tablename__ = "rule"

    exception_type: Mapped[str] = mapped_column(String(48))
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    mode: Mapped[str] = mapped_column(String(16), default=RuleMode.ENABLED)
    scope: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)

    __table_args__ = (
        UniqueConstraint("tenant_id", "exception_type", "name", "version"),
        CheckConstraint(sql_in("mode", RuleMode), name="mode"),
    )


class ShipmentException(TenantOwned, Base):
    """A detected problem with a shipment: one open row per (shipment, type, milestone)."""

    __tablename__ = "shipment_exception"

    shipment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    exception_type: Mapped[str] = mapped_column(String(48))
    category: Mapped[str] = mapped_column(String(24))
    milestone_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=ExceptionStatus.OPEN)
    severity: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    rule_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    explanation: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    assignee_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    assignee_team_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    snoozed_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "shipment_id"], ["shipment.tenant_id", "shipment.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["tenant_id", "rule_id"], ["rule.tenant_id", "rule.id"]),
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
            unique=True,
            postgresql_where=text(f"NOT ({sql_in('status', CLOSED_STATUSES)})"),
        ),
        Index("ix_shipment_exception_shipment", "tenant_id", "shipment_id"),
        Index("ix_shipment_exception_queue", "tenant_id", "status", "severity", "last_seen_at"),
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
