from __future__ import annotations

from sqlalchemy import ARRAY, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from domain.db import Base


class Carrier(Base):
    """Reference data shared by all tenants (like a Citus reference table): no ``tenant_id``, read-only
    to the application role. ``code`` is the SCAC for ocean/road, the IATA code for air, or our own."""

    __tablename__ = "carrier"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    scac: Mapped[str | None] = mapped_column(String(4), nullable=True)
    iata_code: Mapped[str | None] = mapped_column(String(3), nullable=True)
    modes: Mapped[list[str]] = mapped_column(ARRAY(Text))
