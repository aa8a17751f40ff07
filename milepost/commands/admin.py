"""`milepost tenant|account|client|user create`: administration commands that print JSON.

Each command runs as the application role (row-level security applies, as for every other caller) in one
transaction, and reports a refusal as one line on stderr with exit status 2.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import click
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, apply_scope
from domain.tenancy.models import Role, SlaTier, Tenant
from domain.tenancy.service import (
    TenancyError,
    create_account,
    create_api_client,
    create_tenant,
    create_user,
    find_account,
    find_tenant_by_slug,
)
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


def _run(work: Work) -> None:
    """Open the database (migrating an embedded one), run ``work`` in one transaction, print its result."""
    # imported here: milepost.cli imports this module while it is being set up, and runtime is heavy
    from milepost.cli import echo_json, load_settings
    from milepost.runtime import prepare

    settings = load_settings()
    runtime = prepare(settings)
    try:
        result = asyncio.run(_in_transaction(runtime.database.app_url, settings, work))
    except TenancyError as error:
        _fail(str(error))
    except IntegrityError as error:
        _fail(_refusal(error))
    except (OSError, DBAPIError) as error:
        _fail(f"cannot use the database: {str(error).splitlines()[0]}")
    finally:
        runtime.database.stop()
    echo_json(result)


async def _in_transaction(url: URL, settings: Settings, work: Work) -> dict[str, Any]:
    engine = create_engine(url, settings)
    try:
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
def create_client_command(tenant_slug: str, scopes: str, name: str, account_code: str | None) -> None:
    """Create an API client; prints its client_id and client_secret (shown only this once)."""
    wanted = scopes.split()
    if not wanted:
        _fail("--scopes needs at least one scope")

    async def work(session: AsyncSession) -> dict[str, Any]:
        owner = await _bind_tenant(session, tenant_slug)
        account_id = await _account_id(session, owner, account_code)
        issued = await create_api_client(
            session, TenantScope(owner.id), name=name, scopes=wanted, account_id=account_id
        )
        return {
            "id": str(issued.client.id),
            "tenant": owner.slug,
            "name": issued.client.name,
            "client_id": issued.client.client_id,
            "client_secret": issued.client_secret,
            "scopes": issued.client.scopes,
            "account": account_code,
        }

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


COMMANDS = [tenant, account, client, user]
