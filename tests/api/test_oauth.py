from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterable

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.auth.tokens import InvalidToken, TokenService
from api.state import AppState
from domain.db import TenantScope, apply_scope, scoped_transaction, system_transaction
from domain.tenancy.models import Account, ApiClient, CredentialRevocation, Tenant
from domain.tenancy.principal import Principal
from domain.tenancy.repository import revocations_in_force
from domain.tenancy.service import (
    IssuedClient,
    create_api_client,
    expire_previous_secret,
    principal_for_client,
    revoke_api_client,
    rotate_client_secret,
)
from milepost.credentials import token_service
from milepost.settings import Settings
from tests.auth_support import token_service_like
from tests.factories import make_account, make_api_client, make_tenant

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
AUTH_FAILED = {
    "error": "invalid_client",
    "error_description": "client authentication failed: unknown client, wrong secret or revoked client",
}


def basic(client_id: str, client_secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def partner(
    sessions: async_sessionmaker[AsyncSession],
    scopes: Iterable[str] = ("exceptions:read", "shipments:read"),
    *,
    with_account: bool = False,
) -> tuple[Tenant, IssuedClient, Account | None]:
    """A tenant with one API client, committed (the app reads through its own connections)."""
    async with sessions() as session, session.begin():
        tenant = await make_tenant(session)
        account = await make_account(session, tenant) if with_account else None
        issued = await make_api_client(session, tenant, scopes=scopes, account=account)
    return tenant, issued, account


async def test_basic_credentials_get_a_bearer_token_for_all_the_clients_scopes(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    tenant, issued, _ = await partner(sessions)

    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "exceptions:read shipments:read"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["content-type"] == "application/json"
    principal = tokens.verify(body["access_token"])
    assert principal.tenant_id == tenant.id
    assert principal.subject_kind == "api_client"
    assert principal.subject_id == issued.client.id
    assert principal.account_id is None
    assert principal.scopes == frozenset({"exceptions:read", "shipments:read"})
    assert principal.roles == frozenset()


async def test_credentials_in_the_post_body_work_too(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    tenant, issued, _ = await partner(sessions, ["ingest"])

    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": issued.client.client_id,
            "client_secret": issued.client_secret,
        },
    )

    assert response.status_code == 200
    assert response.json()["scope"] == "ingest"
    principal = tokens.verify(response.json()["access_token"])
    assert (principal.tenant_id, principal.subject_id) == (tenant.id, issued.client.id)


async def test_a_requested_subset_of_scopes_is_all_the_token_carries(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    _, issued, _ = await partner(sessions, ["exceptions:read", "ingest", "shipments:read"])

    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "shipments:read ingest"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )

    assert response.status_code == 200
    assert response.json()["scope"] == "ingest shipments:read"
    assert tokens.verify(response.json()["access_token"]).scopes == frozenset({"ingest", "shipments:read"})


async def test_a_scope_beyond_the_clients_is_invalid_scope(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, issued, _ = await partner(sessions, ["shipments:read"])

    for requested, beyond in [
        ("shipments:read billing:read", "billing:read"),
        ("no-such-scope", "no-such-scope"),
    ]:
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": requested},
            headers=basic(issued.client.client_id, issued.client_secret),
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_scope",
            "error_description": f"scope not granted to this client: {beyond}",
        }


async def test_a_malformed_scope_is_invalid_scope_not_a_server_error(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, issued, _ = await partner(sessions, ["shipments:read"])

    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": 'shipments:read "quoted"'},
        headers=basic(issued.client.client_id, issued.client_secret),
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": "scope must be space-separated scope tokens (RFC 6749 section 3.3)",
    }


async def test_a_client_bound_to_a_shipper_account_gets_tokens_for_that_account(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    _, issued, account = await partner(sessions, ["shipments:read"], with_account=True)
    assert account is not None

    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )

    assert response.status_code == 200
    assert tokens.verify(response.json()["access_token"]).account_id == account.id


async def test_wrong_secret_is_invalid_client_with_a_basic_challenge(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, issued, _ = await partner(sessions)

    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, issued.client_secret + "x"),
    )

    assert response.status_code == 401
    assert response.json() == AUTH_FAILED
    assert response.headers["www-authenticate"] == 'Basic realm="milepost"'
    assert response.headers["cache-control"] == "no-store"


async def test_wrong_secret_in_the_body_is_invalid_client_too(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, issued, _ = await partner(sessions)

    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": issued.client.client_id,
            "client_secret": "not-the-secret",
        },
    )

    assert response.status_code == 401
    assert response.json() == AUTH_FAILED


async def test_unknown_client_is_invalid_client(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(f"mp_{uuid.uuid4().hex}", "whatever-secret"),
    )

    assert response.status_code == 401
    assert response.json() == AUTH_FAILED
    assert response.headers["www-authenticate"] == 'Basic realm="milepost"'


async def test_a_revoked_client_with_its_right_secret_hears_that_it_is_revoked(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant, issued, _ = await partner(sessions)
    async with sessions() as session, session.begin():
        await apply_scope(session, TenantScope(tenant.id))
        await session.execute(
            update(ApiClient)
            .where(ApiClient.id == issued.client.id)
            .values(revoked_at=dt.datetime.now(dt.UTC))
        )

    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )
    guessed = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, "a-guess"),
    )

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "this client has been revoked"}
    assert response.headers["www-authenticate"] == 'Basic realm="milepost"'
    # without the secret nobody learns that the client exists, let alone that it is revoked
    assert guessed.status_code == 401
    assert guessed.json() == AUTH_FAILED


async def test_another_tenants_secret_does_not_open_a_client(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    tenant_a, issued_a, _ = await partner(sessions)
    tenant_b, issued_b, _ = await partner(sessions)

    crossed = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued_a.client.client_id, issued_b.client_secret),
    )
    own_b = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued_b.client.client_id, issued_b.client_secret),
    )

    assert crossed.status_code == 401
    assert crossed.json() == AUTH_FAILED
    assert own_b.status_code == 200
    assert tokens.verify(own_b.json()["access_token"]).tenant_id == tenant_b.id != tenant_a.id


async def test_no_client_authentication_is_invalid_client(client: httpx.AsyncClient) -> None:
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials"})

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "client authentication required: HTTP Basic (client_secret_basic) "
        "or client_id and client_secret in the body (client_secret_post)",
    }
    assert response.headers["www-authenticate"] == 'Basic realm="milepost"'


async def test_an_unsupported_grant_type_is_refused(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, issued, _ = await partner(sessions)

    response = await client.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "a", "password": "b"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "unsupported_grant_type",
        "error_description": "grant_type 'password' is not supported; use client_credentials",
    }
    assert response.headers["cache-control"] == "no-store"


async def test_only_urlencoded_bodies_are_accepted(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, issued, _ = await partner(sessions)

    response = await client.post(
        "/oauth/token",
        json={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "the token endpoint accepts only application/x-www-form-urlencoded bodies",
    }


async def test_malformed_requests_are_400_invalid_request(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, issued, _ = await partner(sessions)
    credentials = basic(issued.client.client_id, issued.client_secret)
    not_a_form = "the body is not a well-formed application/x-www-form-urlencoded UTF-8 form"
    cases: list[tuple[bytes, dict[str, str], str]] = [
        (b"grant_type=client_credentials&&scope", credentials, not_a_form),
        (b"grant_type=client_credentials&scope=%ff", credentials, not_a_form),
        (b"grant_type=client_\xffcredentials", credentials, not_a_form),
        (
            b"grant_type=client_credentials&grant_type=client_credentials",
            credentials,
            "the parameter 'grant_type' is repeated",
        ),
        (b"scope=ingest", credentials, "the grant_type parameter is missing"),
        (b"", credentials, "the grant_type parameter is missing"),
        (
            b"grant_type=client_credentials",
            {"Authorization": "Basic !!!not-base64!!!"},
            "the HTTP Basic credentials are not base64 of UTF-8 text",
        ),
        (
            b"grant_type=client_credentials",
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
            "the HTTP Basic credentials must be 'client_id:client_secret'",
        ),
        (
            b"grant_type=client_credentials&client_secret=" + issued.client_secret.encode(),
            credentials,
            "authenticate the client one way only: HTTP Basic or client_secret in the body, not both",
        ),
        (
            b"grant_type=client_credentials&client_id=mp_other",
            credentials,
            "client_id in the body differs from the one in HTTP Basic",
        ),
        (
            b"grant_type=client_credentials&client_id=a%00b&client_secret=x",
            {},
            "the parameter 'client_id' contains a NUL character",
        ),
    ]
    for body, headers, description in cases:
        response = await client.post("/oauth/token", content=body, headers={**FORM, **headers})
        assert response.status_code == 400, body
        assert response.json() == {"error": "invalid_request", "error_description": description}, body


async def test_the_token_endpoint_answers_only_post(client: httpx.AsyncClient) -> None:
    response = await client.get("/oauth/token")

    assert response.status_code == 405


async def test_issued_tokens_verify_against_the_published_jwks(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    tenant, issued, _ = await partner(sessions, ["exceptions:write", "shipments:read"])
    other_tenant, _, _ = await partner(sessions)
    token_response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )
    jwks_response = await client.get("/.well-known/jwks.json")

    assert jwks_response.status_code == 200
    assert jwks_response.headers["cache-control"] == "public, max-age=300"
    jwks = jwks_response.json()
    assert [(key["kty"], key["crv"], key["alg"], key["use"]) for key in jwks["keys"]] == [
        ("EC", "P-256", "ES256", "sig")
    ]
    assert "d" not in jwks["keys"][0]  # the private part is never published

    # an independent check with joserfc against the published key set, as a resource server would do
    decoded = jwt.decode(
        token_response.json()["access_token"], KeySet.import_key_set(jwks), algorithms=["ES256"]
    )
    assert decoded.header == {"alg": "ES256", "kid": jwks["keys"][0]["kid"], "typ": "at+jwt"}
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": settings.public_url},
        aud={"essential": True, "value": settings.jwt_audience},
        exp={"essential": True},
        nbf={"essential": True},
    ).validate(decoded.claims)
    claims = decoded.claims
    assert claims["iss"] == "http://127.0.0.1:8000"
    assert claims["aud"] == "milepost-api"
    assert claims["exp"] == claims["iat"] + 900
    assert claims["nbf"] == claims["iat"]
    assert claims["tid"] == str(tenant.id) != str(other_tenant.id)
    assert claims["sub"] == f"api_client:{issued.client.id}"
    assert claims["scope"] == "exceptions:write shipments:read"
    assert claims["roles"] == []
    assert "acc" not in claims
    assert claims["client_id"] == issued.client.client_id  # RFC 9068
    assert len(claims["jti"]) == 32
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "client_id",
        "tid",
        "roles",
        "scope",
        "iat",
        "nbf",
        "exp",
        "jti",
    }


async def test_plain_http_public_url_is_refused_as_insecure_transport(
    app_state: AppState, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, issued, _ = await partner(sessions)
    insecure = dataclasses.replace(
        app_state, settings=app_state.settings.model_copy(update={"public_url": "http://milepost.example"})
    )
    transport = httpx.ASGITransport(app=create_app(insecure))
    async with httpx.AsyncClient(transport=transport, base_url="http://milepost.example") as http:
        response = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers=basic(issued.client.client_id, issued.client_secret),
        )

    assert response.status_code == 400
    assert response.json() == {
        "error": "insecure_transport",
        "error_description": "OAuth 2 MUST utilize https.",
    }


# --- lifetimes and secret rotation -------------------------------------------------------------------


async def test_a_client_with_its_own_lifetime_gets_tokens_that_live_that_long(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    async with sessions() as session, session.begin():
        tenant = await make_tenant(session)
        issued = await create_api_client(
            session,
            TenantScope(tenant.id),
            name="Short-lived",
            scopes=["ingest"],
            access_token_ttl_seconds=120,
            max_token_ttl_seconds=3600,
        )

    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )

    assert response.status_code == 200
    assert response.json()["expires_in"] == 120
    claims = jwt.decode(response.json()["access_token"], KeySet.import_key_set(tokens.jwks())).claims
    assert claims["exp"] - claims["iat"] == 120


async def test_after_a_secret_rotation_the_old_secret_works_until_its_grace_ends(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant, issued, _ = await partner(sessions, ["ingest"])
    scope = TenantScope(tenant.id)
    async with scoped_transaction(sessions, scope) as session:
        rotated = await rotate_client_secret(
            session, scope, issued.client.id, now=dt.datetime.now(dt.UTC), grace=dt.timedelta(hours=24)
        )
    client_id = issued.client.client_id

    async def token_with(secret: str) -> httpx.Response:
        return await client.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
        )

    assert (await token_with(issued.client_secret)).status_code == 200
    assert (await token_with(rotated.client_secret)).status_code == 200

    async with scoped_transaction(sessions, scope) as session:
        expired = await expire_previous_secret(session, scope, issued.client.id, now=dt.datetime.now(dt.UTC))
    assert expired.previous_secret_expires_at is not None
    when = expired.previous_secret_expires_at.isoformat(timespec="seconds")

    old = await token_with(issued.client_secret)
    assert old.status_code == 401
    assert old.json() == {
        "error": "invalid_client",
        "error_description": f"this client secret was replaced and expired at {when}; use the current secret",
    }
    assert old.headers["www-authenticate"] == 'Basic realm="milepost"'
    assert (await token_with(rotated.client_secret)).status_code == 200
    assert (await token_with("never-its-secret")).json() == AUTH_FAILED


# --- RFC 7009 revocation -----------------------------------------------------------------------------


async def token_for(client: httpx.AsyncClient, issued: IssuedClient) -> str:
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def graphql_status(client: httpx.AsyncClient, token: str) -> tuple[int, str | None]:
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, response.headers.get("www-authenticate")


async def revocations(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> list[tuple[str, str]]:
    async with scoped_transaction(sessions, TenantScope(tenant.id)) as session:
        rows = await session.execute(
            select(CredentialRevocation.kind, CredentialRevocation.subject).order_by(
                CredentialRevocation.subject
            )
        )
        return [(kind, subject) for kind, subject in rows]


async def test_a_client_revokes_its_token_and_it_is_refused_at_once(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    key_encryption_key: bytes,
    tokens: TokenService,
) -> None:
    tenant, issued, _ = await partner(sessions)
    revoked, kept = await token_for(client, issued), await token_for(client, issued)
    jti = jwt.decode(revoked, KeySet.import_key_set(tokens.jwks())).claims["jti"]

    response = await client.post(
        "/oauth/revoke",
        data={"token": revoked, "token_type_hint": "access_token"},
        headers=basic(issued.client.client_id, issued.client_secret),
    )

    assert response.status_code == 200
    assert response.json() == {}
    assert response.headers["cache-control"] == "no-store"
    assert await graphql_status(client, revoked) == (
        401,
        'Bearer realm="milepost", error="invalid_token", error_description="the token has been revoked"',
    )
    assert await graphql_status(client, kept) == (200, None)
    assert await revocations(sessions, tenant) == [("token", jti)]
    # another API process, loading what is in force, refuses it too
    elsewhere = await token_service(settings, sessions, key_encryption_key)
    with pytest.raises(InvalidToken, match="the token has been revoked"):
        elsewhere.verify(revoked)
    # revoking it again is fine, and so is a refresh_token hint (we look for the token whatever the hint)
    again = await client.post(
        "/oauth/revoke",
        data={
            "token": revoked,
            "token_type_hint": "refresh_token",
            "client_id": issued.client.client_id,
            "client_secret": issued.client_secret,
        },
    )
    assert (again.status_code, again.json()) == (200, {})
    assert await revocations(sessions, tenant) == [("token", jti)]


async def test_a_client_cannot_revoke_another_clients_token(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    tenant, mine, _ = await partner(sessions)
    async with sessions() as session, session.begin():
        neighbour = await make_api_client(session, tenant)
    _, foreign, _ = await partner(sessions)
    neighbours_token, foreign_token = await token_for(client, neighbour), await token_for(client, foreign)
    staff_token = tokens.issue(
        Principal(
            tenant_id=tenant.id, subject_kind="user", subject_id=uuid.uuid4(), roles=frozenset({"admin"})
        )
    )

    for token in (neighbours_token, foreign_token, staff_token):
        response = await client.post(
            "/oauth/revoke",
            data={"token": token},
            headers=basic(mine.client.client_id, mine.client_secret),
        )
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_grant",
            "error_description": "the token was not issued to this client",
        }
        assert await graphql_status(client, token) == (200, None)
    assert await revocations(sessions, tenant) == []


async def test_a_token_that_is_already_useless_is_revoked_with_nothing_to_do(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tokens: TokenService
) -> None:
    tenant, issued, _ = await partner(sessions)
    principal = principal_for_client(issued.client)
    expired = token_service_like(tokens, clock=lambda: time.time() - 3600).issue(principal)
    forged = token_service_like(tokens, key=ECKey.generate_key("P-256", private=True)).issue(principal)

    for token in ("not-a-jwt", expired, forged):
        response = await client.post(
            "/oauth/revoke",
            data={"token": token},
            headers=basic(issued.client.client_id, issued.client_secret),
        )
        # RFC 7009 §2.2: an invalid token is no error, the client could do nothing about it
        assert (response.status_code, response.json()) == (200, {})
    assert await revocations(sessions, tenant) == []


async def test_bad_revocation_requests_get_precise_errors(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant, issued, _ = await partner(sessions)
    token = await token_for(client, issued)
    credentials = basic(issued.client.client_id, issued.client_secret)
    cases: list[tuple[dict[str, str], dict[str, str], int, dict[str, str]]] = [
        (
            {"token": token},
            {},
            401,
            {
                "error": "invalid_client",
                "error_description": "client authentication required: HTTP Basic (client_secret_basic) "
                "or client_id and client_secret in the body (client_secret_post)",
            },
        ),
        ({"token": token}, basic(issued.client.client_id, "wrong"), 401, AUTH_FAILED),
        (
            {"token_type_hint": "access_token"},
            credentials,
            400,
            {"error": "invalid_request", "error_description": "the token parameter is missing"},
        ),
        (
            {"token": token, "token_type_hint": "id_token"},
            credentials,
            400,
            {
                "error": "unsupported_token_type",
                "error_description": "token_type_hint 'id_token' is not one of access_token, refresh_token",
            },
        ),
    ]
    for form, headers, status, body in cases:
        response = await client.post("/oauth/revoke", data=form, headers=headers)
        assert (response.status_code, response.json()) == (status, body), form
    as_json = await client.post("/oauth/revoke", json={"token": token}, headers=credentials)
    assert (as_json.status_code, as_json.json()) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "the revocation endpoint accepts only application/x-www-form-urlencoded bodies",
        },
    )
    assert (await client.get("/oauth/revoke")).status_code == 405
    assert await revocations(sessions, tenant) == []
    assert await graphql_status(client, token) == (200, None)


async def test_a_revoked_client_can_neither_revoke_nor_use_its_tokens(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], app_state: AppState
) -> None:
    tenant, issued, _ = await partner(sessions)
    token = await token_for(client, issued)
    scope = TenantScope(tenant.id)
    async with scoped_transaction(sessions, scope) as session:
        await revoke_api_client(
            session,
            scope,
            issued.client.id,
            now=dt.datetime.now(dt.UTC),
            max_token_lifetime=dt.timedelta(hours=1),
        )
    # what this process's credentials watch does when the NOTIFY arrives
    async with system_transaction(sessions) as session:
        app_state.tokens.use_revocations(await revocations_in_force(session, dt.datetime.now(dt.UTC)))

    refused = await client.post(
        "/oauth/revoke", data={"token": token}, headers=basic(issued.client.client_id, issued.client_secret)
    )

    assert (refused.status_code, refused.json()) == (
        401,
        {"error": "invalid_client", "error_description": "this client has been revoked"},
    )
    assert await graphql_status(client, token) == (
        401,
        'Bearer realm="milepost", error="invalid_token", error_description="the token\'s client has been revoked"',
    )
