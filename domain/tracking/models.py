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
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import TenantOwned
from domain.db import Base
from domain.tenancy.models import sql_in
from domain.tracking.canonical import Classifier

# one vocabulary for PLN/EST/ACT: the stored column and the canonical event share it
EventClassifier = Classifier


class IngestStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    PARTIALLY_ACCEPTED = "partially_accepted"
    REJECTED = "rejected"


class IngestMessage(TenantOwned, Base):
    """A request body exactly as received, stored before any parsing so nothing accepted is ever lost."""

    __tablename__ = "ingest_message"

    format: Mapped[str] = mapped_column(String(32))
    content_type: Mapped[str | None] = mapped_column(Text, nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    api_client_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(24), default=IngestStatus.RECEIVED)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # one entry per event: position, outcome (accepted, duplicate, parked, rejected), event id or error
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    event_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    accepted_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    parked_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rejected_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    processed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    acknowledgment: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    acknowledgment_media_type: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "api_client_id"], ["api_client.tenant_id", "api_client.id"]),
        UniqueConstraint("tenant_id", "idempotency_key"),
        CheckConstraint(sql_in("status", IngestStatus), name="status"),
        Index("ix_ingest_message_received", "tenant_id", "received_at"),
    )


class CodeMapping(TenantOwned, Base):
    """A tenant's override of a built-in code mapping, for all carriers or for one."""

    __tablename__ = "code_mapping"

    carrier_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    system: Mapped[str] = mapped_column(String(48))
    code: Mapped[str] = mapped_column(String(64))
    milestone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    signal: Mapped[str | None] = mapped_column(String(32), nullable=True)
    raw_only: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index(
            "uq_code_mapping_key",
            "tenant_id",
            "system",
            "code",
            text("coalesce(carrier_code, '')"),
            unique=True,
        ),
        CheckConstraint("milestone IS NOT NULL OR signal IS NOT NULL OR raw_only", name="maps_something"),
    )


class IngestEndpoint(TenantOwned, Base):
    """Per-tenant settings of a webhook ingest endpoint: the HMAC secrets its sender signs with.

    Secrets are kept as given (verification needs them); several allow rotation without downtime."""

    __tablename__ = "ingest_endpoint"

    format: Mapped[str] = mapped_column(String(32))
    secrets: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    require_signature: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (UniqueConstraint("tenant_id", "format"),)


class TrackingEvent(TenantOwned, Base):
    """A canonical event from any source. ``shipment_id`` is empty while the event is parked unmatched."""

    __tablename__ = "tracking_event"

    shipment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    ingest_message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    source: Mapped[str] = mapped_column(String(32))
    source_event_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    dedup_key: Mapped[str] = mapped_column(String(128))
    classifier: Mapped[str] = mapped_column(String(3))
    milestone_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    raw_code: Mapped[str] = mapped_column(Text)
    raw_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    location_locode: Mapped[str | None] = mapped_column(String(5), nullable=True)
    location_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    utc_offset_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    references: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    # the reference values alone, GIN-indexed so parked events are found when a shipment gains one
    reference_values: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    code_system: Mapped[str | None] = mapped_column(String(48), nullable=True)
    qualifier_system: Mapped[str | None] = mapped_column(String(48), nullable=True)
    signals: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    unknown_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    carrier_code: Mapped[str | None] = mapped_column(String(16), nullable=True)
    place: Mapped[dict[str, str] | None] = mapped_column(JSONB, nullable=True)
    # when the source issued this version (DCSA eventUpdatedDateTime); a later version replaces an earlier
    version_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    is_retracted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "shipment_id"], ["shipment.tenant_id", "shipment.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "ingest_message_id"], ["ingest_message.tenant_id", "ingest_message.id"]
        ),
        UniqueConstraint("tenant_id", "dedup_key"),
        CheckConstraint(sql_in("classifier", EventClassifier), name="classifier"),
        Index("ix_tracking_event_shipment", "tenant_id", "shipment_id", "occurred_at"),
        Index("ix_tracking_event_parked", "tenant_id", "received_at", postgresql_where="shipment_id IS NULL"),
        Index(
            "ix_tracking_event_parked_references",
            "reference_values",
            postgresql_using="gin",
            postgresql_where="shipment_id IS NULL",
        ),
        Index("ix_tracking_event_source_id", "tenant_id", "source", "source_event_id"),
    )
