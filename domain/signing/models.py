from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import utcnow
from domain.db import Base


class SigningKey(Base):
    """A key that signs access tokens (ES256), shared by every API process. Platform data like
    ``carrier``: no ``tenant_id``.

    The private half is stored encrypted (a JWE, ``dir`` + ``A256GCM``, under the key-encryption key only
    the API processes and the CLI hold), so reading this table is not enough to forge tokens. It is
    erased once another key signs; the public half stays for as long as tokens it signed may live.
    """

    __tablename__ = "signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    private_key_jwe: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )
    # published in the JWKS from creation; signs from activates_at (the newest active key signs)
    activates_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # from then on tokens it signed are refused and it leaves the JWKS; null while it signs
    retire_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
