"""Tenants, accounts, users, teams and API clients. Services flush; the caller's edge commits.

Argon2 verification takes tens of milliseconds of CPU by design, so it runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, apply_scope, scoped
from domain.tenancy.models import Account, ApiClient, Role, SlaTier, Tenant, User
from domain.tenancy.passwords import hash_secret, verify_secret
from domain.tenancy.principal import Principal

# Scopes a partner client may hold. The GraphQL and ingest layers decide what each one allows.
KNOWN_SCOPES = frozenset(
    {
        "shipments:read",
        "shipments:write",
        "exceptions:read",
        "exceptions:write",
        "ingest",
        "billing:read",
        "rules:read",
        "rules:write",
    }
)

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class TenancyError(ValueError):
    """A request that cannot be carried out; the message says what and why."""


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63]
    if not _SLUG.match(slug):
        raise TenancyError(f"cannot derive a slug from {name!r}: give one of 2-63 characters a-z, 0-9, '-'")
    return slug


async def create_tenant(session: AsyncSession, name: str, slug: str | None = None) -> Tenant:
    """Create a tenant and bind the session's transaction to it (so follow-up writes land inside it)."""
    slug = slug or slugify(name)
    if not _SLUG.match(slug):
        raise TenancyError(f"invalid tenant slug {slug!r}: use 2-63 characters a-z, 0-9 and '-'")
    if await find_tenant_by_slug(session, slug) is not None:
        raise TenancyError(f"a tenant with slug {slug!r} already exists")
    tenant = Tenant(id=uuid.uuid4(), slug=slug, name=name)
    await apply_scope(session, TenantScope(tenant.id))
    session.add(tenant)
    await session.flush()
    return tenant


async def find_tenant_by_slug(session: AsyncSession, slug: str) -> Tenant | None:
    """Look a tenant up by slug before any tenant is in scope (the RLS lookup clause allows exactly this)."""
    await session.execute(text("SELECT set_config('app.tenant_slug', :slug, true)"), {"slug": slug})
    try:
        return (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one_or_none()
    finally:
        await session.execute(text("SELECT set_config('app.tenant_slug', '', true)"))


async def create_account(
    session: AsyncSession, scope: TenantScope, *, code: str, name: str, sla_tier: str = SlaTier.STANDARD
) -> Account:
    if sla_tier not in set(SlaTier):
        raise TenancyError(f"unknown SLA tier {sla_tier!r}; expected one of {', '.join(SlaTier)}")
    account = Account(tenant_id=scope.tenant_id, code=code, name=name, sla_tier=sla_tier)
    session.add(account)
    await session.flush()
    return account


async def find_account(session: AsyncSession, scope: TenantScope, code: str) -> Account | None:
    statement = scoped(select(Account), Account, scope).where(Account.code == code)
    return (await session.execute(statement)).scalar_one_or_none()


def _check_roles(roles: Iterable[str], account_id: uuid.UUID | None) -> list[str]:
    wanted = sorted(set(roles))
    unknown = [role for role in wanted if role not in set(Role)]
    if unknown:
        raise TenancyError(f"unknown role(s) {', '.join(unknown)}; expected some of {', '.join(Role)}")
    if not wanted:
        raise TenancyError("a user needs at least one role")
    if (Role.SHIPPER in wanted) != (account_id is not None):
        raise TenancyError("a shipper user needs an account, and only shipper users have one")
    if Role.SHIPPER in wanted and len(wanted) > 1:
        raise TenancyError("a shipper user cannot also hold staff roles")
    return wanted


async def create_user(
    session: AsyncSession,
    scope: TenantScope,
    *,
    email: str,
    name: str,
    password: str,
    roles: Iterable[str],
    account_id: uuid.UUID | None = None,
) -> User:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise TenancyError(f"invalid e-mail address {email!r}")
    if len(password) < 10:
        raise TenancyError("a password needs at least 10 characters")
    user = User(
        tenant_id=scope.tenant_id,
        email=email,
        name=name,
        password_hash=hash_secret(password),
        roles=_check_roles(roles, account_id),
        account_id=account_id,
    )
    session.add(user)
    await session.flush()
    return user


@dataclass(frozen=True)
class IssuedClient:
    client: ApiClient
    client_secret: str  # shown once; only its hash is stored


async def create_api_client(
    session: AsyncSession,
    scope: TenantScope,
    *,
    name: str,
    scopes: Iterable[str],
    account_id: uuid.UUID | None = None,
) -> IssuedClient:
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if s not in KNOWN_SCOPES]
    if unknown:
        raise TenancyError(
            f"unknown scope(s) {', '.join(unknown)}; expected some of {', '.join(sorted(KNOWN_SCOPES))}"
        )
    secret = secrets.token_urlsafe(32)
    client = ApiClient(
        tenant_id=scope.tenant_id,
        client_id=f"mp_{secrets.token_urlsafe(18)}",
        name=name,
        secret_hash=hash_secret(secret),
        scopes=wanted,
        account_id=account_id,
    )
    session.add(client)
    await session.flush()
    return IssuedClient(client=client, client_secret=secret)


async def authenticate_client(session: AsyncSession, client_id: str, client_secret: str) -> ApiClient | None:
    """The active client with these credentials, found before its tenant is known, or ``None``."""
    await session.execute(text("SELECT set_config('app.client_id', :c, true)"), {"c": client_id})
    try:
        client = (
            await session.execute(select(ApiClient).where(ApiClient.client_id == client_id))
        ).scalar_one_or_none()
    finally:
        await session.execute(text("SELECT set_config('app.client_id', '', true)"))
    valid = await asyncio.to_thread(verify_secret, client.secret_hash if client else None, client_secret)
    if client is None or not valid or client.revoked_at is not None:
        return None
    return client


async def authenticate_user(
    session: AsyncSession, tenant_slug: str, email: str, password: str
) -> User | None:
    tenant = await find_tenant_by_slug(session, tenant_slug)
    user: User | None = None
    if tenant is not None:
        scope = TenantScope(tenant.id)
        await apply_scope(session, scope)
        statement = scoped(select(User), User, scope).where(User.email == email.strip().lower())
        user = (await session.execute(statement)).scalar_one_or_none()
    valid = await asyncio.to_thread(verify_secret, user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        return None
    return user


def principal_for_user(user: User) -> Principal:
    return Principal(
        tenant_id=user.tenant_id,
        subject_kind="user",
        subject_id=user.id,
        account_id=user.account_id,
        roles=frozenset(user.roles),
    )


def principal_for_client(client: ApiClient, granted_scopes: Iterable[str] | None = None) -> Principal:
    return Principal(
        tenant_id=client.tenant_id,
        subject_kind="api_client",
        subject_id=client.id,
        account_id=client.account_id,
        scopes=frozenset(granted_scopes if granted_scopes is not None else client.scopes),
    )
