"""Bearer authentication as a protected endpoint (``POST /graphql``) applies it: RFC 6750 errors and challenges."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid

import httpx
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.auth.tokens import TokenService
from api.graphql.relay import to_global_id
from api.state import AppState
from domain.signing.rules import KeyRing, RingKey
from domain.tenancy.principal import Principal
from domain.tenancy.service import find_tenant_by_slug
from tests.auth_support import LONG_AGO, token_service_like
from tests.factories import make_api_client
from tests.shipment_factories import committed_tenant

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


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_alg_none_is_refused_by_name(client: httpx.AsyncClient, tokens: TokenService) -> None:
    _, payload, _ = tokens.issue(principal()).split(".")
    unsigned = f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{payload}."

    response = await post_graphql(client, f"Bearer {unsigned}")

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "the token's algorithm 'none' is not accepted; tokens are signed with ES256",
    }


async def test_a_symmetric_algorithm_with_the_public_key_is_refused(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    # the classic confusion attack: HS256 "signed" with the published key as the HMAC secret
    _, payload, _ = tokens.issue(principal()).split(".")
    published = tokens.jwks()["keys"][0]
    header = b64({"alg": "HS256", "kid": published["kid"], "typ": "at+jwt"})
    mac = hmac.new(ECKey.import_key(published).as_pem(), f"{header}.{payload}".encode(), hashlib.sha256)
    confused = f"{header}.{payload}.{base64.urlsafe_b64encode(mac.digest()).decode().rstrip('=')}"

    response = await post_graphql(client, f"Bearer {confused}")

    assert response.status_code == 401
    assert response.json()["error_description"] == (
        "the token's algorithm 'HS256' is not accepted; tokens are signed with ES256"
    )


async def test_a_tampered_payload_is_an_invalid_token(
    client: httpx.AsyncClient, tokens: TokenService
) -> None:
    header, payload, signature = tokens.issue(principal()).split(".")
    # the same token, pointed at another tenant with more scopes
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tid"] = str(uuid.uuid4())
    claims["scope"] = "billing:read exceptions:read exceptions:write ingest shipments:read"
    tampered = f"{header}.{b64(claims)}.{signature}"

    response = await post_graphql(client, f"Bearer {tampered}")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge(
        "invalid_token", "the token's signature does not verify"
    )


async def test_header_problems_are_named(client: httpx.AsyncClient, tokens: TokenService) -> None:
    _, payload, signature = tokens.issue(principal()).split(".")
    kid = tokens.jwks()["keys"][0]["kid"]
    cases = {
        f"{b64({'alg': 'ES256', 'typ': 'JWT', 'kid': kid})}.{payload}.{signature}": (
            "the token's type must be at+jwt (RFC 9068)"
        ),
        f"{b64({'alg': 'ES256', 'typ': 'at+jwt'})}.{payload}.{signature}": (
            "the token does not name its signing key (kid)"
        ),
        f"{b64({'alg': 'ES256', 'typ': 'at+jwt', 'kid': 'x' * 80})}.{payload}.{signature}": (
            f"the token's signing key '{'x' * 64}...' is unknown"
        ),
        f"bm90IGpzb24.{payload}.{signature}": "the token is not a well-formed JWT",
        f"{b64({'alg': 'ES256'})}.{payload}": "the token is not a well-formed JWT",
        "W10.e30.": "the token is not a well-formed JWT",  # a JSON array as the header
    }
    for token, description in cases.items():
        response = await post_graphql(client, f"Bearer {token}")
        assert response.status_code == 401, token
        assert response.json() == {"error": "invalid_token", "error_description": description}, token


async def test_a_token_signed_by_a_retired_key_is_refused(
    client: httpx.AsyncClient, app_state: AppState, tokens: TokenService
) -> None:
    old, new = ECKey.generate_key("P-256", private=True), ECKey.generate_key("P-256", private=True)
    now = dt.datetime.now(dt.UTC)
    signed_before = token_service_like(tokens, key=old).issue(principal())  # not expired: 15 minutes left
    ring = KeyRing(
        [
            RingKey(old.thumbprint(), old, None, LONG_AGO, now - dt.timedelta(seconds=1)),
            RingKey(new.thumbprint(), new, new, LONG_AGO, None),
        ]
    )
    verifier = token_service_like(tokens)
    verifier.use_keys(ring)
    transport = httpx.ASGITransport(app=create_app(dataclasses.replace(app_state, tokens=verifier)))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await post_graphql(http, f"Bearer {signed_before}")
        jwks = (await http.get("/.well-known/jwks.json")).json()

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": f"the token's signing key '{old.thumbprint()}' has been retired",
    }
    assert [key["kid"] for key in jwks["keys"]] == [new.thumbprint()]


async def test_a_partner_token_reads_only_its_own_tenants_data(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    mine = await committed_tenant(sessions, accounts=1, shipments_per_account=2)
    theirs = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    async with sessions() as session, session.begin():
        tenant = await find_tenant_by_slug(session, theirs.slug)
        assert tenant is not None
        issued = await make_api_client(session, tenant, scopes=["shipments:read"])
    token = (
        await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(issued.client.client_id, issued.client_secret),
        )
    ).json()["access_token"]
    my_shipment = to_global_id("Shipment", mine.shipments[0].id)
    query = """query($id: ID!) { shipment(id: $id) { id } node(id: $id) { id }
                 shipments(first: 10) { edges { node { id } } } }"""

    response = await client.post(
        "/graphql",
        json={"query": query, "variables": {"id": my_shipment}},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["shipment"] is None
    assert data["node"] is None
    assert [edge["node"]["id"] for edge in data["shipments"]["edges"]] == [
        to_global_id("Shipment", theirs.shipments[0].id)
    ]
