"""Workflow tables: how a tenant routes, answers, escalates and resolves exceptions.

Per-exception workflow state (due times, escalation progress, acknowledgement) lives on
``shipment_exception`` itself; its history lives in ``exception_activity``. These tables hold the tenant's
policies and the structured resolutions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import TenantOwned
from domain.db import Base
from domain.exceptions.models import Severity
from domain.tenancy.models import SlaTier, sql_in
from domain.workflow.rules import Outcome, RootCause, ValueBand


class AssignmentRule(TenantOwned, Base):
    """Route matching new exceptions to a team and/or a user; the lowest ``position`` that matches wins."""

    __tablename__ = "assignment_rule"

    name: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)
    match: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    team_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "team_id"], ["team.tenant_id", "team.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["app_user.tenant_id", "app_user.id"], ondelete="CASCADE"
        ),
        CheckConstraint("team_id IS NOT NULL OR user_id IS NOT NULL", name="has_target"),
        Index("uq_assignment_rule_name", "tenant_id", "name", unique=True),
    )


class ResponseTargetRow(TenantOwned, Base):
    """A tenant's respond-by and resolve-by times for a severity (and optionally one SLA tier)."""

    __tablename__ = "response_target"

    severity: Mapped[str] = mapped_column(String(16))
    sla_tier: Mapped[str | None] = mapped_column(String(16), nullable=True)
    respond_within_minutes: Mapped[int] = mapped_column(Integer)
    resolve_within_minutes: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint(sql_in("severity", Severity), name="severity"),
        CheckConstraint(f"sla_tier IS NULL OR {sql_in('sla_tier', SlaTier)}", name="sla_tier"),
        CheckConstraint(
            "respond_within_minutes > 0 AND resolve_within_minutes >= respond_within_minutes", name="windows"
        ),
        Index("uq_response_target", "tenant_id", "severity", text("coalesce(sla_tier, '')"), unique=True),
    )


class Playbook(TenantOwned, Base):
    """Recommended actions for an exception type, optionally only for one SLA tier and/or value band."""

    __tablename__ = "playbook"

    name: Mapped[str] = mapped_column(Text)
    exception_type: Mapped[str] = mapped_column(String(48))
    sla_tier: Mapped[str | None] = mapped_column(String(16), nullable=True)
    value_band: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # [{"code", "title", "automatic", "policy": {"max_value", "tiers", "severities"}}]
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        CheckConstraint(f"sla_tier IS NULL OR {sql_in('sla_tier', SlaTier)}", name="sla_tier"),
        CheckConstraint(f"value_band IS NULL OR {sql_in('value_band', ValueBand)}", name="value_band"),
        Index(
            "uq_playbook_specificity",
            "tenant_id",
            "exception_type",
            text("coalesce(sla_tier, '')"),
            text("coalesce(value_band, '')"),
            unique=True,
        ),
    )


class EscalationPolicy(TenantOwned, Base):
    """Steps (delay after a missed due time, target) for exceptions of some severities (all when null)."""

    __tablename__ = "escalation_policy"

    name: Mapped[str] = mapped_column(Text)
    severities: Mapped[list[str] | None] = mapped_column(ARRAY(Text), nullable=True)
    # [{"trigger": "not_acknowledged" or "not_resolved", "after_minutes", "target", "target_id"}]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (Index("uq_escalation_policy_name", "tenant_id", "name", unique=True),)


class ExceptionResolution(TenantOwned, Base):
    """How a person resolved an exception, in codes: what was done, what came of it, why it happened, what
    it cost. One row per resolution (an exception resolved, reopened and resolved again has two)."""

    __tablename__ = "exception_resolution"

    exception_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # copied from the exception at resolution time, so metrics need no join and survive rule changes
    exception_type: Mapped[str] = mapped_column(String(48))
    rule_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    rule_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    playbook_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    root_cause: Mapped[str] = mapped_column(String(16))
    action_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    cost_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    cost_currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    customer_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved_by_kind: Mapped[str] = mapped_column(String(16))
    resolved_by_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "exception_id"],
            ["shipment_exception.tenant_id", "shipment_exception.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        ForeignKeyConstraint(["tenant_id", "rule_id"], ["rule.tenant_id", "rule.id"]),
        ForeignKeyConstraint(["tenant_id", "playbook_id"], ["playbook.tenant_id", "playbook.id"]),
        ForeignKeyConstraint(["tenant_id", "resolved_by_user_id"], ["app_user.tenant_id", "app_user.id"]),
        CheckConstraint(sql_in("outcome", Outcome), name="outcome"),
        CheckConstraint(sql_in("root_cause", RootCause), name="root_cause"),
        CheckConstraint("resolved_by_kind IN ('user', 'api_client')", name="resolved_by_kind"),
        CheckConstraint("(cost_amount IS NULL) = (cost_currency IS NULL)", name="cost"),
        Index("ix_exception_resolution_exception", "tenant_id", "exception_id", "resolved_at"),
        Index("ix_exception_resolution_resolved", "tenant_id", "resolved_at"),
    )
