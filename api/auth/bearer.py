"""Bearer-token authentication for protected endpoints (RFC 6750 errors and challenges)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from api.auth.tokens import InvalidToken, TokenService, VerifiedToken
from domain.tenancy.principal import Principal

REALM = "milepost"


class Unauthorized(Exception):
    def __init__(self, error: str | None, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description

    def challenge(self) -> str:
        if self.error is None:  # no credentials at all: RFC 6750 §3.1 says send no error code
            return f'Bearer realm="{REALM}"'
        escaped = self.description.replace('"', "'")
        return f'Bearer realm="{REALM}", error="{self.error}", error_description="{escaped}"'

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error or "unauthorized", "error_description": self.description},
            status_code=401,
            headers={"WWW-Authenticate": self.challenge(), "Cache-Control": "no-store"},
        )


def authenticate(connection: HTTPConnection, tokens: TokenService) -> Principal:
    """The principal of a request's ``Authorization: Bearer`` token, or :class:`Unauthorized`."""
    header = connection.headers.get("authorization")
    if not header:
        raise Unauthorized(None, "authentication required: send an OAuth2 bearer access token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("invalid_request", "the Authorization header must be 'Bearer <token>'")
    try:
        return tokens.verify(token.strip())
    except InvalidToken as error:
        raise Unauthorized("invalid_token", str(error)) from None


def authenticate_connection_init(payload: Mapping[str, object], tokens: TokenService) -> VerifiedToken:
    """The verified token of a graphql-transport-ws ``connection_init`` payload (its principal, its end,
    its id for revocation), or :class:`Unauthorized`. Browsers cannot set headers on a WebSocket, so the
    token travels in the payload: ``{"Authorization": "Bearer <token>"}`` (as the HTTP header, any case)
    or ``{"token": "<token>"}``."""
    headers = {key.lower(): value for key, value in payload.items()}
    token: object = headers.get("token")
    if token is None:
        header = headers.get("authorization")
        if header is None:
            raise Unauthorized(None, "authentication required: send the access token in connection_init")
        scheme, _, token = str(header).partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("invalid_request", "Authorization must be 'Bearer <token>'")
    if not isinstance(token, str) or not token.strip():
        raise Unauthorized("invalid_request", "the token must be a non-empty string")
    try:
        return tokens.verify_token(token.strip())
    except InvalidToken as error:
        raise Unauthorized("invalid_token", str(error)) from None
