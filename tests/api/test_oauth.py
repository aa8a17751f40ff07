from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.auth.tokens import TokenService
from api.state import AppState
from domain.db import TenantScope, apply_scope
from domain.tenancy.models import Account, ApiClient, Tenant
from domain.tenancy.service import IssuedClient
from milepost.settings import Settings
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
