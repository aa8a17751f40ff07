"""`milepost tenant|account|client|user create` against the test database, as an operator would run them."""

from __future__ import annotations

import base64
import uuid

import httpx
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from domain.db import TenantScope, apply_scope
from domain.tenancy.models import Role, User
from domain.tenancy.service import find_tenant_by_slug
from tests.cli_support import milepost, printed
from tests.factories import unique_slug

PASSWORD = "a long enough password"


async def new_tenant(env: dict[str, str | None]) -> str:
    slug = unique_slug("cli")
    printed(await milepost(env, "tenant", "create", f"Tenant {slug}", "--slug", slug))
    return slug


async def test_tenant_create_prints_the_tenant(
    cli_env: dict[str, str | None], sessions: async_sessionmaker[AsyncSession]
) -> None:
    suffix = uuid.uuid4().hex[:8]

    explicit = printed(await milepost(cli_env, "tenant", "create", "Blue Anchor", "--slug", f"blue-{suffix}"))
    derived = printed(await milepost(cli_env, "tenant", "create", f"Harbor & Rail {suffix}"))

    async with sessions() as session, session.begin():
        stored = await find_tenant_by_slug(session, f"blue-{suffix}")
    assert stored is not None
    assert explicit == {"id": str(stored.id), "slug": f"blue-{suffix}", "name": "Blue Anchor"}
    assert derived["slug"] == f"harbor-rail-{suffix}"
    assert derived["name"] == f"Harbor & Rail {suffix}"
    assert uuid.UUID(derived["id"]) != stored.id


async def test_a_taken_slug_exits_2_with_one_line(cli_env: dict[str, str | None]) -> None:
    slug = await new_tenant(cli_env)

    result = await milepost(cli_env, "tenant", "create", "Again", "--slug", slug)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"error: a tenant with slug {slug!r} already exists\n"


async def test_a_created_client_gets_a_token_from_the_token_endpoint(
    cli_env: dict[str, str | None], client: httpx.AsyncClient, tokens: TokenService
) -> None:
    slug = await new_tenant(cli_env)
    await new_tenant(cli_env)  # a second tenant, which must not matter

    issued = printed(
        await milepost(cli_env, "client", "create", "--tenant", slug, "--scopes", "shipments:read ingest")
    )

    assert set(issued) == {"id", "tenant", "name", "client_id", "client_secret", "scopes", "account"}
    assert issued["tenant"] == slug
    assert issued["name"] == "API client"
    assert issued["scopes"] == ["ingest", "shipments:read"]
    assert issued["account"] is None
    credentials = base64.b64encode(f"{issued['client_id']}:{issued['client_secret']}".encode()).decode()
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {credentials}"},
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "ingest shipments:read"
    principal = tokens.verify(response.json()["access_token"])
    assert str(principal.subject_id) == issued["id"]
    assert principal.scopes == frozenset({"ingest", "shipments:read"})


async def test_accounts_and_account_bound_clients_stay_inside_their_tenant(
    cli_env: dict[str, str | None], client: httpx.AsyncClient, tokens: TokenService
) -> None:
    slug = await new_tenant(cli_env)
    other = await new_tenant(cli_env)
    account = printed(
        await milepost(
            cli_env,
            "account",
            "create",
            "--tenant",
            slug,
            "--code",
            "NWT",
            "--name",
            "Northwind",
            "--tier",
            "gold",
        )
    )
    printed(
        await milepost(cli_env, "account", "create", "--tenant", other, "--code", "ONLY-B", "--name", "B")
    )

    bound = printed(
        await milepost(
            cli_env, "client", "create", "--tenant", slug, "--scopes", "shipments:read", "--account", "NWT"
        )
    )
    foreign = await milepost(
        cli_env, "client", "create", "--tenant", slug, "--scopes", "shipments:read", "--account", "ONLY-B"
    )

    assert set(account) == {"id", "tenant", "code", "name", "sla_tier"}
    assert (account["tenant"], account["code"], account["name"], account["sla_tier"]) == (
        slug,
        "NWT",
        "Northwind",
        "gold",
    )
    assert bound["account"] == "NWT"
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": bound["client_id"],
            "client_secret": bound["client_secret"],
        },
    )
    assert str(tokens.verify(response.json()["access_token"]).account_id) == account["id"]
    assert foreign.exit_code == 2
    assert foreign.stderr == f"error: no account with code 'ONLY-B' in tenant {slug!r}\n"


async def test_user_create_takes_the_password_from_the_environment_and_the_user_can_log_in(
    cli_env: dict[str, str | None],
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    slug = await new_tenant(cli_env)

    created = printed(
        await milepost(
            cli_env,
            "user",
            "create",
            "--tenant",
            slug,
            "--email",
            "Dana@Forwarder.example",
            "--name",
            "Dana",
            "--role",
            "operations",
            "--role",
            "admin",
            MILEPOST_USER_PASSWORD=PASSWORD,
        )
    )

    assert set(created) == {"id", "tenant", "email", "name", "roles", "account"}
    assert (created["tenant"], created["email"], created["name"]) == (slug, "dana@forwarder.example", "Dana")
    assert created["roles"] == ["admin", "operations"]
    assert created["account"] is None
    response = await client.post(
        "/auth/login", json={"tenant": slug, "email": "dana@forwarder.example", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert str(tokens.verify(response.json()["access_token"]).subject_id) == created["id"]
    async with sessions() as session, session.begin():
        tenant = await find_tenant_by_slug(session, slug)
        assert tenant is not None
        await apply_scope(session, TenantScope(tenant.id))
        stored = (await session.execute(select(User.password_hash))).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, PASSWORD) is True


async def test_user_create_asks_for_the_password_on_stderr_when_not_given(
    cli_env: dict[str, str | None], client: httpx.AsyncClient, tokens: TokenService
) -> None:
    slug = await new_tenant(cli_env)
    printed(
        await milepost(cli_env, "account", "create", "--tenant", slug, "--code", "NWT", "--name", "Northwind")
    )

    result = await milepost(
        cli_env,
        "user",
        "create",
        "--tenant",
        slug,
        "--email",
        "ops@northwind.example",
        "--name",
        "Northwind Ops",
        "--role",
        "shipper",
        "--account",
        "NWT",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )

    created = printed(result)  # stdout holds only the JSON
    assert result.stderr == "Password: \nRepeat for confirmation: \n"
    assert (created["roles"], created["account"]) == (["shipper"], "NWT")
    response = await client.post(
        "/auth/login", data={"tenant": slug, "email": "ops@northwind.example", "password": PASSWORD}
    )
    principal = tokens.verify(response.json()["access_token"])
    assert principal.roles == frozenset({"shipper"})
    assert principal.account_id is not None


async def test_user_create_with_the_password_option(cli_env: dict[str, str | None]) -> None:
    slug = await new_tenant(cli_env)

    created = printed(
        await milepost(
            cli_env,
            "user",
            "create",
            "--tenant",
            slug,
            "--email",
            "fin@forwarder.example",
            "--name",
            "Fin",
            "--role",
            "finance",
            "--password",
            PASSWORD,
        )
    )

    assert created["roles"] == ["finance"]


async def test_refusals_exit_2_with_one_clear_line(cli_env: dict[str, str | None]) -> None:
    slug = await new_tenant(cli_env)
    other = await new_tenant(cli_env)
    user_args = ["--email", "dana@forwarder.example", "--name", "Dana", "--password", PASSWORD]
    printed(await milepost(cli_env, "user", "create", "--tenant", slug, *user_args, "--role", "operations"))
    # the same e-mail in another tenant is another person
    printed(await milepost(cli_env, "user", "create", "--tenant", other, *user_args, "--role", "operations"))
    missing = f"nope-{uuid.uuid4().hex[:8]}"

    cases = {
        "unknown tenant": (
            ["user", "create", "--tenant", missing, *user_args, "--role", "operations"],
            f"error: no tenant with slug {missing!r}\n",
        ),
        "duplicate e-mail": (
            ["user", "create", "--tenant", slug, *user_args, "--role", "sales"],
            "error: a user with this e-mail already exists in the tenant\n",
        ),
        "shipper without account": (
            ["user", "create", "--tenant", slug, *user_args[:4], "--role", "shipper", "--password", PASSWORD],
            "error: a shipper user needs an account, and only shipper users have one\n",
        ),
        "short password": (
            ["user", "create", "--tenant", slug, *user_args[:4], "--role", "sales", "--password", "short"],
            "error: a password needs at least 10 characters\n",
        ),
        "unknown scope": (
            ["client", "create", "--tenant", slug, "--scopes", "shipments:read everything"],
            "error: unknown scope(s) everything; expected some of billing:read, exceptions:read, "
            "exceptions:write, ingest, rules:read, rules:write, shipments:read, shipments:write\n",
        ),
        "no scope": (
            ["client", "create", "--tenant", slug, "--scopes", " "],
            "error: --scopes needs at least one scope\n",
        ),
        "unknown client tenant": (
            ["client", "create", "--tenant", missing, "--scopes", "ingest"],
            f"error: no tenant with slug {missing!r}\n",
        ),
    }
    for label, (args, message) in cases.items():
        result = await milepost(cli_env, *args)
        assert result.exit_code == 2, label
        assert result.stdout == "", label
        assert result.stderr == message, label


async def test_a_bad_role_is_refused_before_anything_runs(cli_env: dict[str, str | None]) -> None:
    result = await milepost(
        cli_env,
        "user",
        "create",
        "--tenant",
        "whatever",
        "--email",
        "a@b.example",
        "--name",
        "A",
        "--role",
        "pilot",
        "--password",
        PASSWORD,
    )

    assert result.exit_code == 2
    roles = ", ".join(f"'{role}'" for role in Role)
    assert (
        result.stderr.splitlines()[-1] == f"Error: Invalid value for '--role': 'pilot' is not one of {roles}."
    )
