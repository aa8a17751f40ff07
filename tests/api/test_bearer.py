"""Bearer authentication as a protected endpoint (``POST /graphql``) applies it: RFC 6750 errors and challenges."""

from __future__ import annotations

import time
import uuid

import httpx
from joserfc.jwk import ECKey

from api.auth.tokens import TokenService
from domain.tenancy.principal import Principal
from tests.auth_support import token_service_like

QUERY = {"query": "{ __typename }"}


def principal() -> Principal:
    return Principal(
        tenant_id=uuid.uuid4(),
        subject_kind="api_client",
        subject_id=uuid.uuid4(),
        scopes=frozenset({"shipments:read"}),
    )


def challenge(error: str, description: str) -> str:
    return f'Bearer realm="milepost", error="{error}", error_description="{description}"'


async def post_graphql(client: httpx.AsyncClient, authorization: str | None) -> httpx.Response:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return await client.post("/graphql", json=QUERY, headers=headers)


async def test_a_valid_token_is_let_through(client: httpx.AsyncClient, tokens: TokenService) -> None:
    response = await post_graphql(client, f"Bearer {tokens.issue(principal())}")

    assert response.status_code == 200
    assert "www-authenticate" not in response.headers


async def test_no_authorization_header_is_a_bare_challenge(client: httpx.AsyncClient) -> None:
    response = await post_graphql(client, None)

    assert response.status_code == 401
    # RFC 6750 §3.1: a request without credentials gets no error code in the challenge
    assert response.headers["www-authenticate"] == 'Bearer realm="milepost"'
    assert response.json() == {
        "error": "unauthorized",
        "error_description": "authentication required: send an OAuth2 bearer access token",
    }


async def test_another_scheme_is_an_invalid_request(client: httpx.AsyncClient, tokens: TokenService) -> None:
    response = await post_graphql(client, "Basic dXNlcjpwYXNz")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge(
        "invalid_request", "the Authorization header must be 'Bearer <token>'"
    )


async def test_a_tampered_signature_is_an_invalid_token(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    header, payload, signature = tokens.issue(principal()).split(".")
    # flip a character in the middle: the last one may only carry padding bits
    middle = len(signature) // 2
    flipped = "B" if signature[middle] != "B" else "C"
    tampered = f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"

    response = await post_graphql(client, f"Bearer {tampered}")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge(
        "invalid_token", "the token's signature does not verify"
    )
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "the token's signature does not verify",
    }


async def test_an_expired_token_is_an_invalid_token(client: httpx.AsyncClient, tokens: TokenService) -> None:
    an_hour_ago = token_service_like(tokens, clock=lambda: time.time() - 3600)

    response = await post_graphql(client, f"Bearer {an_hour_ago.issue(principal())}")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge("invalid_token", "the token has expired")


async def test_a_token_for_another_audience_is_an_invalid_token(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    elsewhere = token_service_like(tokens, audience="some-other-api")

    response = await post_graphql(client, f"Bearer {elsewhere.issue(principal())}")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge(
        "invalid_token", "the token has an invalid claim (Invalid claim: 'aud')"
    )


async def test_a_token_signed_by_an_unknown_key_is_an_invalid_token(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    forged_key = ECKey.generate_key("P-256", private=True)
    forger = token_service_like(tokens, key=forged_key)

    response = await post_graphql(client, f"Bearer {forger.issue(principal())}")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge(
        "invalid_token", f"the token's signing key '{forged_key.thumbprint()}' is unknown"
    )


async def test_garbage_is_an_invalid_token(client: httpx.AsyncClient) -> None:
    response = await post_graphql(client, "Bearer not-a-jwt")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge(
        "invalid_token", "the token is not a well-formed JWT"
    )
