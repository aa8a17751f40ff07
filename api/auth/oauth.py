"""``POST /oauth/token`` (OAuth2 client credentials, RFC 6749 §4.4) and ``POST /oauth/revoke`` (RFC 7009)
on Authlib's server framework.

Authlib's server is synchronous and our database is not, so a request is handled in steps: first the
body is parsed and the client's credentials are verified asynchronously (one transaction; the argon2 check
happens there), then a per-request :class:`TokenServer` runs Authlib's client authentication, grant, scope
and revocation checks with a ``query_client`` that can only return that pre-verified client — no I/O
inside Authlib. A revocation Authlib accepted is then written in a transaction of its own.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
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
    InvalidGrantError,
    InvalidScopeError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.auth.bearer import REALM
from api.auth.tokens import InvalidToken, TokenService, VerifiedToken, quoted
from api.state import AppState
from domain.db import TenantScope, scoped_transaction
from domain.tenancy.models import ApiClient
from domain.tenancy.service import (
    ClientAuthentication,
    ClientRefusal,
    authenticate_client,
    principal_for_client,
    revoke_token,
)

log = structlog.get_logger("milepost.auth")

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
GRANT_TYPE = "client_credentials"
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
REVOCATION = "revocation"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# RFC 6749 §3.3 scope-token
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class MalformedRequest(Exception):
    """A request that cannot be understood: ``400 invalid_request`` with :attr:`description`."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


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
        return endpoint in ("token", REVOCATION) and method in CLIENT_AUTH_METHODS

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
class RevocableToken:
    """An access token presented for revocation, already verified (signature, key, claims)."""

    verified: VerifiedToken

    def check_client(self, client: PartnerClient) -> bool:
        """RFC 7009 §2.1: a client may revoke only the tokens issued to it."""
        principal = self.verified.principal
        return (
            principal.subject_kind == "api_client"
            and principal.subject_id == client.row.id
            and principal.scope == principal_for_client(client.row).scope
        )


class _UnsupportedTokenType(OAuth2Error):  # type: ignore[misc]
    """RFC 7009 §2.2.1 in RFC 6749 §5.2's form: 400 (Authlib's UnsupportedTokenTypeError answers 401,
    which would tell clients to retry with other credentials)."""

    error = "unsupported_token_type"
    status_code = 400


class PartnerRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009 for our self-contained access tokens: a token that does not verify, or has expired, is
    already useless, so it answers 200 with nothing to do (§2.2); another client's token is refused
    (``invalid_grant``, Authlib's answer to §2.1)."""

    CLIENT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def check_params(self, request: OAuth2Request, client: PartnerClient) -> None:
        hint = request.form.get("token_type_hint")
        if hint and hint not in self.SUPPORTED_TOKEN_TYPES:
            raise _UnsupportedTokenType(
                f"token_type_hint {quoted(hint)} is not one of {', '.join(self.SUPPORTED_TOKEN_TYPES)}"
            )

    def authenticate_token(self, request: OAuth2Request, client: PartnerClient) -> RevocableToken | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is not None and not token.check_client(client):
            raise InvalidGrantError(description="the token was not issued to this client")
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> RevocableToken | None:
        # the hint only says where to look first; we have one kind of token, so it changes nothing
        server: TokenServer = self.server
        try:
            return RevocableToken(server.tokens.decode(token_string))
        except InvalidToken:
            return None

    def revoke_token(self, token: RevocableToken, request: OAuth2Request) -> None:
        server: TokenServer = self.server
        server.to_revoke.append(token.verified)


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
    """Authlib's authorization server for one request, knowing only that request's client."""

    def __init__(
        self,
        tokens: TokenService,
        client: PartnerClient | None,
        credentials: ClientCredentials | None,
        refusal: ClientAuthentication | None = None,
    ) -> None:
        super().__init__()
        self.tokens = tokens
        self._client = client
        self._credentials = credentials
        self._refusal = refusal
        self.to_revoke: list[VerifiedToken] = []  # what the revocation endpoint accepted
        self.register_grant(PartnerClientCredentialsGrant)
        self.register_endpoint(PartnerRevocationEndpoint)
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
            # always 401 with a Basic challenge (RFC 6749 §5.2 allows it for every method and RFC 7235
            # requires the header)
            return oauth_error(
                401,
                "invalid_client",
                self._client_refusal(),
                headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
            )
        if isinstance(error, UnsupportedGrantTypeError):
            error.description = (
                f"grant_type {quoted(str(error.grant_type))} is not supported; use client_credentials"
            )
        status, body, headers = error(self.get_error_uri(request, error))
        body.setdefault("error_description", error.get_error_description() or error.error)
        return self.handle_response(status, body, headers)

    def _client_refusal(self) -> str:
        if self._credentials is None:
            return (
                "client authentication required: HTTP Basic (client_secret_basic) "
                "or client_id and client_secret in the body (client_secret_post)"
            )
        refusal = self._refusal.refusal if self._refusal is not None else None
        # only a caller holding a secret the client really had hears more than the generic answer
        if refusal is ClientRefusal.REVOKED:
            return "this client has been revoked"
        if refusal is ClientRefusal.SECRET_EXPIRED and self._refusal is not None:
            expired_at = self._refusal.secret_expired_at
            when = f" at {expired_at.isoformat(timespec='seconds')}" if expired_at else ""
            return f"this client secret was replaced and expired{when}; use the current secret"
        return "client authentication failed: unknown client, wrong secret or revoked client"

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
        lifetime = self.tokens.lifetime(client.row.access_token_ttl_seconds)
        log.info(
            "access token issued",
            grant_type=grant_type,
            client_id=client.get_client_id(),
            tenant_id=str(client.row.tenant_id),
            scope=granted,
            expires_in=lifetime,
        )
        return {
            "access_token": self.tokens.issue(
                principal, ttl_seconds=lifetime, client_id=client.row.client_id
            ),
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": granted,
        }


async def _verified_client(
    state: AppState, credentials: ClientCredentials
) -> tuple[PartnerClient | None, ClientAuthentication | None]:
    if not credentials.client_id or not credentials.client_secret or "\x00" in credentials.client_id:
        return None, None
    async with state.sessions() as session, session.begin():
        checked = await authenticate_client(
            session, credentials.client_id, credentials.client_secret, now=state.clock()
        )
    if checked.client is None:
        log.info("client authentication refused", client_id=credentials.client_id, reason=checked.refusal)
        return None, checked
    return PartnerClient(checked.client, credentials.client_secret), checked


@dataclass(frozen=True, slots=True)
class _Prepared:
    server: TokenServer
    parsed: ParsedRequest


async def _prepare(
    state: AppState, request: Request, *, endpoint: str, required: str
) -> _Prepared | Response:
    """Parse the form and verify the client (when the request could succeed at all)."""
    try:
        if media_type(request.headers) != FORM_MEDIA_TYPE:
            raise MalformedRequest(f"the {endpoint} endpoint accepts only {FORM_MEDIA_TYPE} bodies")
        form = await read_form(request)
        if not form.get(required):
            raise MalformedRequest(f"the {required} parameter is missing")
        credentials = client_credentials(request.headers, form)
    except MalformedRequest as error:
        return oauth_error(400, "invalid_request", error.description)

    client: PartnerClient | None = None
    checked: ClientAuthentication | None = None
    # other grant types are refused by Authlib before it asks for a client: spare them the argon2 check
    if credentials is not None and form.get("grant_type", GRANT_TYPE) == GRANT_TYPE:
        client, checked = await _verified_client(state, credentials)
    server = TokenServer(state.tokens, client, credentials, checked)
    # Authlib refuses plain http unless the host is a loopback address; what counts is the URL clients
    # use (TLS usually ends at a proxy in front of us), which is the configured public URL.
    parsed = ParsedRequest(
        method=request.method,
        uri=f"{state.settings.public_url}{request.url.path}",
        headers=request.headers,
        form=form,
    )
    return _Prepared(server, parsed)


async def token_endpoint(state: AppState, request: Request) -> Response:
    prepared = await _prepare(state, request, endpoint="token", required="grant_type")
    if isinstance(prepared, Response):
        return prepared
    server = prepared.server
    try:
        response: Response = server.create_token_response(prepared.parsed)
    except InsecureTransportError as error:
        response = server.handle_error_response(None, error)
    return response


async def revocation_endpoint(state: AppState, request: Request) -> Response:
    """RFC 7009: the client revokes one of its access tokens; refused from then on until it expires."""
    prepared = await _prepare(state, request, endpoint="revocation", required="token")
    if isinstance(prepared, Response):
        return prepared
    server = prepared.server
    try:
        response: Response = server.create_endpoint_response(REVOCATION, prepared.parsed)
    except InsecureTransportError as error:
        return server.handle_error_response(None, error)
    now = state.clock()
    for token in server.to_revoke:
        principal = token.principal
        expires_at = dt.datetime.fromtimestamp(token.expires_at, dt.UTC)
        async with scoped_transaction(state.sessions, TenantScope(principal.tenant_id)) as session:
            await revoke_token(
                session, TenantScope(principal.tenant_id), jti=token.jti, expires_at=expires_at, now=now
            )
        state.tokens.revoked_token(token.jti)
        log.info(
            "access token revoked",
            tenant_id=str(principal.tenant_id),
            api_client_id=str(principal.subject_id),
            jti=token.jti,
        )
    return response
