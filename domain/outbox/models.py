from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, String, Uuid, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import utcnow
from domain.db import Base


class OutboxMessage(Base):
    """A change someone may want to hear about, written in the same transaction as the change itself.

    A dispatcher turns unsent rows into worker messages, webhooks, e-mails and one ``NOTIFY`` per batch.
    ``id`` is a global sequence so the dispatcher can read in order; the key still leads with ``tenant_id``.
    """

    __tablename__ = "outbox"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_outbox_pending", "tenant_id", "id", postgresql_where="dispatched_at IS NULL"),
    )
