"""`milepost tenant|account|client|user create` against the test database, as an operator would run them."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from pathlib import Path

import httpx
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.state import AppState
from domain.db import TenantScope, apply_scope, system_transaction
from domain.tenancy.models import Role, User
from domain.tenancy.repository import revocations_in_force
from domain.tenancy.service import find_tenant_by_slug
from milepost.settings import Settings
from tests.auth_support import signing_keys_restored
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

    assert set(issued) == {
        "id",
        "tenant",
        "name",
        "client_id",
        "client_secret",
        "scopes",
        "account",
        "token_ttl_seconds",
    }
    assert issued["token_ttl_seconds"] is None
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
            "exceptions:write, ingest, shipments:read, shipments:write, webhooks:manage\n",
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


async def token_status(client: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {credentials}"},
    )


async def test_client_secrets_rotate_with_a_grace_period_and_clients_are_revoked(
    cli_env: dict[str, str | None], client: httpx.AsyncClient, app_state: AppState
) -> None:
    slug = await new_tenant(cli_env)
    issued = printed(
        await milepost(
            cli_env, "client", "create", "--tenant", slug, "--scopes", "ingest", "--token-ttl", "120"
        )
    )
    assert issued["token_ttl_seconds"] == 120
    client_id, first_secret = issued["client_id"], issued["client_secret"]
    assert (await token_status(client, client_id, first_secret)).json()["expires_in"] == 120

    rotated = printed(await milepost(cli_env, "client", "rotate-secret", client_id, "--grace", "1.5"))

    assert set(rotated) == {
        "id",
        "tenant",
        "name",
        "client_id",
        "client_secret",
        "scopes",
        "account_id",
        "token_ttl_seconds",
        "created_at",
        "secret_rotated_at",
        "previous_secret_expires_at",
        "revoked_at",
    }
    assert (rotated["id"], rotated["tenant"], rotated["client_id"]) == (issued["id"], slug, client_id)
    grace = dt.datetime.fromisoformat(rotated["previous_secret_expires_at"]) - dt.datetime.fromisoformat(
        rotated["secret_rotated_at"]
    )
    assert grace == dt.timedelta(hours=1.5)
    second_secret = rotated["client_secret"]
    assert (await token_status(client, client_id, first_secret)).status_code == 200
    assert (await token_status(client, client_id, second_secret)).status_code == 200

    expired = printed(await milepost(cli_env, "client", "expire-secret", client_id))
    assert "client_secret" not in expired
    assert (await token_status(client, client_id, first_secret)).status_code == 401
    assert (await token_status(client, client_id, second_secret)).status_code == 200

    listed = printed(await milepost(cli_env, "client", "list", "--tenant", slug))
    assert [entry["client_id"] for entry in listed["clients"]] == [client_id]
    assert "client_secret" not in listed["clients"][0]

    token = (await token_status(client, client_id, second_secret)).json()["access_token"]
    revoked = printed(await milepost(cli_env, "client", "revoke", client_id))
    assert revoked["revoked_at"] is not None
    refused = await token_status(client, client_id, second_secret)
    assert refused.json() == {"error": "invalid_client", "error_description": "this client has been revoked"}
    # the API process hears of it by NOTIFY; here, without the watch, we reload as it would
    async with system_transaction(app_state.sessions) as session:
        app_state.tokens.use_revocations(await revocations_in_force(session, dt.datetime.now(dt.UTC)))
    bearer = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert bearer.json()["error_description"] == "the token's client has been revoked"
    assert printed(await milepost(cli_env, "client", "list", "--tenant", slug))["clients"] == []
    assert [
        entry["client_id"]
        for entry in printed(await milepost(cli_env, "client", "list", "--tenant", slug, "--all"))["clients"]
    ] == [client_id]

    again = await milepost(cli_env, "client", "revoke", client_id)
    assert again.exit_code == 2
    assert (
        again.stderr
        == f"error: API client {client_id} was revoked at {revoked['revoked_at'].replace(' ', 'T')}\n"
    )


async def test_client_commands_refuse_bad_input_with_one_line(cli_env: dict[str, str | None]) -> None:
    slug = await new_tenant(cli_env)
    issued = printed(await milepost(cli_env, "client", "create", "--tenant", slug, "--scopes", "ingest"))
    missing = f"mp_{uuid.uuid4().hex}"
    cases = {
        "unknown client": (["client", "rotate-secret", missing], f"error: no API client {missing!r}\n"),
        "unknown client to revoke": (["client", "revoke", missing], f"error: no API client {missing!r}\n"),
        "lifetime too long": (
            ["client", "create", "--tenant", slug, "--scopes", "ingest", "--token-ttl", "7200"],
            "error: a client's token lifetime must be 60 to 3600 seconds "
            "(MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS), got 7200\n",
        ),
    }
    for label, (args, message) in cases.items():
        result = await milepost(cli_env, *args)
        assert (result.exit_code, result.stdout, result.stderr) == (2, "", message), label
    negative = await milepost(cli_env, "client", "rotate-secret", issued["client_id"], "--grace", "-1")
    assert negative.exit_code == 2
    assert "Invalid value for '--grace'" in negative.stderr


async def test_keys_rotate_needs_the_shared_key_encryption_key_and_then_publishes_a_new_key(
    cli_env: dict[str, str | None], settings: Settings, owner_engine: AsyncEngine, tokens: TokenService
) -> None:
    async with signing_keys_restored(owner_engine):
        before = printed(await milepost(cli_env, "keys", "list"))["keys"]

        # this command's data folder has no key-encryption key, but the database holds keys sealed with one
        lost = await milepost(cli_env, "keys", "rotate")
        assert lost.exit_code == 2
        assert lost.stderr == (
            f"error: MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE ({cli_env['MILEPOST_DATA_DIR']}/jwt-key-encryption.key) "
            "does not exist, but the database holds signing keys sealed with a key-encryption key: give this "
            "process the file the other processes use\n"
        )
        wrong = Path(str(cli_env["MILEPOST_DATA_DIR"])) / "other.key"
        wrong.write_text(base64.urlsafe_b64encode(b"x" * 32).decode())
        mismatched = await milepost(
            cli_env, "keys", "rotate", MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE=str(wrong)
        )
        assert mismatched.exit_code == 2
        assert "the key-encryption key does not open signing key" in mismatched.stderr

        shared = {"MILEPOST_JWT_KEY_ENCRYPTION_KEY_FILE": str(settings.key_encryption_key_path)}
        rotated = printed(await milepost(cli_env, "keys", "rotate", **shared))

        signing = [key for key in before if key["status"] == "signing"]
        assert len(signing) == 1
        statuses = {key["kid"]: key["status"] for key in rotated["keys"]}
        assert statuses[rotated["added"]] == "pending"
        assert statuses[signing[0]["kid"]] == "signing"
        added = next(key for key in rotated["keys"] if key["kid"] == rotated["added"])
        activates = dt.datetime.fromisoformat(added["activates_at"]) - dt.datetime.fromisoformat(
            added["created_at"]
        )
        assert activates == dt.timedelta(seconds=300)
        old = next(key for key in rotated["keys"] if key["kid"] == signing[0]["kid"])
        # it retires when its last possible token (signed up to activation + 15 s of staleness) expires
        assert dt.datetime.fromisoformat(old["retire_at"]) == dt.datetime.fromisoformat(
            added["activates_at"]
        ) + dt.timedelta(seconds=15 + 3600)

        emergency = printed(await milepost(cli_env, "keys", "rotate", "--retire-previous-now", **shared))
        statuses = {key["kid"]: key["status"] for key in emergency["keys"]}
        assert statuses[emergency["added"]] == "signing"
        assert [kid for kid, status in statuses.items() if status != "retired"] == [emergency["added"]]
        assert printed(await milepost(cli_env, "keys", "list"))["keys"] == emergency["keys"]
