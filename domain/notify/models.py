"""Notification tables: in-app notifications, preferences, followers, e-mail templates and branding, the
e-mail queue, webhook endpoints with their deliveries and attempts.

Deliveries and e-mails are rows first and network calls second: the fan-out writes them in one
transaction (idempotent on the outbox row they come from), and the senders work through what is due.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
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
from domain.notify.rules import Delivery, TemplateKey
from domain.tenancy.models import sql_in


class Notification(TenantOwned, Base):
    """One in-app notification for one user."""

    __tablename__ = "notification"

    user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    outbox_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the change it announces
    topic: Mapped[str] = mapped_column(String(48))
    exception_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # false when the user turned in-app notifications off but takes e-mail as a digest: the row only waits
    # for the digest and is not listed in the app
    in_app: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    # set when the user takes e-mail as a digest: the next digest collects it, then clears this
    digest_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["app_user.tenant_id", "app_user.id"], ondelete="CASCADE"
        ),
        CheckConstraint(sql_in("severity", Severity), name="severity"),
        Index("ix_notification_user", "tenant_id", "user_id", "created_at"),
        Index(
            "uq_notification_outbox",
            "tenant_id",
            "outbox_id",
            "user_id",
            unique=True,
            postgresql_where=text("outbox_id IS NOT NULL"),
        ),
        Index("ix_notification_digest", "tenant_id", "user_id", postgresql_where=text("digest_pending")),
    )


class NotificationPreference(TenantOwned, Base):
    """What a user, or every user of a shipper account, wants to hear and how."""

    __tablename__ = "notification_preference"

    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    categories: Mapped[list[str] | None] = mapped_column(ARRAY(Text), nullable=True)
    min_severity: Mapped[str] = mapped_column(String(16), default=Severity.LOW)
    email: Mapped[bool] = mapped_column(Boolean, default=True)
    in_app: Mapped[bool] = mapped_column(Boolean, default=True)
    delivery: Mapped[str] = mapped_column(String(16), default=Delivery.IMMEDIATE)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["app_user.tenant_id", "app_user.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["account.tenant_id", "account.id"], ondelete="CASCADE"
        ),
        CheckConstraint("(user_id IS NULL) <> (account_id IS NULL)", name="owner"),
        CheckConstraint(sql_in("min_severity", Severity), name="min_severity"),
        CheckConstraint(sql_in("delivery", Delivery), name="delivery"),
        Index("uq_notification_preference_user", "tenant_id", "user_id", unique=True),
        Index("uq_notification_preference_account", "tenant_id", "account_id", unique=True),
    )


class ExceptionFollower(Base):
    """A user following an exception: told about its changes like its assignee."""

    __tablename__ = "exception_follower"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    exception_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "exception_id"],
            ["shipment_exception.tenant_id", "shipment_exception.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["app_user.tenant_id", "app_user.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        Index("ix_exception_follower_user", "tenant_id", "user_id"),
    )


class EmailTemplate(TenantOwned, Base):
    """A tenant's override of one template key (the built-in ones are in default_templates.toml)."""

    __tablename__ = "email_template"

    key: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        CheckConstraint(sql_in("key", TemplateKey), name="key"),
        Index("uq_email_template_key", "tenant_id", "key", unique=True),
    )


class MailBranding(TenantOwned, Base):
    """How a tenant's e-mails look and who they come from (one row per tenant)."""

    __tablename__ = "mail_branding"

    display_name: Mapped[str] = mapped_column(Text)
    from_address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    colour: Mapped[str] = mapped_column(String(7), default="#1f6feb")
    footer: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        CheckConstraint("colour ~ '^#[0-9a-fA-F]{6}$'", name="colour"),
        Index("uq_mail_branding_tenant", "tenant_id", unique=True),
    )


class EmailStatus:
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class EmailMessage(TenantOwned, Base):
    """An e-mail to send (or sent): rendered when queued, so a later template change does not alter it."""

    __tablename__ = "email_message"

    outbox_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    to_address: Mapped[str] = mapped_column(String(320))
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    template_key: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=EmailStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        Index(
            "uq_email_message_outbox",
            "tenant_id",
            "outbox_id",
            "to_address",
            "template_key",
            unique=True,
            postgresql_where=text("outbox_id IS NOT NULL"),
        ),
        Index(
            "ix_email_message_due",
            "tenant_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class WebhookEndpoint(TenantOwned, Base):
    """Where to POST signed events: the tenant's own (``account_id`` null, staff view of everything it
    subscribes to) or a shipper account's (the customer view of its own exceptions only)."""

    __tablename__ = "webhook_endpoint"

    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    secret: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # after a failure nothing is sent to it before this time (its backoff, or its Retry-After)
    retry_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "account_id"], ["account.tenant_id", "account.id"], ondelete="CASCADE"
        ),
        Index("ix_webhook_endpoint_account", "tenant_id", "account_id"),
    )


class WebhookDelivery(TenantOwned, Base):
    """One event for one endpoint: its body is fixed when queued; attempts follow until it is delivered or
    the attempts run out (then ``failed``; a person may replay it)."""

    __tablename__ = "webhook_delivery"

    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)  # the endpoint's
    outbox_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    event_type: Mapped[str] = mapped_column(String(48))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    replay_of: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "endpoint_id"],
            ["webhook_endpoint.tenant_id", "webhook_endpoint.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        Index(
            "uq_webhook_delivery_outbox",
            "tenant_id",
            "endpoint_id",
            "outbox_id",
            unique=True,
            postgresql_where=text("outbox_id IS NOT NULL"),
        ),
        Index(
            "ix_webhook_delivery_due",
            "tenant_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_delivery_endpoint", "tenant_id", "endpoint_id", "created_at"),
    )


class WebhookAttempt(TenantOwned, Base):
    """One HTTP attempt of a delivery: the delivery log."""

    __tablename__ = "webhook_attempt"

    delivery_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    attempted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "delivery_id"],
            ["webhook_delivery.tenant_id", "webhook_delivery.id"],
            ondelete="CASCADE",
        ),
        Index("ix_webhook_attempt_delivery", "tenant_id", "delivery_id", "attempted_at"),
    )
