"""``/graphql`` over HTTP, as the GraphQL-over-HTTP specification has it; over a WebSocket, strawberry's
graphql-transport-ws, authenticated by the token in ``connection_init``.

Order of HTTP refusals: method (405), authentication (401) and rate limits (429), then the request itself
(415, 400, and 413 from the body limit), then GraphQL (parse, limits, validation, cost, execution).
Only ``Authorization: Bearer`` authenticates; cookies never do, so no other site can make a browser
send an authenticated request here (see docs/api.md, "Limits and hardening").
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.ides import get_graphql_ide_html
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UnsetType

from api.auth.bearer import Unauthorized, authenticate, authenticate_connection_init
from api.graphql.context import Context, Loaders
from api.graphql.errors import internal_error, is_internal
from api.graphql.schema import schema
from api.live import LiveConnection, LiveHub
from api.ratelimit import RateLimiter
from api.state import AppState
from domain.tenancy.principal import Principal

log = structlog.get_logger("milepost.graphql")

# strawberry's default (100) per connection; a client wanting more opens another connection
MAX_SUBSCRIPTIONS_PER_CONNECTION = 100

JSON_MEDIA_TYPE = "application/json"
GRAPHQL_RESPONSE_MEDIA_TYPE = "application/graphql-response+json"
# what browsers may send cross-site without a CORS preflight: never a GraphQL request here
FORM_MEDIA_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})


def build_context(
    state: AppState, principal: Principal, request_id: str, *, raw_json: bool = False
) -> Context:
    return Context(
        principal=principal,
        state=state,
        loaders=Loaders(state.sessions, principal.scope),
        request_id=request_id,
        now=state.clock(),
        raw_json=raw_json,
    )


class MilepostGraphQL(GraphQL[Context | LiveConnection, None]):
    """Strawberry's ASGI view, for WebSockets only; HTTP is :class:`GraphQLEndpoint`'s own."""

    def __init__(self, state: AppState) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            allow_queries_via_get=False,
            # the legacy subscriptions-transport-ws protocol ("graphql-ws") is refused: 4406
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=dt.timedelta(seconds=state.settings.ws_init_timeout_seconds),
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
        )
        self.state = state

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context | LiveConnection:
        assert isinstance(request, WebSocket), "HTTP requests are served by GraphQLEndpoint"
        # one per connection; each operation gets its own Context (api.graphql.subscriptions)
        connection: LiveConnection = request.scope["state"]["live"]
        connection.websocket = request  # strawberry's own, so a close is seen by its handler
        return connection

    async def on_ws_connect(self, context: Context | LiveConnection) -> UnsetType | dict[str, object] | None:
        assert isinstance(context, LiveConnection)
        try:
            verified = authenticate_connection_init(context.connection_params or {}, self.state.tokens)
        except Unauthorized as error:
            # graphql-transport-ws answers a refused connection_init with 4403 Forbidden, nothing more
            log.info("websocket refused", reason=error.description)
            raise ConnectionRejectionError() from None
        context.accept(verified)
        return await super().on_ws_connect(context)


class RequestError(Exception):
    """A request we refuse before GraphQL sees it; answered as a GraphQL response with errors only."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class Params:
    query: str
    operation_name: str | None
    variables: dict[str, Any] | None


class GraphQLEndpoint:
    """An ASGI app for ``/graphql``: HTTP here; each WebSocket gets a :class:`LiveConnection` that outlives
    none of its subscribers."""

    def __init__(self, state: AppState, hub: LiveHub) -> None:
        settings = state.settings
        self.state = state
        self.hub = hub
        self.development = settings.environment == "development"
        self.max_variables_bytes = settings.graphql_max_variables_bytes
        self.websocket = MilepostGraphQL(state)
        self.clients = RateLimiter(settings.graphql_rate_limit_per_minute, settings.graphql_rate_limit_burst)
        self.anonymous = RateLimiter(
            settings.graphql_anonymous_rate_limit_per_minute, settings.graphql_anonymous_rate_limit_burst
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            request_id = scope.get("state", {}).get("request_id", "unknown")
            connection = LiveConnection(self.state, self.hub, request_id)
            scope.setdefault("state", {})["live"] = connection
            try:
                await self.websocket(scope, receive, send)
            finally:
                connection.end()
            return
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except RequestError as error:
            response = _errors_response([_request_error(error)], error.status, JSON_MEDIA_TYPE, error.headers)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            raise RequestError(
                405, "METHOD_NOT_ALLOWED", "/graphql takes GET (queries) and POST", {"Allow": "GET, POST"}
            )
        if self.development and _is_ide_page(request):
            return HTMLResponse(get_graphql_ide_html("graphiql"))
        try:
            principal = authenticate(request, self.state.tokens)
        except Unauthorized as error:
            host = request.client.host if request.client else "unknown"
            self._check_rate(self.anonymous, f"ip:{host}", "address")
            return error.response()
        self._check_rate(self.clients, f"{principal.subject_kind}:{principal.subject_id}", "client")
        media_type = _negotiate(request.headers.get("accept"))
        try:
            params = await _read_params(request)
            result = await self._execute(request, principal, params)
        except RequestError as error:
            return _errors_response([_request_error(error)], error.status, media_type, error.headers)
        return _result_response(result, media_type, _request_id(request))

    def _check_rate(self, limiter: RateLimiter, key: str, per: str) -> None:
        wait = limiter.take(key)
        if wait is not None:
            raise RequestError(
                429,
                "RATE_LIMITED",
                f"Too many requests: the limit is {limiter.per_minute} per minute per {per} "
                f"(bursts of {limiter.burst}); retry in {wait} s.",
                {"Retry-After": str(wait)},
            )

    async def _execute(self, request: Request, principal: Principal, params: Params) -> ExecutionResult:
        request_id = _request_id(request)
        if params.variables:
            size = len(json.dumps(params.variables, ensure_ascii=False, separators=(",", ":")).encode())
            if size > self.max_variables_bytes:
                return ExecutionResult(
                    data=None,
                    errors=[
                        GraphQLError(
                            f"The variables are {size} bytes of JSON; the limit is "
                            f"{self.max_variables_bytes}.",
                            extensions={
                                "code": "LIMIT_EXCEEDED",
                                "limit": "variablesBytes",
                                "max": self.max_variables_bytes,
                                "actual": size,
                            },
                        )
                    ],
                )
        get = request.method == "GET"
        try:
            return await schema.execute(
                params.query,
                variable_values=params.variables,
                context_value=build_context(self.state, principal, request_id, raw_json=True),
                operation_name=params.operation_name,
                allowed_operation_types=(
                    {OperationType.QUERY} if get else {OperationType.QUERY, OperationType.MUTATION}
                ),
            )
        except InvalidOperationTypeError as error:
            if get:  # the spec's answer to a mutation over GET
                raise RequestError(
                    405,
                    "METHOD_NOT_ALLOWED",
                    f"GET runs queries only; send {error.operation_type.value}s with POST",
                    {"Allow": "POST"},
                ) from None
            raise RequestError(
                400,
                "BAD_REQUEST",
                "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql",
            ) from None
        except CannotGetOperationTypeError as error:
            return ExecutionResult(data=None, errors=[GraphQLError(error.as_http_error_reason())])
        except Exception:
            return ExecutionResult(data=None, errors=[internal_error(request_id)])


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "unknown"))


def _is_ide_page(request: Request) -> bool:
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "text/html" in request.headers.get("accept", "")
    )


def _negotiate(accept: str | None) -> str:
    """The response media type: ``application/graphql-response+json`` when the client prefers it, else
    ``application/json`` (also for a missing header, ``*/*``, or nothing we offer, as the spec allows)."""
    best, best_rank = JSON_MEDIA_TYPE, (-1.0, 0)
    for part in (accept or "").split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media == GRAPHQL_RESPONSE_MEDIA_TYPE:
            offer, specific = GRAPHQL_RESPONSE_MEDIA_TYPE, 1
        elif media == JSON_MEDIA_TYPE:
            offer, specific = JSON_MEDIA_TYPE, 1
        elif media in ("*/*", "application/*"):
            offer, specific = JSON_MEDIA_TYPE, 0
        else:
            continue
        if quality > 0 and (quality, specific) > best_rank:
            best, best_rank = offer, (quality, specific)
    return best


async def _read_params(request: Request) -> Params:
    if request.method == "GET":
        data: dict[str, Any] = dict(request.query_params)
        for name in ("variables", "extensions"):
            if data.get(name):
                data[name] = _json(data[name], f"the {name} parameter")
    else:
        content_type = request.headers.get("content-type", "")
        media, _, parameters = content_type.partition(";")
        media = media.strip().lower()
        if media != JSON_MEDIA_TYPE:
            got = f"not {media}" if media else "and none was sent"
            why = (
                " (forms are refused: browsers send them from any site)" if media in FORM_MEDIA_TYPES else ""
            )
            raise RequestError(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                f"POST /graphql takes Content-Type: application/json, {got}{why}",
            )
        charset = parameters.partition("charset=")[2].split(";")[0].strip().strip('"').lower()
        if charset not in ("", "utf-8", "utf8"):
            raise RequestError(415, "UNSUPPORTED_MEDIA_TYPE", f"send the body as UTF-8, not {charset}")
        body = await request.body()
        if not body.strip():
            raise RequestError(
                400, "BAD_REQUEST", "the request body is empty: send a JSON object with a query"
            )
        data = _json(body, "the request body")
        if isinstance(data, list):
            raise RequestError(
                400,
                "BAD_REQUEST",
                "batched operations are not supported: send one operation per request (a JSON object, not "
                "an array)",
            )
        if not isinstance(data, dict):
            raise RequestError(400, "BAD_REQUEST", "the request body must be a JSON object with a query")
    query, operation_name = data.get("query"), data.get("operationName")
    variables, extensions = data.get("variables"), data.get("extensions")
    if query is None or query == "":
        raise RequestError(400, "BAD_REQUEST", "no query: send the GraphQL document as `query`")
    if not isinstance(query, str):
        raise RequestError(400, "BAD_REQUEST", "`query` must be a string")
    if operation_name is not None and not isinstance(operation_name, str):
        raise RequestError(400, "BAD_REQUEST", "`operationName` must be a string or null")
    if variables is not None and not isinstance(variables, dict):
        raise RequestError(400, "BAD_REQUEST", "`variables` must be a JSON object or null")
    if extensions is not None and not isinstance(extensions, dict):
        raise RequestError(400, "BAD_REQUEST", "`extensions` must be a JSON object or null")
    return Params(query=query, operation_name=operation_name or None, variables=variables)


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the interpreter allows
        raise RequestError(400, "BAD_REQUEST", f"{what} is not valid JSON") from None


def _request_error(error: RequestError) -> GraphQLError:
    return GraphQLError(error.message, extensions={"code": error.code})


def _result_response(result: ExecutionResult, media_type: str, request_id: str) -> Response:
    errors = [internal_error(request_id, e) if is_internal(e) else e for e in result.errors or []]
    # A request error (syntax, validation, limits, variables, unknown operation) stopped GraphQL before
    # execution: no `data` entry, and 400 for application/graphql-response+json. application/json keeps
    # 200 for every well-formed request, as the spec asks of it.
    if result.data is None and errors and all(e.path is None for e in errors):
        internal = any((e.extensions or {}).get("code") == "INTERNAL_SERVER_ERROR" for e in errors)
        status = 500 if internal else 400 if media_type == GRAPHQL_RESPONSE_MEDIA_TYPE else 200
        return _errors_response(errors, status, media_type)
    body: dict[str, Any] = {"data": result.data}
    if errors:
        body["errors"] = [e.formatted for e in errors]
    if result.extensions:
        body["extensions"] = result.extensions
    return _json_response(body, 200, media_type)


def _errors_response(
    errors: list[GraphQLError], status: int, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    return _json_response({"errors": [e.formatted for e in errors]}, status, media_type, headers)


def _json_response(
    body: dict[str, Any], status: int, media_type: str, headers: dict[str, str] | None = None
) -> Response:
    # answers carry one caller's data: no cache may keep them (GET queries included). orjson: fast, and it
    # writes the JSON text of compiled reads (orjson.Fragment) as it is
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        media_type=f"{media_type}; charset=utf-8",
    )


def graphql_routes(state: AppState, hub: LiveHub) -> list[BaseRoute]:
    endpoint: Any = GraphQLEndpoint(state, hub)
    return [Route("/graphql", endpoint), WebSocketRoute("/graphql", endpoint)]
