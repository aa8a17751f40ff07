"""Tenants, accounts, users, teams and API clients. Services flush; the caller's edge commits.

Argon2 verification takes tens of milliseconds of CPU by design, so it runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, apply_scope, scoped, tenant_condition
from domain.tenancy.models import (
    Account,
    ApiClient,
    CredentialRevocation,
    RevocationKind,
    Role,
    SlaTier,
    Tenant,
    User,
)
from domain.tenancy.passwords import hash_secret, verify_secret
from domain.tenancy.principal import Principal
from domain.tenancy.rules import (
    CREDENTIALS_CHANNEL,
    MAX_SECRET_GRACE,
    REVOCATIONS_CHANGED,
    SecretMatch,
    client_revocation_expiry,
    describe_unknown_scopes,
    grace_problem,
    previous_secret_match,
    token_lifetime_problem,
    unknown_scopes,
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


class ClientNotFound(TenancyError):
    """No API client with this id in the tenant (another tenant's answers the same)."""


class ClientRevoked(TenancyError):
    """The API client is revoked; nothing more can be done with it."""

    def __init__(self, client: ApiClient) -> None:
        assert client.revoked_at is not None
        super().__init__(f"API client {client.client_id} was revoked at {client.revoked_at.isoformat()}")
        self.client = client
        self.revoked_at = client.revoked_at


@dataclass(frozen=True)
class IssuedClient:
    client: ApiClient
    client_secret: str  # shown once; only its hash is stored


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


async def create_api_client(
    session: AsyncSession,
    scope: TenantScope,
    *,
    name: str,
    scopes: Iterable[str],
    account_id: uuid.UUID | None = None,
    access_token_ttl_seconds: int | None = None,
    max_token_ttl_seconds: int = 86400,
) -> IssuedClient:
    """A new partner client with its secret (returned once). ``scopes`` must come from
    :class:`~domain.tenancy.rules.Scope`; ``access_token_ttl_seconds`` overrides the default lifetime of
    its tokens, up to ``max_token_ttl_seconds``."""
    wanted = sorted(set(scopes))
    unknown = unknown_scopes(wanted)
    if unknown:
        raise TenancyError(describe_unknown_scopes(unknown))
    if not wanted:
        raise TenancyError("a client needs at least one scope")
    name = name.strip()
    if not name or len(name) > 200:
        raise TenancyError("a client's name must be 1 to 200 characters")
    if access_token_ttl_seconds is not None:
        problem = token_lifetime_problem(access_token_ttl_seconds, max_token_ttl_seconds)
        if problem:
            raise TenancyError(problem)
    secret = _new_secret()
    client = ApiClient(
        tenant_id=scope.tenant_id,
        client_id=f"mp_{secrets.token_urlsafe(18)}",
        name=name,
        secret_hash=await asyncio.to_thread(hash_secret, secret),
        scopes=wanted,
        account_id=account_id,
        access_token_ttl_seconds=access_token_ttl_seconds,
    )
    session.add(client)
    await session.flush()
    return IssuedClient(client=client, client_secret=secret)


async def _client_by_client_id(session: AsyncSession, client_id: str) -> ApiClient | None:
    """The client with this public ``client_id``, found before its tenant is known (the RLS lookup clause
    matches exactly the row whose key the transaction holds)."""
    await session.execute(text("SELECT set_config('app.client_id', :c, true)"), {"c": client_id})
    try:
        return (
            await session.execute(select(ApiClient).where(ApiClient.client_id == client_id))
        ).scalar_one_or_none()
    finally:
        await session.execute(text("SELECT set_config('app.client_id', '', true)"))


async def find_api_client(session: AsyncSession, client_id: str) -> ApiClient | None:
    """The client with this public ``client_id`` in any tenant, the transaction then bound to its tenant
    (for the operator's CLI, which names a client by the id it was given)."""
    client = await _client_by_client_id(session, client_id)
    if client is not None:
        await apply_scope(session, TenantScope(client.tenant_id))
    return client


class ClientRefusal(StrEnum):
    """Why credentials were refused. Only a caller who presented a secret the client really had hears
    more than UNKNOWN, so guessing tells an outsider nothing."""

    UNKNOWN = "unknown"  # no such client, or a wrong secret
    REVOKED = "revoked"
    SECRET_EXPIRED = "secret_expired"  # noqa: S105 - the secret before the last rotation, after its grace period


@dataclass(frozen=True, slots=True)
class ClientAuthentication:
    client: ApiClient | None  # set only when the credentials are accepted
    refusal: ClientRefusal | None = None
    secret_expired_at: dt.datetime | None = None


async def authenticate_client(
    session: AsyncSession, client_id: str, client_secret: str, *, now: dt.datetime
) -> ClientAuthentication:
    """Check credentials found before the client's tenant is known: its current secret, or the one
    before the last rotation while that is inside its grace period; never a revoked client."""
    client = await _client_by_client_id(session, client_id)
    stored = client.secret_hash if client else None
    match = SecretMatch.NONE
    if await asyncio.to_thread(verify_secret, stored, client_secret):
        match = SecretMatch.CURRENT
    elif (
        client is not None
        and client.previous_secret_hash is not None
        and await asyncio.to_thread(verify_secret, client.previous_secret_hash, client_secret)
    ):
        match = previous_secret_match(client.previous_secret_expires_at, now)
    if client is None or match is SecretMatch.NONE:
        return ClientAuthentication(None, ClientRefusal.UNKNOWN)
    if client.revoked_at is not None:
        return ClientAuthentication(None, ClientRefusal.REVOKED)
    if match is SecretMatch.PREVIOUS_EXPIRED:
        return ClientAuthentication(
            None, ClientRefusal.SECRET_EXPIRED, secret_expired_at=client.previous_secret_expires_at
        )
    return ClientAuthentication(client)


async def _client_for_update(
    session: AsyncSession, scope: TenantScope, client_row_id: uuid.UUID
) -> ApiClient:
    statement = scoped(select(ApiClient), ApiClient, scope).where(ApiClient.id == client_row_id)
    client = (await session.execute(statement.with_for_update())).scalar_one_or_none()
    if client is None:
        raise ClientNotFound(f"no API client {client_row_id}")
    return client


async def rotate_client_secret(
    session: AsyncSession,
    scope: TenantScope,
    client_row_id: uuid.UUID,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
) -> IssuedClient:
    """Issue a new secret (returned once). The current one becomes the previous secret and keeps working
    for ``grace`` (0: not at all); a secret from before an earlier rotation stops working now. Tokens
    already issued are not affected."""
    problem = grace_problem(grace, MAX_SECRET_GRACE)
    if problem:
        raise TenancyError(problem)
    client = await _client_for_update(session, scope, client_row_id)
    if client.revoked_at is not None:
        raise ClientRevoked(client)
    secret = _new_secret()
    client.previous_secret_hash = client.secret_hash
    client.previous_secret_expires_at = now + grace
    client.secret_hash = await asyncio.to_thread(hash_secret, secret)
    client.secret_rotated_at = now
    await session.flush()
    return IssuedClient(client=client, client_secret=secret)


async def expire_previous_secret(
    session: AsyncSession, scope: TenantScope, client_row_id: uuid.UUID, *, now: dt.datetime
) -> ApiClient:
    """End the previous secret's grace period now (nothing to do when it has ended or there is none)."""
    client = await _client_for_update(session, scope, client_row_id)
    if client.revoked_at is not None:
        raise ClientRevoked(client)
    expires_at = client.previous_secret_expires_at
    if expires_at is not None and expires_at > now:
        client.previous_secret_expires_at = now
        await session.flush()
    return client


async def _purge_revocations(session: AsyncSession, scope: TenantScope, now: dt.datetime) -> None:
    # revocations outlive their tokens by nothing: the table stays as small as what is in force
    await session.execute(
        delete(CredentialRevocation).where(
            tenant_condition(CredentialRevocation, scope), CredentialRevocation.expires_at <= now
        )
    )


async def _announce_revocation(session: AsyncSession) -> None:
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CREDENTIALS_CHANNEL, "payload": REVOCATIONS_CHANGED},
    )


async def revoke_api_client(
    session: AsyncSession,
    scope: TenantScope,
    client_row_id: uuid.UUID,
    *,
    now: dt.datetime,
    max_token_lifetime: dt.timedelta,
) -> ApiClient:
    """Revoke a client: it gets no more tokens, and every token it holds is refused from the commit on
    (each API process hears of it by NOTIFY). :class:`ClientRevoked` if it already was."""
    client = await _client_for_update(session, scope, client_row_id)
    if client.revoked_at is not None:
        raise ClientRevoked(client)
    client.revoked_at = now
    await _purge_revocations(session, scope, now)
    session.add(
        CredentialRevocation(
            tenant_id=scope.tenant_id,
            kind=RevocationKind.CLIENT,
            subject=str(client.id),
            revoked_at=now,
            expires_at=client_revocation_expiry(now, max_token_lifetime),
        )
    )
    await session.flush()
    await _announce_revocation(session)
    return client


async def revoke_token(
    session: AsyncSession, scope: TenantScope, *, jti: str, expires_at: dt.datetime, now: dt.datetime
) -> None:
    """Refuse one access token (by its ``jti``) until it expires; revoking it again changes nothing."""
    if expires_at <= now:
        return  # already refused for having expired
    await _purge_revocations(session, scope, now)
    await session.execute(
        insert(CredentialRevocation)
        .values(
            tenant_id=scope.tenant_id,
            kind=RevocationKind.TOKEN,
            subject=jti,
            revoked_at=now,
            expires_at=expires_at,
        )
        .on_conflict_do_nothing()
    )
    await _announce_revocation(session)


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
