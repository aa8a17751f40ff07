from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from domain.columns import TenantOwned, utcnow
from domain.db import Base
from domain.tenancy.rules import SCOPES_SORTED


class SlaTier(StrEnum):
    PLATINUM = "platinum"
    GOLD = "gold"
    SILVER = "silver"
    STANDARD = "standard"


class Role(StrEnum):
    OPERATIONS = "operations"
    CUSTOMER_SERVICE = "customer_service"
    DOCUMENTATION = "documentation"
    SALES = "sales"
    FINANCE = "finance"
    ADMIN = "admin"
    SHIPPER = "shipper"


STAFF_ROLES = frozenset(Role) - {Role.SHIPPER}
STAFF_ROLES_SORTED = sorted(STAFF_ROLES)


def sql_in(column: str, values: Iterable[str]) -> str:
    """A CHECK expression limiting ``column`` to ``values`` (a closed vocabulary kept in Python)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Tenant(Base):
    """A Milepost customer: a forwarder, 3PL or e-commerce operator. The root of every tenant-owned row."""

    __tablename__ = "tenant"
    __tenant_key__ = "id"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )

    __table_args__ = (CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="slug_format"),)


class Account(TenantOwned, Base):
    """A shipper: the tenant's customer, whose users see only this account's shipments."""

    __tablename__ = "account"

    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    sla_tier: Mapped[str] = mapped_column(String(16), default=SlaTier.STANDARD)

    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint(sql_in("sla_tier", SlaTier), name="sla_tier"),
    )


class Team(TenantOwned, Base):
    """A group of staff who own exceptions together; escalation goes to its lead, then its manager."""

    __tablename__ = "team"

    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the staff role it works as
    lead_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    manager_user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)

    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        ForeignKeyConstraint(["tenant_id", "lead_user_id"], ["app_user.tenant_id", "app_user.id"]),
        ForeignKeyConstraint(["tenant_id", "manager_user_id"], ["app_user.tenant_id", "app_user.id"]),
        CheckConstraint(f"role IS NULL OR {sql_in('role', STAFF_ROLES_SORTED)}", name="role"),
    )


class User(TenantOwned, Base):
    """A person who logs in: tenant staff (no account) or a shipper's user (with ``account_id``)."""

    __tablename__ = "app_user"

    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text))
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        UniqueConstraint("tenant_id", "email"),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("('shipper' = ANY(roles)) = (account_id IS NOT NULL)", name="shipper_has_account"),
        CheckConstraint(f"roles <@ ARRAY[{', '.join(repr(str(r)) for r in Role)}]::text[]", name="roles"),
        CheckConstraint("cardinality(roles) > 0", name="has_role"),
    )


class TeamMember(Base):
    __tablename__ = "team_member"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    team_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "team_id"], ["team.tenant_id", "team.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["app_user.tenant_id", "app_user.id"], ondelete="CASCADE"
        ),
    )


class ApiClient(TenantOwned, Base):
    """A partner system authenticating with OAuth2 client credentials.

    After a secret rotation the secret before it (``previous_secret_hash``) keeps working until
    ``previous_secret_expires_at``; its hash is kept after that so a caller still using it hears that it
    expired rather than that it is wrong.
    """

    __tablename__ = "api_client"

    client_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    secret_hash: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # null: MILEPOST_ACCESS_TOKEN_TTL_SECONDS
    access_token_ttl_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    secret_rotated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    previous_secret_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )

    __table_args__ = (
        UniqueConstraint("tenant_id", "client_id"),
        ForeignKeyConstraint(["tenant_id", "account_id"], ["account.tenant_id", "account.id"]),
        CheckConstraint(
            f"scopes <@ ARRAY[{', '.join(repr(str(s)) for s in SCOPES_SORTED)}]::text[]", name="scopes"
        ),
        CheckConstraint(
            "access_token_ttl_seconds IS NULL OR access_token_ttl_seconds BETWEEN 60 AND 86400",
            name="access_token_ttl",
        ),
        CheckConstraint(
            "(previous_secret_hash IS NULL) = (previous_secret_expires_at IS NULL)", name="previous_secret"
        ),
    )


class RevocationKind(StrEnum):
    CLIENT = "client"  # every token of an API client (subject: its row id)
    TOKEN = "token"  # noqa: S105 - one access token (subject: its jti)


class CredentialRevocation(Base):
    """A revoked client or access token, kept until every token it concerns has expired.

    Each API process keeps all live rows in memory and checks every bearer token against them (see
    ``api/auth/watch.py``); they are read across tenants with ``app.system_task`` set, the one table
    besides ``tenant`` that allows it (it holds ids only).
    """

    __tablename__ = "credential_revocation"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)

    __table_args__ = (CheckConstraint(sql_in("kind", RevocationKind), name="kind"),)
