"""The Starlette application: routes plus pure-ASGI middleware, assembled from an :class:`AppState`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from api.auth.routes import auth_routes
from api.graphql.endpoint import graphql_routes
from api.health import health_routes
from api.ingest import ingest_routes
from api.live import LiveHub, listen_dsn
from api.middleware import BodyLimitMiddleware, Metrics, RequestContextMiddleware
from api.state import AppState
from portal.routes import portal_routes


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": "http_error", "error_description": exc.detail},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _portal_redirect(request: Request) -> Response:
    return RedirectResponse("/portal/")


def create_app(state: AppState) -> Starlette:
    """The app; its lifespan runs the process's live-event hub (its LISTEN connection), so serve it with
    lifespan on for subscriptions to work."""
    metrics = Metrics()
    hub = LiveHub(
        state.sessions,
        listen_dsn(state.engine.url),
        queue_size=state.settings.subscription_queue_size,
        clock=state.clock,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        listening = asyncio.create_task(hub.run(stopping))
        try:
            yield
        finally:
            stopping.set()
            # a hub still trying to reach a database that is gone is not waited for long
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listening, timeout=5)

    routes: list[BaseRoute] = [
        *health_routes(state, metrics),
        *auth_routes(state),
        *graphql_routes(state, hub),
        *ingest_routes(state),
        *portal_routes(),
        Route("/portal", _portal_redirect),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error}, lifespan=lifespan)
    app.state.milepost = state
    app.state.live = hub
    # outermost first: the request id must exist before anything else logs or refuses
    settings = state.settings
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        path_limits={"/graphql": min(settings.max_body_bytes, settings.graphql_max_body_bytes)},
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
