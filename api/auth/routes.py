"""Auth endpoints: the OAuth2 token endpoint, user login, and the JWKS that verifies our access tokens."""

from __future__ import annotations

import json

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from api.auth.oauth import (
    FORM_MEDIA_TYPE,
    NO_STORE,
    MalformedRequest,
    media_type,
    oauth_error,
    read_form,
    revocation_endpoint,
    token_endpoint,
)
from api.state import AppState
from domain.tenancy.service import authenticate_user, principal_for_user

log = structlog.get_logger("milepost.auth")

JSON_MEDIA_TYPE = "application/json"
LOGIN_FIELDS = ("tenant", "email", "password")
# the same words whatever was wrong, so a caller cannot tell which tenants or e-mails exist
LOGIN_FAILED = "unknown tenant, e-mail or password"
# verifiers may cache the key set this long: `milepost keys rotate` publishes a new key this long (by
# default) before it signs, and a retired key leaves the set only after every token it signed expired
JWKS_MAX_AGE_SECONDS = 300


async def _login_fields(request: Request) -> tuple[str, str, str]:
    kind = media_type(request.headers)
    data: object
    if kind == JSON_MEDIA_TYPE:
        try:
            data = json.loads(await request.body())
        except (ValueError, RecursionError):
            raise MalformedRequest("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise MalformedRequest("the JSON body must be an object with tenant, email and password")
    elif kind == FORM_MEDIA_TYPE:
        data = await read_form(request)
    else:
        raise MalformedRequest(f"send the credentials as {JSON_MEDIA_TYPE} or {FORM_MEDIA_TYPE}")
    missing = [name for name in LOGIN_FIELDS if data.get(name) in (None, "")]
    if missing:
        raise MalformedRequest(f"missing or empty field(s): {', '.join(missing)}")
    not_text = [name for name in LOGIN_FIELDS if not isinstance(data[name], str)]
    if not_text:
        raise MalformedRequest(f"field(s) must be strings: {', '.join(not_text)}")
    tenant, email, password = (str(data[name]) for name in LOGIN_FIELDS)
    if "\x00" in tenant or "\x00" in email:  # PostgreSQL text cannot hold NUL
        raise MalformedRequest("tenant and email must not contain NUL characters")
    return tenant, email, password


async def login(state: AppState, request: Request) -> Response:
    """Staff and shipper login: tenant slug, e-mail and password for a bearer access token."""
    try:
        tenant, email, password = await _login_fields(request)
    except MalformedRequest as error:
        return oauth_error(400, "invalid_request", error.description)
    async with state.sessions() as session, session.begin():
        user = await authenticate_user(session, tenant, email, password)
    if user is None:
        log.info("login refused", tenant=tenant)
        return oauth_error(401, "invalid_grant", LOGIN_FAILED)
    log.info("login", tenant_id=str(user.tenant_id), user_id=str(user.id))
    return JSONResponse(
        {
            "access_token": state.tokens.issue(principal_for_user(user)),
            "token_type": "Bearer",
            "expires_in": state.tokens.ttl_seconds,
        },
        headers=NO_STORE,
    )


def auth_routes(state: AppState) -> list[BaseRoute]:
    async def token(request: Request) -> Response:
        return await token_endpoint(state, request)

    async def revoke(request: Request) -> Response:
        return await revocation_endpoint(state, request)

    async def user_login(request: Request) -> Response:
        return await login(state, request)

    async def jwks(request: Request) -> Response:
        return JSONResponse(
            state.tokens.jwks(), headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"}
        )

    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/oauth/revoke", revoke, methods=["POST"]),
        Route("/auth/login", user_login, methods=["POST"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    ]
