"""The customer portal. For now a placeholder page; the portal issue builds it out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Milepost portal</title></head>
<body><main>
<h1>Milepost</h1>
<p>The shipper tracking portal will live here. The API is at <a href="/graphql">/graphql</a>.</p>
</main></body></html>
"""


async def portal_home(request: Request) -> Response:
    return HTMLResponse(PLACEHOLDER)


def portal_routes() -> list[Route]:
    return [Route("/portal/", portal_home, methods=["GET"])]
