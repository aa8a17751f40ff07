"""DCSA 3.0.0-Beta-1 and 3.0.0 files through the whole capture path: the timeline per booking shows the
carrier's plan, estimate and actual for the same transport calls."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from tests.api.test_ingest import add_shipment, bearer, post, timeline, with_clients
from tests.shipment_factories import committed_tenant

DCSA = Path(__file__).resolve().parents[1] / "fixtures" / "dcsa"


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


async def test_beta1_events_give_plan_estimate_and_actual_per_transport_call(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await with_clients(
        sessions, await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    )
    shipment_id = await add_shipment(sessions, world, [("booking", "ABC123123123")])
    body = (DCSA / "tnt-300beta1-events-dcsa-tnt-postman.json").read_bytes()
    response = await post(client, "dcsa", body, bearer(tokens, world))
    assert response.status_code == 200, response.text
    assert response.json()["counts"]["events"] == 25
    rows = {r[0]: r for r in await timeline(sessions, world.scope, shipment_id)}
    # (code, planned_at, estimated_at, actual_at, actual_source)
    assert rows["DEPARTED"] == (
        "DEPARTED",
        utc(2021, 11, 30, 23, 11),
        utc(2003, 5, 3),
        utc(2003, 5, 3),
        "dcsa",
    )
    assert rows["ARRIVED"] == (
        "ARRIVED",
        utc(2021, 11, 28, 13, 12, 56),
        None,
        utc(2019, 11, 11, 23, 11),
        "dcsa",
    )
    assert rows["BOOKED"][3] == utc(2003, 5, 3)  # shipment event CONF
    assert rows["LOADED"][2:4] == (utc(2019, 11, 11, 23, 11), utc(2003, 5, 3))


async def test_dcsa_3_0_events_join_their_booking(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await with_clients(
        sessions, await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    )
    shipment_id = await add_shipment(sessions, world, [("booking", "ABC709951")])
    for name in ("tnt-300-response.json", "tnt-300-request-transport.json"):
        response = await post(client, "dcsa", (DCSA / name).read_bytes(), bearer(tokens, world))
        assert response.status_code == 200, response.text
    rows = {r[0]: r for r in await timeline(sessions, world.scope, shipment_id)}
    assert rows["BOOKED"][3] == utc(2026, 1, 15, 9)
    assert rows["DEPARTED"][3] == utc(2026, 1, 16, 11, 30)
    assert rows["ARRIVED"][3] is not None
