from __future__ import annotations

from starlette.routing import BaseRoute

from api.state import AppState


def graphql_routes(state: AppState) -> list[BaseRoute]:
    return []
