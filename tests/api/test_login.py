from __future__ import annotations

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from domain.db import TenantScope, apply_scope
from domain.tenancy.models import Account, Role, Tenant, User
from tests.factories import PASSWORD, make_account, make_shipper_user, make_tenant, make_user

REFUSED = {"error": "invalid_grant", "error_description": "unknown tenant, e-mail or password"}


async def staff_tenant(
    sessions: async_sessionmaker[AsyncSession], email: str = "dana@forwarder.example"
) -> tuple[Tenant, User]:
    async with sessions() as session, session.begin():
        tenant = await make_tenant(session)
        user = await make_user(session, tenant, email=email, roles=(Role.OPERATIONS, Role.FINANCE))
    return tenant, user


async def shipper_tenant(sessions: async_sessionmaker[AsyncSession]) -> tuple[Tenant, Account, User]:
    async with sessions() as session, session.begin():
        tenant = await make_tenant(session)
        account = await make_account(session, tenant, code="NWT")
        user = await make_shipper_user(session, tenant, account, email="logistics@northwind.example")
    return tenant, account, user


async def test_staff_login_returns_a_bearer_token_for_the_user(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    tenant, user = await staff_tenant(sessions)

    response = await client.post(
        "/auth/login", json={"tenant": tenant.slug, "email": "dana@forwarder.example", "password": PASSWORD}
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 900)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    principal = tokens.verify(body["access_token"])
    assert principal.tenant_id == tenant.id
    assert (principal.subject_kind, principal.subject_id) == ("user", user.id)
    assert principal.account_id is None
    assert principal.roles == frozenset({"operations", "finance"})
    assert principal.scopes == frozenset()


async def test_shipper_login_by_form_carries_the_account_and_shipper_role(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    tenant, account, user = await shipper_tenant(sessions)

    response = await client.post(
        "/auth/login",
        data={"tenant": tenant.slug, "email": "logistics@northwind.example", "password": PASSWORD},
    )

    assert response.status_code == 200
    principal = tokens.verify(response.json()["access_token"])
    assert principal.tenant_id == tenant.id
    assert principal.subject_id == user.id
    assert principal.account_id == account.id
    assert principal.roles == frozenset({"shipper"})


async def test_email_is_matched_case_insensitively(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    tenant, user = await staff_tenant(sessions)

    response = await client.post(
        "/auth/login", json={"tenant": tenant.slug, "email": " Dana@Forwarder.EXAMPLE", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert tokens.verify(response.json()["access_token"]).subject_id == user.id


async def test_every_wrong_credential_gets_the_same_answer(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant, _ = await staff_tenant(sessions)
    other_tenant, _ = await staff_tenant(sessions, email="someone.else@forwarder.example")
    attempts = {
        "wrong password": (tenant.slug, "dana@forwarder.example", PASSWORD + "!"),
        "unknown e-mail": (tenant.slug, "nobody@forwarder.example", PASSWORD),
        "unknown tenant": ("no-such-tenant", "dana@forwarder.example", PASSWORD),
        "user of another tenant": (other_tenant.slug, "dana@forwarder.example", PASSWORD),
    }

    for label, (slug, email, password) in attempts.items():
        response = await client.post(
            "/auth/login", json={"tenant": slug, "email": email, "password": password}
        )
        assert response.status_code == 401, label
        assert response.json() == REFUSED, label
        assert "access_token" not in response.text, label


async def test_the_same_email_in_two_tenants_logs_into_each_tenant_separately(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    tenant_a, user_a = await staff_tenant(sessions, email="shared@example.com")
    async with sessions() as session, session.begin():
        tenant_b = await make_tenant(session)
        user_b = await make_user(session, tenant_b, email="shared@example.com", password="another password!")

    into_a = await client.post(
        "/auth/login", json={"tenant": tenant_a.slug, "email": "shared@example.com", "password": PASSWORD}
    )
    into_b = await client.post(
        "/auth/login",
        json={"tenant": tenant_b.slug, "email": "shared@example.com", "password": "another password!"},
    )
    b_password_on_a = await client.post(
        "/auth/login",
        json={"tenant": tenant_a.slug, "email": "shared@example.com", "password": "another password!"},
    )

    principal_a = tokens.verify(into_a.json()["access_token"])
    principal_b = tokens.verify(into_b.json()["access_token"])
    assert (principal_a.tenant_id, principal_a.subject_id) == (tenant_a.id, user_a.id)
    assert (principal_b.tenant_id, principal_b.subject_id) == (tenant_b.id, user_b.id)
    assert b_password_on_a.status_code == 401
    assert b_password_on_a.json() == REFUSED


async def test_an_inactive_user_cannot_log_in(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant, user = await staff_tenant(sessions)
    async with sessions() as session, session.begin():
        await apply_scope(session, TenantScope(tenant.id))
        await session.execute(update(User).where(User.id == user.id).values(is_active=False))

    response = await client.post(
        "/auth/login", json={"tenant": tenant.slug, "email": "dana@forwarder.example", "password": PASSWORD}
    )

    assert response.status_code == 401
    assert response.json() == REFUSED


async def test_malformed_login_requests_are_400_with_a_precise_description(client: httpx.AsyncClient) -> None:
    json_type = {"Content-Type": "application/json"}
    cases: list[tuple[bytes, dict[str, str], str]] = [
        (b'{"tenant": "a",', json_type, "the body is not valid JSON"),
        (b"\xff\xfe\x00", json_type, "the body is not valid JSON"),
        (b"[1, 2]", json_type, "the JSON body must be an object with tenant, email and password"),
        (b'{"tenant": "a", "email": "b"}', json_type, "missing or empty field(s): password"),
        (
            b'{"tenant": "", "email": "b", "password": null}',
            json_type,
            "missing or empty field(s): tenant, password",
        ),
        (
            b'{"tenant": "a", "email": ["b"], "password": 7}',
            json_type,
            "field(s) must be strings: email, password",
        ),
        (
            b'{"tenant": "a\\u0000", "email": "b", "password": "c"}',
            json_type,
            "tenant and email must not contain NUL characters",
        ),
        (
            b"tenant=a&email=b&password=c",
            {"Content-Type": "text/plain"},
            "send the credentials as application/json or application/x-www-form-urlencoded",
        ),
        (
            b"tenant=a&tenant=b&email=b&password=c",
            {"Content-Type": "application/x-www-form-urlencoded"},
            "the parameter 'tenant' is repeated",
        ),
        (
            b"tenant=a&email",
            {"Content-Type": "application/x-www-form-urlencoded"},
            "the body is not a well-formed application/x-www-form-urlencoded UTF-8 form",
        ),
    ]
    for body, headers, description in cases:
        response = await client.post("/auth/login", content=body, headers=headers)
        assert response.status_code == 400, body
        assert response.json() == {"error": "invalid_request", "error_description": description}, body
