from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import TenantOwned
from domain.db import Base


class DeadLetter(TenantOwned, Base):
    """A background job that failed its last attempt: kept whole, visible, and replayable.

    Every job message carries its tenant's id, so a dead letter belongs to that tenant like any other row.
    """

    __tablename__ = "dead_letter"

    actor_name: Mapped[str] = mapped_column(String(64))
    queue_name: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(64))
    args: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    replayed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    replay_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_dead_letter_pending", "tenant_id", "failed_at", postgresql_where="replayed_at IS NULL"),
        Index("uq_dead_letter_message", "tenant_id", "message_id", unique=True),
    )
