from __future__ import annotations

from starlette.routing import BaseRoute

from api.state import AppState


def auth_routes(state: AppState) -> list[BaseRoute]:
    return []
