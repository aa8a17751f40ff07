from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.middleware import Metrics
from api.state import AppState


def health_routes(state: AppState, metrics: Metrics) -> list[Route]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            revision = await current_revision(state.engine)
        except Exception as error:  # any failure to reach the database means not ready
            return JSONResponse(
                {"status": "unavailable", "database": f"unreachable: {type(error).__name__}"},
                status_code=503,
            )
        if revision != state.expected_revision:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "database": "reachable",
                    "migrations": f"database at {revision}, code expects {state.expected_revision}",
                },
                status_code=503,
            )
        return JSONResponse({"status": "ok", "database": "reachable", "migrations": revision})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
