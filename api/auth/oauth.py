"""``POST /oauth/token``: OAuth2 client credentials (RFC 6749 §4.4) on Authlib's server framework.

Authlib's server is synchronous and our database is not, so a request is handled in two steps: first the
body is parsed and the client's credentials are verified asynchronously (one transaction; the argon2 check
happens there), then a per-request :class:`TokenServer` runs Authlib's client authentication, grant and
scope checks with a ``query_client`` that can only return that pre-verified client — no I/O inside Authlib.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import structlog
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    JsonPayload,
    JsonRequest,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.errors import (
    InsecureTransportError,
    InvalidClientError,
    InvalidScopeError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.auth.bearer import REALM
from api.auth.tokens import TokenService
from api.state import AppState
from domain.tenancy.models import ApiClient
from domain.tenancy.service import authenticate_client, principal_for_client

log = structlog.get_logger("milepost.auth")

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
GRANT_TYPE = "client_credentials"
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# RFC 6749 §5.2: error_description may only use %x20-21 / %x23-5B / %x5D-7E (Authlib enforces it by raising)
_UNSAFE_DESCRIPTION_CHARS = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# RFC 6749 §3.3 scope-token
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class MalformedRequest(Exception):
    """A request that cannot be understood: ``400 invalid_request`` with :attr:`description`."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def quoted(value: str, limit: int = 40) -> str:
    """``value`` made safe to echo inside an error description."""
    clipped = value if len(value) <= limit else value[:limit] + "..."
    return "'" + _UNSAFE_DESCRIPTION_CHARS.sub("?", clipped) + "'"


def oauth_error(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
    )


def media_type(headers: Headers) -> str:
    return headers.get("content-type", "").partition(";")[0].strip().lower()


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body as a dict; malformed bodies and repeated parameters (RFC 6749 §3.2) are refused."""
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError:  # also UnicodeDecodeError, raw or percent-encoded
        raise MalformedRequest(f"the body is not a well-formed {FORM_MEDIA_TYPE} UTF-8 form") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise MalformedRequest(f"the parameter {quoted(key)} is repeated")
        if "\x00" in value:  # PostgreSQL text cannot hold NUL; refuse it here rather than fail later
            raise MalformedRequest(f"the parameter {quoted(key)} contains a NUL character")
        form[key] = value
    return form


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    client_secret: str


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedRequest("the HTTP Basic credentials are not base64 of UTF-8 text") from None
    client_id, colon, client_secret = decoded.partition(":")
    if not colon:
        raise MalformedRequest("the HTTP Basic credentials must be 'client_id:client_secret'")
    # RFC 6749 §2.3.1 urlencodes both before Basic; Authlib decodes them the same way when it re-checks
    return unquote(client_id), unquote(client_secret)


def client_credentials(headers: Headers, form: Mapping[str, str]) -> ClientCredentials | None:
    """The credentials the client presented, by exactly one method (RFC 6749 §2.3), or ``None``."""
    basic = _basic_credentials(headers.get("authorization"))
    posted_id, posted_secret = form.get("client_id"), form.get("client_secret")
    if basic is not None:
        if posted_secret is not None:
            raise MalformedRequest(
                "authenticate the client one way only: HTTP Basic or client_secret in the body, not both"
            )
        if posted_id is not None and posted_id != basic[0]:
            raise MalformedRequest("client_id in the body differs from the one in HTTP Basic")
        return ClientCredentials(*basic)
    if posted_id is not None or posted_secret is not None:
        return ClientCredentials(posted_id or "", posted_secret or "")
    return None


class PartnerClient(ClientMixin):  # type: ignore[misc]
    """An :class:`ApiClient` row whose secret was already verified (argon2, asynchronously) for this request.

    ``check_client_secret`` compares against that verified secret, so Authlib's own client authentication
    runs unchanged without touching the database.
    """

    def __init__(self, row: ApiClient, verified_secret: str) -> None:
        self.row = row
        self._verified_secret = verified_secret

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.row.scopes)

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in CLIENT_AUTH_METHODS

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self._verified_secret.encode())

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client holds; all of its scopes when none were requested."""
        requested = scope_to_list(scope) if scope else None
        if not requested:
            return str(list_to_scope(sorted(self.scopes)))
        return str(list_to_scope(sorted(set(requested) & self.scopes)))


class PartnerClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    GRANT_TYPE = GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def validate_requested_scope(self) -> None:
        scope: str | None = self.request.payload.scope
        requested = set(scope.split()) if scope else set()
        if any(not _SCOPE_TOKEN.fullmatch(token) for token in requested):
            raise InvalidScopeError("scope must be space-separated scope tokens (RFC 6749 section 3.3)")
        client: PartnerClient = self.client
        allowed = set(scope_to_list(client.get_allowed_scope(scope)) or ())
        if requested and requested != allowed:
            beyond = " ".join(sorted(requested - allowed))
            raise InvalidScopeError(f"scope not granted to this client: {beyond}")


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    method: str
    uri: str
    headers: Headers
    form: dict[str, str]


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self, parsed: ParsedRequest) -> None:
        super().__init__(parsed.method, parsed.uri, headers=parsed.headers)
        self.payload = BasicOAuth2Payload(parsed.form)
        self._form = parsed.form

    @property
    def args(self) -> dict[str, str]:
        return {}  # the token endpoint reads only the body

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _FormJsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: dict[str, str]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, str]:
        return self._data


class TokenServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server for one token request, knowing only that request's client."""

    def __init__(
        self, tokens: TokenService, client: PartnerClient | None, credentials: ClientCredentials | None
    ) -> None:
        super().__init__()
        self._tokens = tokens
        self._client = client
        self._credentials = credentials
        self.register_grant(PartnerClientCredentialsGrant)
        self.register_token_generator("default", self._generate_token)

    def query_client(self, client_id: str) -> PartnerClient | None:
        if self._client is not None and client_id == self._client.get_client_id():
            return self._client
        return None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        # access tokens are self-contained JWTs: nothing to store. A revoked client gets no new token, and
        # the ones it holds expire within the short TTL.
        return None

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: ParsedRequest) -> OAuth2Request:
        return _FormRequest(request)

    def create_json_request(self, request: ParsedRequest) -> JsonRequest:
        # only JSON endpoints (e.g. RFC 7591 registration) ask for this; the token endpoint never does
        json_request = JsonRequest(request.method, request.uri, request.headers)
        json_request.payload = _FormJsonPayload(request.form)
        return json_request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        kept = {name: value for name, value in headers if name.lower() != "content-type"}
        return JSONResponse(body, status_code=status, headers={**NO_STORE, **kept})

    def handle_error_response(self, request: OAuth2Request | None, error: OAuth2Error) -> Response:
        if isinstance(error, InvalidClientError):
            # one answer for unknown client, wrong secret and revoked client; always 401 with a Basic
            # challenge (RFC 6749 §5.2 allows it for every method and RFC 7235 requires the header)
            description = (
                "client authentication failed: unknown client, wrong secret or revoked client"
                if self._credentials is not None
                else "client authentication required: HTTP Basic (client_secret_basic) "
                "or client_id and client_secret in the body (client_secret_post)"
            )
            return oauth_error(
                401, "invalid_client", description, headers={"WWW-Authenticate": f'Basic realm="{REALM}"'}
            )
        if isinstance(error, UnsupportedGrantTypeError):
            error.description = (
                f"grant_type {quoted(str(error.grant_type))} is not supported; use client_credentials"
            )
        status, body, headers = error(self.get_error_uri(request, error))
        body.setdefault("error_description", error.get_error_description() or error.error)
        return self.handle_response(status, body, headers)

    def _generate_token(
        self,
        grant_type: str,
        client: PartnerClient,
        user: object = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        granted = client.get_allowed_scope(scope)
        principal = principal_for_client(client.row, granted.split())
        log.info(
            "access token issued",
            grant_type=grant_type,
            client_id=client.get_client_id(),
            tenant_id=str(client.row.tenant_id),
            scope=granted,
        )
        return {
            "access_token": self._tokens.issue(principal),
            "token_type": "Bearer",
            "expires_in": self._tokens.ttl_seconds,
            "scope": granted,
        }


async def _verified_client(state: AppState, credentials: ClientCredentials) -> PartnerClient | None:
    if not credentials.client_id or not credentials.client_secret or "\x00" in credentials.client_id:
        return None
    async with state.sessions() as session, session.begin():
        row = await authenticate_client(session, credentials.client_id, credentials.client_secret)
    return PartnerClient(row, credentials.client_secret) if row is not None else None


async def token_endpoint(state: AppState, request: Request) -> Response:
    try:
        if media_type(request.headers) != FORM_MEDIA_TYPE:
            raise MalformedRequest(f"the token endpoint accepts only {FORM_MEDIA_TYPE} bodies")
        form = await read_form(request)
        if not form.get("grant_type"):
            raise MalformedRequest("the grant_type parameter is missing")
        credentials = client_credentials(request.headers, form)
    except MalformedRequest as error:
        return oauth_error(400, "invalid_request", error.description)

    client: PartnerClient | None = None
    # other grant types are refused by Authlib before it asks for a client: spare them the argon2 check
    if credentials is not None and form["grant_type"] == GRANT_TYPE:
        client = await _verified_client(state, credentials)

    server = TokenServer(state.tokens, client, credentials)
    # Authlib refuses plain http unless the host is a loopback address; what counts is the URL clients
    # use (TLS usually ends at a proxy in front of us), which is the configured public URL.
    parsed = ParsedRequest(
        method=request.method,
        uri=f"{state.settings.public_url}{request.url.path}",
        headers=request.headers,
        form=form,
    )
    try:
        response: Response = server.create_token_response(parsed)
    except InsecureTransportError as error:
        response = server.handle_error_response(None, error)
    return response
