"""`milepost tenant|account|client|user ...` and `milepost keys ...`: administration commands that print JSON.

Each command runs as the application role (row-level security applies, as for every other caller) in one
transaction, and reports a refusal as one line on stderr with exit status 2.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import click
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, apply_scope
from domain.signing.rules import KeyTimes, key_status
from domain.signing.service import KeyEncryptionError, list_signing_keys, rotate_signing_key
from domain.tenancy.models import ApiClient, Role, SlaTier, Tenant
from domain.tenancy.repository import current_tenant, list_api_clients
from domain.tenancy.service import (
    TenancyError,
    create_account,
    create_api_client,
    create_tenant,
    create_user,
    expire_previous_secret,
    find_account,
    find_api_client,
    find_tenant_by_slug,
    revoke_api_client,
    rotate_client_secret,
)
from milepost.credentials import CredentialsError, prepare_signing, read_key_encryption_key
from milepost.database import create_engine, session_factory
from milepost.settings import Settings

Work = Callable[[AsyncSession], Awaitable[dict[str, Any]]]

# what a unique constraint means to someone at the command line
_DUPLICATES = {
    "uq_tenant_slug": "a tenant with this slug already exists",
    "uq_account_tenant_id_code": "an account with this code already exists in the tenant",
    "uq_app_user_tenant_id_email": "a user with this e-mail already exists in the tenant",
    "uq_api_client_tenant_id_client_id": "a client with this client_id already exists; try again",
}


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(2)


def _refusal(error: IntegrityError) -> str:
    constraint = getattr(getattr(error.orig, "__cause__", None), "constraint_name", None)
    if constraint in _DUPLICATES:
        return _DUPLICATES[constraint]
    detail = str(error.orig).splitlines()[0] if error.orig is not None else "integrity error"
    return f"the database refused the change: {detail}"


def _settings() -> Settings:
    from milepost.cli import load_settings  # milepost.cli imports this module while it is being set up

    return load_settings()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _run(work: Work, *, signing: bool = False) -> None:
    """Open the database (migrating an embedded one), run ``work`` in one transaction, print its result.
    ``signing``: make sure the key-encryption key and a first signing key exist first."""
    # imported here: milepost.cli imports this module while it is being set up, and runtime is heavy
    from milepost.cli import echo_json
    from milepost.runtime import prepare

    settings = _settings()
    runtime = prepare(settings)
    try:
        result = asyncio.run(_in_transaction(runtime.database.app_url, settings, work, signing=signing))
    except (TenancyError, CredentialsError, KeyEncryptionError) as error:
        _fail(str(error))
    except IntegrityError as error:
        _fail(_refusal(error))
    except (OSError, DBAPIError) as error:
        _fail(f"cannot use the database: {str(error).splitlines()[0]}")
    finally:
        runtime.database.stop()
    echo_json(result)


async def _in_transaction(url: URL, settings: Settings, work: Work, *, signing: bool) -> dict[str, Any]:
    engine = create_engine(url, settings)
    try:
        if signing:
            await prepare_signing(settings, session_factory(engine))
        async with session_factory(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


async def _bind_tenant(session: AsyncSession, slug: str) -> Tenant:
    tenant = await find_tenant_by_slug(session, slug)
    if tenant is None:
        raise TenancyError(f"no tenant with slug {slug!r}")
    await apply_scope(session, TenantScope(tenant.id))
    return tenant


async def _account_id(session: AsyncSession, tenant: Tenant, code: str | None) -> uuid.UUID | None:
    if code is None:
        return None
    account = await find_account(session, TenantScope(tenant.id), code)
    if account is None:
        raise TenancyError(f"no account with code {code!r} in tenant {tenant.slug!r}")
    return account.id


@click.group()
def tenant() -> None:
    """Manage tenants."""


@tenant.command("create")
@click.argument("name")
@click.option("--slug", help="URL-safe identifier; derived from NAME when omitted.")
def create_tenant_command(name: str, slug: str | None) -> None:
    """Create a tenant; prints {id, slug, name}."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        created = await create_tenant(session, name, slug)
        return {"id": str(created.id), "slug": created.slug, "name": created.name}

    _run(work)


@click.group()
def account() -> None:
    """Manage shipper accounts (the tenant's customers)."""


@account.command("create")
@click.option("--tenant", "tenant_slug", required=True, help="Tenant slug.")
@click.option("--code", required=True, help="The account's code, unique in the tenant.")
@click.option("--name", required=True)
@click.option("--tier", type=click.Choice([str(t) for t in SlaTier]), default=str(SlaTier.STANDARD))
def create_account_command(tenant_slug: str, code: str, name: str, tier: str) -> None:
    """Create a shipper account; prints {id, tenant, code, name, sla_tier}."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        owner = await _bind_tenant(session, tenant_slug)
        created = await create_account(session, TenantScope(owner.id), code=code, name=name, sla_tier=tier)
        return {
            "id": str(created.id),
            "tenant": owner.slug,
            "code": created.code,
            "name": created.name,
            "sla_tier": created.sla_tier,
        }

    _run(work)


@click.group()
def client() -> None:
    """Manage partner API clients (OAuth2 client credentials)."""


@client.command("create")
@click.option("--tenant", "tenant_slug", required=True, help="Tenant slug.")
@click.option("--scopes", required=True, help='Space-separated scopes, e.g. "shipments:read ingest".')
@click.option("--name", default="API client", show_default=True)
@click.option("--account", "account_code", help="Limit the client to one shipper account (by code).")
@click.option(
    "--token-ttl",
    "token_ttl",
    type=click.IntRange(min=1),
    help="Lifetime of its access tokens in seconds (default MILEPOST_ACCESS_TOKEN_TTL_SECONDS; at most "
    "MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS).",
)
def create_client_command(
    tenant_slug: str, scopes: str, name: str, account_code: str | None, token_ttl: int | None
) -> None:
    """Create an API client; prints its client_id and client_secret (shown only this once)."""
    wanted = scopes.split()
    if not wanted:
        _fail("--scopes needs at least one scope")
    settings = _settings()

    async def work(session: AsyncSession) -> dict[str, Any]:
        owner = await _bind_tenant(session, tenant_slug)
        account_id = await _account_id(session, owner, account_code)
        issued = await create_api_client(
            session,
            TenantScope(owner.id),
            name=name,
            scopes=wanted,
            account_id=account_id,
            access_token_ttl_seconds=token_ttl,
            max_token_ttl_seconds=settings.access_token_max_ttl_seconds,
        )
        return {
            "id": str(issued.client.id),
            "tenant": owner.slug,
            "name": issued.client.name,
            "client_id": issued.client.client_id,
            "client_secret": issued.client_secret,
            "scopes": issued.client.scopes,
            "account": account_code,
            "token_ttl_seconds": issued.client.access_token_ttl_seconds,
        }

    _run(work)


async def _client_named(session: AsyncSession, client_id: str) -> tuple[ApiClient, Tenant]:
    """The client with this public client_id (any tenant), the transaction bound to its tenant."""
    found = await find_api_client(session, client_id)
    owner = await current_tenant(session, TenantScope(found.tenant_id)) if found is not None else None
    if found is None or owner is None:
        raise TenancyError(f"no API client {client_id!r}")
    return found, owner


def _client_json(row: ApiClient, tenant: Tenant) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "tenant": tenant.slug,
        "name": row.name,
        "client_id": row.client_id,
        "scopes": row.scopes,
        "account_id": str(row.account_id) if row.account_id else None,
        "token_ttl_seconds": row.access_token_ttl_seconds,
        "created_at": row.created_at,
        "secret_rotated_at": row.secret_rotated_at,
        "previous_secret_expires_at": row.previous_secret_expires_at,
        "revoked_at": row.revoked_at,
    }


@client.command("rotate-secret")
@click.argument("client_id")
@click.option(
    "--grace",
    "grace_hours",
    type=click.FloatRange(min=0, max=720),
    help="Hours the current secret keeps working (default MILEPOST_CLIENT_SECRET_GRACE_HOURS; 0: stops now).",
)
def rotate_secret_command(client_id: str, grace_hours: float | None) -> None:
    """Issue a new secret for CLIENT_ID (prints it, only this once); the current one keeps working for the
    grace period. Tokens already issued stay valid."""
    settings = _settings()
    hours = settings.client_secret_grace_hours if grace_hours is None else grace_hours

    async def work(session: AsyncSession) -> dict[str, Any]:
        found, owner = await _client_named(session, client_id)
        issued = await rotate_client_secret(
            session, TenantScope(owner.id), found.id, now=_now(), grace=dt.timedelta(hours=hours)
        )
        return {**_client_json(issued.client, owner), "client_secret": issued.client_secret}

    _run(work)


@client.command("expire-secret")
@click.argument("client_id")
def expire_secret_command(client_id: str) -> None:
    """End the grace period of CLIENT_ID's previous secret now: only the current secret works."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        found, owner = await _client_named(session, client_id)
        row = await expire_previous_secret(session, TenantScope(owner.id), found.id, now=_now())
        return _client_json(row, owner)

    _run(work)


@client.command("revoke")
@click.argument("client_id")
def revoke_client_command(client_id: str) -> None:
    """Revoke CLIENT_ID: it gets no more tokens and the ones it holds stop working (every API process
    hears of it at once by NOTIFY, at the latest after MILEPOST_CREDENTIALS_REFRESH_SECONDS)."""
    settings = _settings()

    async def work(session: AsyncSession) -> dict[str, Any]:
        found, owner = await _client_named(session, client_id)
        row = await revoke_api_client(
            session,
            TenantScope(owner.id),
            found.id,
            now=_now(),
            max_token_lifetime=dt.timedelta(seconds=settings.access_token_max_ttl_seconds),
        )
        return _client_json(row, owner)

    _run(work)


@client.command("list")
@click.option("--tenant", "tenant_slug", required=True, help="Tenant slug.")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked clients.")
def list_clients_command(tenant_slug: str, include_revoked: bool) -> None:
    """The tenant's API clients, oldest first (never their secrets)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        owner = await _bind_tenant(session, tenant_slug)
        rows = await list_api_clients(session, TenantScope(owner.id), include_revoked=include_revoked)
        return {"tenant": owner.slug, "clients": [_client_json(row, owner) for row in rows]}

    _run(work)


@click.group()
def user() -> None:
    """Manage users (staff and shippers)."""


@user.command("create")
@click.option("--tenant", "tenant_slug", required=True, help="Tenant slug.")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option(
    "--role",
    "roles",
    required=True,
    multiple=True,
    type=click.Choice([str(r) for r in Role]),
    help="Repeat for several roles; shipper users need --account.",
)
@click.option("--account", "account_code", help="The shipper account (by code) of a shipper user.")
@click.option(
    "--password",
    envvar="MILEPOST_USER_PASSWORD",
    help="Else MILEPOST_USER_PASSWORD, else asked for (hidden, with confirmation).",
)
def create_user_command(
    tenant_slug: str,
    email: str,
    name: str,
    roles: tuple[str, ...],
    account_code: str | None,
    password: str | None,
) -> None:
    """Create a user; prints {id, tenant, email, name, roles, account}."""
    if password is None:
        # asked on stderr (click's option prompt would write to stdout, into the JSON a script reads)
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))

    async def work(session: AsyncSession) -> dict[str, Any]:
        owner = await _bind_tenant(session, tenant_slug)
        account_id = await _account_id(session, owner, account_code)
        created = await create_user(
            session,
            TenantScope(owner.id),
            email=email,
            name=name,
            password=password,
            roles=roles,
            account_id=account_id,
        )
        return {
            "id": str(created.id),
            "tenant": owner.slug,
            "email": created.email,
            "name": created.name,
            "roles": created.roles,
            "account": account_code,
        }

    _run(work)


@click.group()
def keys() -> None:
    """Manage the keys that sign access tokens (shared by every API process)."""


def _keys_json(now: dt.datetime, rows: list[Any]) -> list[dict[str, Any]]:
    times = [KeyTimes(row.kid, row.activates_at, row.retire_at) for row in rows]
    return [
        {
            "kid": row.kid,
            "status": str(key_status(key, times, now)),
            "created_at": row.created_at,
            "activates_at": row.activates_at,
            "retire_at": row.retire_at,
        }
        for row, key in zip(rows, times, strict=True)
    ]


@keys.command("rotate")
@click.option(
    "--activate-in",
    "activate_in",
    type=click.IntRange(min=0),
    default=300,
    show_default=True,
    help="Seconds the new key is published in the JWKS before it signs (verifiers cache the JWKS for "
    "up to 300 s).",
)
@click.option(
    "--retire-previous-now",
    is_flag=True,
    help="A compromised key: the new key signs at once, and tokens signed by every earlier key are "
    "refused from now on.",
)
def rotate_keys_command(activate_in: int, retire_previous_now: bool) -> None:
    """Add a signing key. Earlier keys stay in the JWKS, and their tokens valid, until every token they
    signed has expired; then they retire."""
    settings = _settings()

    async def work(session: AsyncSession) -> dict[str, Any]:
        now = _now()
        kek = read_key_encryption_key(settings.key_encryption_key_path)
        if kek is None:  # _run(signing=True) has made sure it exists
            raise CredentialsError(f"{settings.key_encryption_key_path} disappeared")
        added = await rotate_signing_key(
            session,
            kek,
            now=now,
            activate_in=dt.timedelta(seconds=activate_in),
            max_token_lifetime=dt.timedelta(seconds=settings.access_token_max_ttl_seconds),
            stale_for=dt.timedelta(seconds=settings.credentials_refresh_seconds),
            retire_previous_now=retire_previous_now,
        )
        return {"added": added.kid, "keys": _keys_json(now, await list_signing_keys(session))}

    _run(work, signing=True)


@keys.command("list")
def list_keys_command() -> None:
    """Every signing key with its status: pending, signing, verifying (tokens it signed are still
    accepted) or retired."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        return {"keys": _keys_json(_now(), await list_signing_keys(session))}

    _run(work)


COMMANDS = [tenant, account, client, user, keys]
