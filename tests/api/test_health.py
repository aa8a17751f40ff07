from __future__ import annotations

import dataclasses

import httpx

from api.app import create_app
from api.state import AppState
from milepost.database import head_revision


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_and_current_migrations(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "reachable"
    assert body["migrations"] == head_revision()


async def test_readyz_refuses_when_the_database_is_not_at_the_codes_revision(app_state: AppState) -> None:
    ahead = dataclasses.replace(app_state, expected_revision="9999")
    transport = httpx.ASGITransport(app=create_app(ahead))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "reachable",
        "migrations": f"database at {head_revision()}, code expects 9999",
    }


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert len(generated.headers["x-request-id"]) == 32


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert 'milepost_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in response.text
    assert "milepost_http_request_duration_seconds_bucket" in response.text
