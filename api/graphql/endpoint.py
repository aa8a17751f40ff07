"""``/graphql``: over HTTP, authenticate first, then strawberry with a per-request context; over a WebSocket,
graphql-transport-ws only, authenticated by the token in ``connection_init``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from api.auth.bearer import Unauthorized, authenticate, authenticate_connection_init
from api.graphql.context import Context, Loaders
from api.graphql.schema import schema
from api.live import LiveConnection, LiveHub
from api.state import AppState
from domain.tenancy.principal import Principal

log = structlog.get_logger("milepost.graphql")

# strawberry's default (100) per connection; a client wanting more opens another connection
MAX_SUBSCRIPTIONS_PER_CONNECTION = 100


class MilepostGraphQL(GraphQL[Context | LiveConnection, None]):
    def __init__(self, state: AppState) -> None:
        development = state.settings.environment == "development"
        super().__init__(
            schema,
            graphql_ide="graphiql" if development else None,
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
        if isinstance(request, WebSocket):
            # one per connection; each operation gets its own Context (api.graphql.subscriptions)
            connection: LiveConnection = request.scope["state"]["live"]
            connection.websocket = request  # strawberry's own, so a close is seen by its handler
            return connection
        principal: Principal = request.scope["state"]["principal"]
        return Context(
            principal=principal,
            state=self.state,
            loaders=Loaders(self.state.sessions, principal.scope),
            request_id=request.scope["state"].get("request_id", "unknown"),
            now=self.state.clock(),
        )

    async def on_ws_connect(self, context: Context | LiveConnection) -> UnsetType | dict[str, object] | None:
        assert isinstance(context, LiveConnection)
        try:
            principal, expires_in = authenticate_connection_init(
                context.connection_params or {}, self.state.tokens
            )
        except Unauthorized as error:
            # graphql-transport-ws answers a refused connection_init with 4403 Forbidden, nothing more
            log.info("websocket refused", reason=error.description)
            raise ConnectionRejectionError() from None
        context.accept(principal, expires_in)
        return await super().on_ws_connect(context)


class GraphQLEndpoint:
    """An ASGI app: refuses unauthenticated HTTP requests with 401 before GraphQL sees them; gives each
    WebSocket a :class:`LiveConnection` that outlives none of its subscribers."""

    def __init__(self, state: AppState, hub: LiveHub) -> None:
        self.state = state
        self.hub = hub
        self.graphql = MilepostGraphQL(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            request_id = scope.get("state", {}).get("request_id", "unknown")
            connection = LiveConnection(self.state, self.hub, request_id)
            scope.setdefault("state", {})["live"] = connection
            try:
                await self.graphql(scope, receive, send)
            finally:
                connection.end()
            return
        if scope["type"] == "http":
            is_ide_page = scope["method"] == "GET" and self.graphql.graphql_ide is not None
            if scope["method"] == "POST" and not _is_json(HTTPConnection(scope)):
                await JSONResponse(
                    {
                        "error": "unsupported_media_type",
                        "error_description": "POST /graphql takes Content-Type: application/json",
                    },
                    status_code=415,
                )(scope, receive, send)
                return
            if not is_ide_page:
                try:
                    principal = authenticate(HTTPConnection(scope), self.state.tokens)
                except Unauthorized as error:
                    await error.response()(scope, receive, send)
                    return
                scope.setdefault("state", {})["principal"] = principal
        await self.graphql(scope, receive, send)


def _is_json(connection: HTTPConnection) -> bool:
    media_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json"


def graphql_routes(state: AppState, hub: LiveHub) -> list[BaseRoute]:
    endpoint: Any = GraphQLEndpoint(state, hub)
    return [Route("/graphql", endpoint), WebSocketRoute("/graphql", endpoint)]
