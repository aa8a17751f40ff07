from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime, ForeignKeyConstraint, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import TenantOwned
from domain.db import Base


class ShipmentDocument(TenantOwned, Base):
    """A document received for a shipment (commercial invoice, packing list, certificate of origin ...)."""

    __tablename__ = "shipment_document"

    shipment_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    document_type: Mapped[str] = mapped_column(String(48))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(32), default="api")
    reference: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "shipment_id"], ["shipment.tenant_id", "shipment.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("tenant_id", "shipment_id", "document_type"),
    )
