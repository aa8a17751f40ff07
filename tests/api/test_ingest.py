"""POST /ingest/{format}: raw first, per-event results, dedup, matching and parking, tenants apart."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from domain.db import TenantScope, scoped, scoped_transaction
from domain.shipments.models import Milestone, Shipment
from domain.shipments.service import PlannedMilestone, ShipmentDraft
from domain.tenancy.principal import Principal
from domain.tenancy.service import create_api_client, principal_for_client
from domain.tracking.formats.webhook_signatures import sign
from domain.tracking.ingest import register_shipment
from domain.tracking.models import CodeMapping, IngestEndpoint, IngestMessage, TrackingEvent
from tests.api.graphql_support import shipper, staff
from tests.shipment_factories import TenantWorld, committed_tenant

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DCSA_22 = (FIXTURES / "dcsa" / "tnt-220-response.json").read_bytes()
CANADA_POST = (FIXTURES / "x12" / "214_canadapost_omniparser.edi").read_bytes()
AFTERSHIP = (FIXTURES / "aggregators" / "aftership_get_tracking_postnl-3s.response.json").read_bytes()


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> TenantWorld:
    return await with_clients(sessions, await committed_tenant(sessions, accounts=1, shipments_per_account=0))


_CLIENTS: dict[tuple[uuid.UUID, tuple[str, ...]], Principal] = {}


def bearer(tokens: TokenService, world: TenantWorld, *scopes: str) -> dict[str, str]:
    """A token for a real partner client of ``world`` (created by the ``world`` fixtures)."""
    principal = _CLIENTS[(world.scope.tenant_id, scopes or ("ingest",))]
    return {"Authorization": f"Bearer {tokens.issue(principal)}"}


async def with_clients(sessions: async_sessionmaker[AsyncSession], world: TenantWorld) -> TenantWorld:
    for scopes in (("ingest",), ("shipments:read",)):
        async with scoped_transaction(sessions, world.scope) as session:
            issued = await create_api_client(session, world.scope, name="feed", scopes=scopes)
            _CLIENTS[(world.scope.tenant_id, scopes)] = principal_for_client(issued.client)
    return world


async def post(
    client: httpx.AsyncClient, fmt: str, body: bytes, headers: dict[str, str], **extra: str
) -> httpx.Response:
    return await client.post(f"/ingest/{fmt}", content=body, headers={**headers, **extra})


async def add_shipment(
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
    references: list[tuple[str, str]],
    mode: str = "ocean",
) -> uuid.UUID:
    draft = ShipmentDraft(
        account_id=world.accounts[0].id,
        mode=mode,
        references=references,
        origin_locode="CNSHA",
        destination_locode="USNYC",
        milestones=[
            PlannedMilestone("DEPARTED", dt.datetime(2021, 1, 1, tzinfo=dt.UTC)),
            PlannedMilestone("ARRIVED", dt.datetime(2021, 2, 1, tzinfo=dt.UTC)),
        ],
    )
    async with scoped_transaction(sessions, world.scope) as session:
        return (await register_shipment(session, world.scope, draft)).id


async def timeline(
    sessions: async_sessionmaker[AsyncSession], scope: TenantScope, shipment_id: uuid.UUID
) -> list[tuple[Any, ...]]:
    async with scoped_transaction(sessions, scope) as session:
        rows = (
            await session.execute(
                scoped(select(Milestone), Milestone, scope)
                .where(Milestone.shipment_id == shipment_id)
                .order_by(Milestone.sequence)
            )
        ).scalars()
        return [(m.code, m.planned_at, m.estimated_at, m.actual_at, m.actual_source) for m in rows]


async def test_dcsa_events_park_then_join_the_shipment_when_it_appears(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    response = await post(
        client, "dcsa", DCSA_22, bearer(tokens, world), **{"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert body["counts"] == {"events": 7, "accepted": 0, "parked": 7, "duplicate": 0, "rejected": 0}
    assert [r["outcome"] for r in body["results"]] == ["parked"] * 7

    shipment_id = await add_shipment(sessions, world, [("booking", "ABC123123123")])
    rows = await timeline(sessions, world.scope, shipment_id)
    arrived = next(r for r in rows if r[0] == "ARRIVED")
    assert arrived[3] is not None
    assert arrived[4] == "dcsa"
    loaded = next(r for r in rows if r[0] == "LOADED")
    assert (loaded[2] is not None, loaded[3]) == (True, None)  # an EST LOAD: estimated, not actual


async def test_events_after_the_shipment_give_the_same_timeline_as_before_it(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await with_clients(
        sessions, await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    )
    second = await with_clients(
        sessions, await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    )
    await post(client, "dcsa", DCSA_22, bearer(tokens, first), **{"Content-Type": "application/json"})
    parked_first = await add_shipment(sessions, first, [("booking", "ABC123123123")])
    matched_second = await add_shipment(sessions, second, [("booking", "ABC123123123")])
    response = await post(
        client, "dcsa", DCSA_22, bearer(tokens, second), **{"Content-Type": "application/json"}
    )
    # two events carry no booking reference (one only a container, one only the B/L): they stay parked
    assert response.json()["counts"] == {
        "events": 7,
        "accepted": 5,
        "parked": 2,
        "duplicate": 0,
        "rejected": 0,
    }
    assert await timeline(sessions, first.scope, parked_first) == await timeline(
        sessions, second.scope, matched_second
    )


async def test_the_same_message_twice_adds_nothing(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    await add_shipment(sessions, world, [("booking", "ABC123123123")])
    first = await post(client, "dcsa", DCSA_22, bearer(tokens, world))
    again = await post(client, "dcsa", DCSA_22, bearer(tokens, world))
    assert first.json()["counts"]["accepted"] == 5
    assert again.json()["counts"] == {"events": 7, "accepted": 0, "parked": 0, "duplicate": 7, "rejected": 0}
    async with scoped_transaction(sessions, world.scope) as session:
        count = (await session.execute(scoped(select(TrackingEvent.id), TrackingEvent, world.scope))).all()
        messages = (await session.execute(scoped(select(IngestMessage.id), IngestMessage, world.scope))).all()
    assert (len(count), len(messages)) == (7, 2)


async def test_an_idempotency_key_returns_the_first_result_and_refuses_another_body(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    headers = {**bearer(tokens, world), "Idempotency-Key": "batch-0001"}
    first = await post(client, "dcsa", DCSA_22, headers)
    replayed = await post(client, "dcsa", DCSA_22, headers)
    assert replayed.status_code == 200
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == first.json()
    other = await post(client, "dcsa", b"[]", headers)
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"


async def test_x12_answers_with_a_997_and_parks_unknown_tracking_numbers(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    response = await post(client, "x12", CANADA_POST, bearer(tokens, world), Accept="application/edi-x12")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/edi-x12"
    ack = response.text
    assert ack.startswith("ISA*")
    assert "AK1*QM*000001644" in ack
    assert ack.count("AK5*A") == 19
    as_json = await post(client, "x12", CANADA_POST, bearer(tokens, world))
    assert as_json.json()["counts"] == {
        "events": 19,
        "accepted": 0,
        "parked": 0,
        "duplicate": 19,
        "rejected": 0,
    }
    assert "AK9*A*19*19*19" in as_json.json()["acknowledgment"]


@pytest.mark.parametrize(
    ("fmt", "body", "code"),
    [
        ("dcsa", b'{"events": [', "not_json"),
        ("events", b"\xff\xfe garbage", "not_utf8"),
        ("x12", b"ISA*00*short", "x12.bad_delimiters"),
        ("events", b"[" * 20_000 + b"]" * 20_000, "too_deep"),  # a nesting bomb, refused before decoding
        ("dcsa", b'[{"eventID": "caf\xe9"}]', "not_json"),  # latin-1 inside a JSON document
        (
            "epcis",
            (FIXTURES / "epcis/invalid/openepcis_ObjectEvent_with_non_standard_bizStep.json").read_bytes(),
            "epcis.no_valid_event",
        ),
    ],
)
async def test_a_rejected_message_is_kept_with_a_precise_error(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
    fmt: str,
    body: bytes,
    code: str,
) -> None:
    response = await post(client, fmt, body, bearer(tokens, world))
    assert response.status_code == 422, response.text
    report = response.json()
    assert report["status"] == "rejected"
    assert code in [issue["code"] for issue in report["issues"]]
    async with scoped_transaction(sessions, world.scope) as session:
        stored = await session.get_one(IngestMessage, (world.scope.tenant_id, uuid.UUID(report["messageId"])))
    assert stored.body == body
    assert stored.status == "rejected"


async def test_oversized_bodies_are_refused_and_the_server_stays_up(
    client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld
) -> None:
    response = await post(client, "events", b"x" * (64 * 1024 + 1), bearer(tokens, world))
    assert response.status_code == 413
    assert (await client.get("/healthz")).status_code == 200


async def test_who_may_ingest(client: httpx.AsyncClient, tokens: TokenService, world: TenantWorld) -> None:
    no_scope = await post(client, "dcsa", b"[]", bearer(tokens, world, "shipments:read"))
    assert (no_scope.status_code, no_scope.json()["error"]) == (403, "insufficient_scope")
    as_shipper = await post(
        client, "dcsa", b"[]", {"Authorization": f"Bearer {tokens.issue(shipper(world))}"}
    )
    assert as_shipper.status_code == 403
    as_ops = await post(client, "dcsa", b"[]", {"Authorization": f"Bearer {tokens.issue(staff(world))}"})
    assert as_ops.status_code == 200
    anonymous = await post(client, "dcsa", b"[]", {})
    assert anonymous.status_code == 401
    unknown = await post(client, "telex", b"[]", bearer(tokens, world))
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_format")


async def test_another_tenants_reference_is_unknown_here(
    client: httpx.AsyncClient, tokens: TokenService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    mine = await with_clients(sessions, await committed_tenant(sessions, accounts=1, shipments_per_account=0))
    theirs = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    their_shipment = await add_shipment(sessions, theirs, [("booking", "ABC123123123")])
    response = await post(client, "dcsa", DCSA_22, bearer(tokens, mine))
    assert response.json()["counts"]["parked"] == 7
    assert {r[3] for r in await timeline(sessions, theirs.scope, their_shipment)} == {None}


async def test_aftership_webhooks_are_trusted_by_their_signature_only(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], world: TenantWorld
) -> None:
    url = f"/ingest/aftership?tenant={world.slug}"
    unconfigured = await client.post(
        url, content=AFTERSHIP, headers=dict([sign("aftership", "s3cret", AFTERSHIP)])
    )
    assert (unconfigured.status_code, unconfigured.json()["error"]) == (401, "signature_no_secret")
    async with scoped_transaction(sessions, world.scope) as session:
        session.add(
            IngestEndpoint(tenant_id=world.scope.tenant_id, format="aftership", secrets=["old", "s3cret"])
        )
    signed = await client.post(url, content=AFTERSHIP, headers=dict([sign("aftership", "s3cret", AFTERSHIP)]))
    assert signed.status_code == 200, signed.text
    assert signed.json()["counts"]["parked"] == signed.json()["counts"]["events"] > 0
    forged = await client.post(url, content=AFTERSHIP, headers=dict([sign("aftership", "guess", AFTERSHIP)]))
    assert (forged.status_code, forged.json()["error"]) == (401, "signature_mismatch")
    nobody = await client.post("/ingest/aftership?tenant=no-such-tenant", content=AFTERSHIP)
    assert nobody.status_code == 401


def dcsa3(event_id: str, updated: str, at: str, *, retracted: bool = False) -> dict[str, Any]:
    return {
        "eventID": event_id,
        "eventDateTime": at,
        "eventUpdatedDateTime": updated,
        "isRetracted": retracted,
        "eventClassification": {
            "eventTypeCode": "TRANSPORT",
            "eventClassifierCode": "ACT",
            "transportEventTypeCode": "DEPA",
        },
        "eventLocation": {"UNLocationCode": "CNSHA"},
        "shipmentDetails": {"documentReference": {"typeCode": "BKG", "reference": "BK-UPD-1"}},
    }


async def test_dcsa_updates_replace_and_retractions_withdraw(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    shipment_id = await add_shipment(sessions, world, [("booking", "BK-UPD-1")])

    async def send(*events: dict[str, Any]) -> None:
        response = await post(
            client, "dcsa", json.dumps({"events": list(events)}).encode(), bearer(tokens, world)
        )
        assert response.status_code == 200, response.text

    async def departed() -> tuple[Any, ...]:
        return next(r for r in await timeline(sessions, world.scope, shipment_id) if r[0] == "DEPARTED")

    await send(dcsa3("e-1", "2021-01-01T10:00:00Z", "2021-01-01T09:00:00Z"))
    assert (await departed())[3] == dt.datetime(2021, 1, 1, 9, tzinfo=dt.UTC)
    # the corrected version arrives, then a stale copy of the first: the correction stays
    await send(dcsa3("e-1", "2021-01-01T12:00:00Z", "2021-01-01T11:30:00Z"))
    await send(dcsa3("e-1", "2021-01-01T10:00:00Z", "2021-01-01T09:00:00Z"))
    assert (await departed())[3] == dt.datetime(2021, 1, 1, 11, 30, tzinfo=dt.UTC)
    await send(dcsa3("e-1", "2021-01-02T00:00:00Z", "2021-01-01T11:30:00Z", retracted=True))
    assert (await departed())[3] is None
    async with scoped_transaction(sessions, world.scope) as session:
        status = (await session.execute(scoped(select(Shipment.status), Shipment, world.scope))).scalar_one()
    assert status == "booked"


async def test_a_replay_after_a_mapping_fix_advances_the_timeline(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    from domain.tracking.ingest import replay

    shipment_id = await add_shipment(
        sessions, world, [("tracking_number", "4343638097845589")], mode="parcel"
    )
    # this tenant first said its carrier's XB means nothing to it...
    async with scoped_transaction(sessions, world.scope) as session:
        session.add(
            CodeMapping(
                tenant_id=world.scope.tenant_id,
                system="x12.status",
                code="XB",
                raw_only=True,
                description="ignored",
            )
        )
    response = await post(client, "x12", CANADA_POST, bearer(tokens, world))
    message_id = uuid.UUID(response.json()["messageId"])
    first = next(r for r in response.json()["results"] if r.get("shipment_id") == str(shipment_id))
    assert first["outcome"] == "accepted"
    before = {r[0]: r for r in await timeline(sessions, world.scope, shipment_id)}
    assert before["BOOKED"][3] is None

    # ...then fixed the mapping: XB is the carrier's acknowledgment of the booking
    async with scoped_transaction(sessions, world.scope) as session:
        row = (await session.execute(scoped(select(CodeMapping), CodeMapping, world.scope))).scalar_one()
        row.raw_only, row.milestone = False, "BOOKED"
    async with scoped_transaction(sessions, world.scope) as session:
        message = await replay(session, world.scope, message_id, now=dt.datetime.now(dt.UTC))
        assert message.attempts == 2
        # only the events whose meaning changed (every XB status in the file) were written again
        assert message.accepted_count == CANADA_POST.count(b"AT7*XB") == 6
    booked = next(r for r in await timeline(sessions, world.scope, shipment_id) if r[0] == "BOOKED")
    assert booked[3] == dt.datetime(2019, 11, 3, 20, 34, tzinfo=dt.UTC)
    assert booked[4] == "x12"


async def test_csv_shipments_then_events(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    shipments = (
        b"account_code,mode,carrier_code,origin_locode,destination_locode,booking,etd,eta\n"
        b"ACC0,ocean,MAEU,CNSHA,NLRTM,BK-CSV-1,2026-03-01T10:00:00+08:00,2026-04-01T08:00:00+02:00\n"
        b"NOPE,ocean,MAEU,CNSHA,NLRTM,BK-CSV-2,2026-03-01T10:00:00+08:00,2026-04-01T08:00:00+02:00\n"
    )
    response = await post(client, "csv", shipments, bearer(tokens, world))
    assert response.status_code == 200, response.text
    assert [(r["position"], r["outcome"]) for r in response.json()["results"]] == [
        ("line 2", "accepted"),
        ("line 3", "rejected"),
    ]
    again = await post(client, "csv", shipments, bearer(tokens, world))
    assert [r["outcome"] for r in again.json()["results"]] == ["duplicate", "rejected"]
    events = (
        b"reference,code,classifier,occurred_at,locode\n"
        b"BK-CSV-1,DEPARTED,ACT,2026-03-01T12:00:00+08:00,CNSHA\n"
        b"BK-CSV-1,ARRIVED,EST,2026-04-02T08:00:00+02:00,NLRTM\n"
    )
    response = await post(client, "csv", events, bearer(tokens, world))
    assert response.json()["counts"]["accepted"] == 2
    shipment_id = uuid.UUID(again.json()["results"][0]["shipment_id"])
    rows = {r[0]: r for r in await timeline(sessions, world.scope, shipment_id)}
    assert list(rows) == [
        "BOOKED",
        "GATE_IN_ORIGIN",
        "LOADED",
        "DEPARTED",
        "ARRIVED",
        "DISCHARGED",
        "CUSTOMS_RELEASED",
        "GATE_OUT_DESTINATION",
        "DELIVERED",
    ]
    assert rows["DEPARTED"][1:4] == (
        dt.datetime(2026, 3, 1, 2, tzinfo=dt.UTC),
        None,
        dt.datetime(2026, 3, 1, 4, tzinfo=dt.UTC),
    )
    assert rows["ARRIVED"][2] == dt.datetime(2026, 4, 2, 6, tzinfo=dt.UTC)
    assert rows["BOOKED"][1] == dt.datetime(2026, 2, 15, 2, tzinfo=dt.UTC)  # template: ETD - 14 days


async def test_the_events_schema_is_published(client: httpx.AsyncClient) -> None:
    response = await client.get("/ingest/events/schema.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/schema+json"
    assert response.json()["$schema"].startswith("https://json-schema.org/")


async def test_counts_in_the_database_match_the_report(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    response = await post(client, "dcsa", DCSA_22, bearer(tokens, world))
    async with scoped_transaction(sessions, world.scope) as session:
        stored = (
            await session.execute(
                text("SELECT status, event_count, parked_count FROM ingest_message WHERE id = :id"),
                {"id": uuid.UUID(response.json()["messageId"])},
            )
        ).one()
    assert tuple(stored) == ("accepted", 7, 7)


async def test_a_tenants_own_template_plans_its_shipments(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    from domain.shipments.models import MilestoneTemplate

    steps = [
        {"code": "PICKED_UP", "anchor": "etd", "offset_hours": 0, "at": "origin"},
        {"code": "CUSTOMS_RELEASED", "anchor": "eta", "offset_hours": -6, "at": "destination"},
        {"code": "DELIVERED", "anchor": "eta", "offset_hours": 0, "at": "destination"},
    ]
    async with scoped_transaction(sessions, world.scope) as session:
        session.add(MilestoneTemplate(tenant_id=world.scope.tenant_id, mode="road", steps=steps))
    csv = (
        b"account_code,mode,origin_locode,destination_locode,pro,etd,eta\n"
        b"ACC0,road,USCHI,CAMTR,PRO-77,2026-03-02T08:00:00-06:00,2026-03-04T17:00:00-05:00\n"
    )
    response = await post(client, "csv", csv, bearer(tokens, world))
    shipment_id = uuid.UUID(response.json()["results"][0]["shipment_id"])
    rows = await timeline(sessions, world.scope, shipment_id)
    assert [(r[0], r[1]) for r in rows] == [
        ("PICKED_UP", dt.datetime(2026, 3, 2, 14, tzinfo=dt.UTC)),
        ("CUSTOMS_RELEASED", dt.datetime(2026, 3, 4, 16, tzinfo=dt.UTC)),
        ("DELIVERED", dt.datetime(2026, 3, 4, 22, tzinfo=dt.UTC)),
        # the booking's own ETD and ETA are kept though the template does not have them
        ("DEPARTED", dt.datetime(2026, 3, 2, 14, tzinfo=dt.UTC)),
        ("ARRIVED", dt.datetime(2026, 3, 4, 22, tzinfo=dt.UTC)),
    ]


async def test_concurrent_messages_for_the_same_shipments_do_not_deadlock(
    client: httpx.AsyncClient,
    tokens: TokenService,
    sessions: async_sessionmaker[AsyncSession],
    world: TenantWorld,
) -> None:
    import asyncio

    references = [("booking", f"BK-RACE-{n}") for n in range(20)]
    for reference in references:
        await add_shipment(sessions, world, [reference])

    def message(round_: int, side: str) -> bytes:
        events = [
            {
                "eventId": f"{side}-{round_}-{n}",
                "references": [{"kind": "booking", "value": value}],
                "code": "DEPARTED",
                "classifier": "EST",
                "occurredAt": f"2021-01-0{1 + round_}T{n % 24:02d}:00:00Z",
            }
            for n, (_, value) in enumerate(references)
        ]
        return json.dumps({"events": events}).encode()

    for round_ in range(5):
        responses = await asyncio.gather(
            post(client, "events", message(round_, "a"), bearer(tokens, world)),
            post(client, "events", message(round_, "b"), bearer(tokens, world)),
        )
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        assert [r.json()["counts"]["accepted"] for r in responses] == [20, 20]
