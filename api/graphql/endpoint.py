"""``/graphql`` over HTTP: authenticate first, then strawberry with a per-request context."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from api.auth.bearer import Unauthorized, authenticate
from api.graphql.context import Context, Loaders
from api.graphql.schema import schema
from api.state import AppState
from domain.tenancy.principal import Principal


class MilepostGraphQL(GraphQL[Context, None]):
    def __init__(self, state: AppState) -> None:
        development = state.settings.environment == "development"
        super().__init__(
            schema,
            graphql_ide="graphiql" if development else None,
            allow_queries_via_get=False,
        )
        self.state = state

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        principal: Principal = request.scope["state"]["principal"]
        return Context(
            principal=principal,
            state=self.state,
            loaders=Loaders(self.state.sessions, principal.scope),
            request_id=request.scope["state"].get("request_id", "unknown"),
            now=self.state.clock(),
        )


class GraphQLEndpoint:
    """An ASGI app: refuses unauthenticated requests with 401 before GraphQL sees them."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.graphql = MilepostGraphQL(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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


def graphql_routes(state: AppState) -> list[BaseRoute]:
    endpoint: Any = GraphQLEndpoint(state)
    return [Route("/graphql", endpoint)]
