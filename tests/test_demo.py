"""The demo seed (exact, deterministic counts; idempotent; tenant and shipper isolation) and the feed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db import TenantScope, scoped, scoped_transaction
from domain.models import (
    Account,
    ApiClient,
    AssignmentRule,
    Leg,
    Milestone,
    Shipment,
    ShipmentReference,
    Team,
    TeamMember,
    TrackingEvent,
    User,
)
from domain.shipments.models import MilestoneCode, ReferenceKind, ShipmentStatus
from domain.shipments.service import PlannedMilestone, ShipmentDraft, create_shipment
from domain.tenancy.service import authenticate_client
from domain.tracking.service import NewEvent, record_event
from milepost import demo
from milepost.database import Database
from milepost.settings import Settings
from tests.factories import make_account, make_tenant
from workers.actors import advance_feed
from workers.broker import configure_workers, current_broker, start_in_process_worker

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
M = MilestoneCode

# -- seed ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def seeded(sessions: async_sessionmaker[AsyncSession]) -> dict[str, demo.SeededTenant]:
    started = time.perf_counter()
    tenants = await demo.seed(sessions, now=NOW)
    print(f"demo seed: {time.perf_counter() - started:.2f} s")
    return {tenant.slug: tenant for tenant in tenants}


async def counts(sessions: async_sessionmaker[AsyncSession], scope: TenantScope) -> dict[str, Any]:
    """Row counts as row-level security alone lets ``scope`` see them (deliberately no ``scoped()``)."""
    async with scoped_transaction(sessions, scope) as session:

        async def count(model: Any) -> int:
            return int((await session.execute(select(func.count()).select_from(model))).scalar_one())

        by_mode_and_status = await session.execute(
            select(Shipment.mode, Shipment.status, func.count())
            .group_by(Shipment.mode, Shipment.status)
            .order_by(Shipment.mode, Shipment.status)
        )
        by_classifier = await session.execute(
            select(TrackingEvent.classifier, func.count())
            .group_by(TrackingEvent.classifier)
            .order_by(TrackingEvent.classifier)
        )
        return {
            "accounts": await count(Account),
            "users": await count(User),
            "teams": await count(Team),
            "team_members": await count(TeamMember),
            "assignment_rules": await count(AssignmentRule),
            "api_clients": await count(ApiClient),
            "shipments": await count(Shipment),
            "legs": await count(Leg),
            "milestones": await count(Milestone),
            "references": await count(ShipmentReference),
            "events": {row[0]: row[1] for row in by_classifier},
            "shipments_by_mode_and_status": {f"{row[0]}/{row[1]}": row[2] for row in by_mode_and_status},
        }


EXPECTED = {
    "northwind": {
        "accounts": 4,
        "users": 10,
        "teams": 2,
        "team_members": 4,
        "assignment_rules": 2,
        "api_clients": 1,
        "shipments": 150,
        "legs": 207,
        "milestones": 1416,
        "references": 661,
        "events": {"ACT": 733, "EST": 42},
        "shipments_by_mode_and_status": {
            "air/booked": 10,
            "air/delivered": 4,
            "air/in_transit": 32,
            "ocean/booked": 11,
            "ocean/delivered": 16,
            "ocean/in_transit": 54,
            "road/booked": 3,
            "road/delivered": 4,
            "road/in_transit": 16,
        },
    },
    "harbor-3pl": {
        "accounts": 3,
        "users": 9,
        "teams": 2,
        "team_members": 5,
        "assignment_rules": 2,
        "api_clients": 1,
        "shipments": 150,
        "legs": 150,
        "milestones": 958,
        "references": 380,
        "events": {"ACT": 461, "EST": 35},
        "shipments_by_mode_and_status": {
            "parcel/booked": 26,
            "parcel/delivered": 8,
            "parcel/in_transit": 36,
            "rail/booked": 4,
            "rail/delivered": 4,
            "rail/in_transit": 4,
            "road/booked": 27,
            "road/delivered": 14,
            "road/in_transit": 27,
        },
    },
}


async def test_the_seed_creates_exactly_the_planned_demo_data(
    sessions: async_sessionmaker[AsyncSession], seeded: dict[str, demo.SeededTenant]
) -> None:
    assert sorted(seeded) == ["harbor-3pl", "northwind"]
    for slug, tenant in seeded.items():
        assert tenant.created is True
        assert await counts(sessions, TenantScope(tenant.tenant_id)) == EXPECTED[slug]
    northwind = seeded["northwind"]
    assert northwind.name == "Northwind Forwarding"
    assert northwind.staff == [
        ("ops@northwind.example", "operations"),
        ("cs@northwind.example", "customer_service"),
        ("docs@northwind.example", "documentation"),
        ("sales@northwind.example", "sales"),
        ("finance@northwind.example", "finance"),
        ("admin@northwind.example", "admin"),
    ]
    assert northwind.shippers == [
        ("logistics@acme.example", "Acme Electronics"),
        ("shipping@bluewater.example", "Bluewater Apparel"),
        ("imports@cascade.example", "Cascade Furniture"),
        ("supply@deltaauto.example", "Delta Auto Parts"),
    ]
    assert northwind.client_id is not None
    assert northwind.client_id.startswith("mp_")
    assert northwind.client_secret is not None


async def test_seeding_again_reuses_the_tenants_and_adds_nothing(
    sessions: async_sessionmaker[AsyncSession], seeded: dict[str, demo.SeededTenant]
) -> None:
    before = {slug: await counts(sessions, TenantScope(t.tenant_id)) for slug, t in seeded.items()}
    again = {t.slug: t for t in await demo.seed(sessions, now=NOW + dt.timedelta(days=1))}
    for slug, tenant in seeded.items():
        assert again[slug].created is False
        assert again[slug].tenant_id == tenant.tenant_id
        assert again[slug].client_id == tenant.client_id
        assert again[slug].client_secret is None  # it was shown once, when created
        assert again[slug].staff == tenant.staff
        assert await counts(sessions, TenantScope(tenant.tenant_id)) == before[slug]


async def test_demo_users_log_in_with_the_documented_password(
    session: AsyncSession, seeded: dict[str, demo.SeededTenant]
) -> None:
    from domain.tenancy.service import authenticate_user

    user = await authenticate_user(session, "harbor-3pl", "ops@harbor-3pl.example", "milepost-demo")
    assert user is not None
    assert user.roles == ["operations"]
    shipper = await authenticate_user(session, "northwind", "logistics@acme.example", "milepost-demo")
    assert shipper is not None
    assert shipper.roles == ["shipper"]
    assert shipper.account_id is not None


async def test_a_shipper_sees_only_its_own_accounts_shipments(
    sessions: async_sessionmaker[AsyncSession], seeded: dict[str, demo.SeededTenant]
) -> None:
    tenant_scope = TenantScope(seeded["northwind"].tenant_id)
    async with scoped_transaction(sessions, tenant_scope) as session:
        acme = (
            await session.execute(
                scoped(select(Account), Account, tenant_scope).where(Account.code == "ACME")
            )
        ).scalar_one()
        per_account = dict(
            (
                await session.execute(
                    scoped(select(Shipment.account_id, func.count()), Shipment, tenant_scope).group_by(
                        Shipment.account_id
                    )
                )
            ).all()
        )
    assert sorted(per_account.values()) == [16, 32, 40, 62]
    assert per_account[acme.id] == 62

    shipper_scope = TenantScope(tenant_scope.tenant_id, account_id=acme.id)
    async with scoped_transaction(sessions, shipper_scope) as session:
        through_rls_only = (await session.execute(select(Shipment.account_id).distinct())).scalars().all()
        through_scoped = (
            await session.execute(scoped(select(func.count()), Shipment, shipper_scope).select_from(Shipment))
        ).scalar_one()
        users = (await session.execute(select(User.email))).scalars().all()
    assert through_rls_only == [acme.id]
    assert through_scoped == 62
    assert users == ["logistics@acme.example"]  # not the staff, not other shippers


async def test_one_tenants_rows_stay_invisible_to_the_other(
    sessions: async_sessionmaker[AsyncSession], seeded: dict[str, demo.SeededTenant]
) -> None:
    northwind, harbor = seeded["northwind"].tenant_id, seeded["harbor-3pl"].tenant_id
    for model in (Account, User, ApiClient, Shipment, Leg, Milestone, ShipmentReference, TrackingEvent):
        async with scoped_transaction(sessions, TenantScope(northwind)) as session:
            tenants = (await session.execute(select(model.tenant_id).distinct())).scalars().all()
            assert tenants == [northwind], model.__name__
            harbor_rows = await session.execute(
                scoped(select(func.count()), model, TenantScope(harbor)).select_from(model)
            )
            assert harbor_rows.scalar_one() == 0, model.__name__


async def test_seeded_references_are_well_formed(
    sessions: async_sessionmaker[AsyncSession], seeded: dict[str, demo.SeededTenant]
) -> None:
    scope = TenantScope(seeded["northwind"].tenant_id)
    async with scoped_transaction(sessions, scope) as session:
        rows = (
            await session.execute(
                scoped(select(ShipmentReference.kind, ShipmentReference.value), ShipmentReference, scope)
            )
        ).all()
        carriers = set(
            (await session.execute(scoped(select(Shipment.carrier_code), Shipment, scope))).scalars()
        )
        locodes = set(
            (await session.execute(scoped(select(Milestone.location_locode), Milestone, scope))).scalars()
        )
    containers = [value for kind, value in rows if kind == ReferenceKind.CONTAINER]
    assert len(containers) == 130
    assert all(int(c[10]) == demo.iso6346_check_digit(c[:10]) for c in containers)
    air_waybills = [value for kind, value in rows if kind == ReferenceKind.AIR_WAYBILL]
    assert len(air_waybills) == 46
    assert all(int(a[4:11]) % 7 == int(a[11]) for a in air_waybills)
    assert carriers <= {"MAEU", "MSCU", "CMDU", "HLCU", "ONEY", "EGLV", "COSU", "ZIMU"} | set(
        demo.AWB_PREFIXES
    ) | set(demo.ROAD_CARRIERS)
    assert locodes <= set(demo.PLACES)


def test_check_digits_match_published_examples() -> None:
    assert demo.container_number("CSQU", 305438) == "CSQU3054383"
    assert demo.air_waybill("020", 1234567) == "020-12345675"
    assert demo.s10_tracking_number("RB", 12345678, "GB") == "RB123456785GB"
    assert demo.ups_tracking_number("999AA1", "01", 2345678) == "1Z999AA10123456784"


# -- credentials and banner ---------------------------------------------------------------------------


async def test_the_partner_secret_is_kept_once_in_a_private_file(
    tmp_path: Path, session: AsyncSession, seeded: dict[str, demo.SeededTenant]
) -> None:
    stored = demo.remember_credentials(tmp_path, list(seeded.values()))
    path = tmp_path / "demo-credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == stored
    assert {slug: entry["client_id"] for slug, entry in stored.items()} == {
        slug: t.client_id for slug, t in seeded.items()
    }
    checked = await authenticate_client(
        session,
        stored["northwind"]["client_id"],
        stored["northwind"]["client_secret"],
        now=dt.datetime.now(dt.UTC),
    )
    client = checked.client
    assert client is not None
    assert sorted(client.scopes) == ["exceptions:read", "ingest", "shipments:read"]

    # a later run knows no secrets (they are never stored in the database); the file still has them
    reused = [
        demo.SeededTenant(t.slug, t.name, t.tenant_id, False, t.staff, t.shippers, t.client_id)
        for t in seeded.values()
    ]
    assert demo.remember_credentials(tmp_path, reused) == stored
    assert json.loads(path.read_text()) == stored


def test_the_banner_says_where_to_go_and_how_to_log_in() -> None:
    tenant = demo.SeededTenant(
        slug="northwind",
        name="Northwind Forwarding",
        tenant_id=uuid.UUID(int=1),
        created=False,
        staff=[("ops@northwind.example", "operations")],
        shippers=[("logistics@acme.example", "Acme Electronics")],
        client_id="mp_abc",
    )
    known = {"northwind": {"client_id": "mp_abc", "client_secret": "s3cret"}}
    text = demo.banner(
        [tenant], known, base_url="http://127.0.0.1:8000", feed_interval_seconds=2.0, workers="in-process"
    )
    assert text.splitlines() == [
        "",
        "Milepost demo",
        "",
        "  API (GraphQL)  http://127.0.0.1:8000/graphql",
        "  Portal         http://127.0.0.1:8000/portal/",
        "  Health         http://127.0.0.1:8000/healthz",
        "",
        "  Every demo user's password: milepost-demo",
        "",
        "  Tenant northwind (Northwind Forwarding), reused",
        "    staff    ops@northwind.example              operations",
        "    shipper  logistics@acme.example             Acme Electronics",
        "    partner API client (scopes: shipments:read exceptions:read ingest)",
        "      client_id      mp_abc",
        "      client_secret  s3cret",
        "",
        "  Simulated carrier feed every 2 s; workers: in-process",
        "  Press Ctrl-C to stop.",
    ]
    unknown = demo.banner([tenant], {}, base_url="http://h:1", feed_interval_seconds=0.5, workers="x")
    assert (
        "      client_secret  (shown only when it was created; demo-credentials.json does not have it:"
        in (unknown.splitlines())
    )


# -- feed ---------------------------------------------------------------------------------------------

CUTOFF = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def hours(value: float, base: dt.datetime = CUTOFF) -> dt.datetime:
    return base + dt.timedelta(hours=value)


async def feed_shipment(
    session: AsyncSession,
    *,
    planned: Sequence[tuple[str, float]],
    reports: Sequence[tuple[str, str, float]],
    base: dt.datetime = CUTOFF,
) -> tuple[TenantScope, uuid.UUID]:
    """A tenant of its own with one road shipment: milestones planned at hours from ``base``, and reports
    (classifier, milestone, hours from ``base``) already recorded."""
    tenant = await make_tenant(session)
    account = await make_account(session, tenant)
    scope = TenantScope(tenant.id)
    shipment = await create_shipment(
        session,
        scope,
        ShipmentDraft(
            account_id=account.id,
            mode="road",
            carrier_code="ODFL",
            milestones=[
                PlannedMilestone(code=code, planned_at=hours(at, base), location_locode="USCHI")
                for code, at in planned
            ],
        ),
    )
    for classifier, code, at in reports:
        report = NewEvent(
            source="test", classifier=classifier, milestone_code=code, occurred_at=hours(at, base)
        )
        await record_event(session, scope, shipment.id, report)
    return scope, shipment.id


async def feed_state(
    sessions: async_sessionmaker[AsyncSession], scope: TenantScope, shipment_id: uuid.UUID
) -> tuple[str, list[tuple[str, dt.datetime | None, dt.datetime | None]], list[tuple[str, str, dt.datetime]]]:
    async with scoped_transaction(sessions, scope) as session:
        status = (
            await session.execute(
                scoped(select(Shipment.status), Shipment, scope).where(Shipment.id == shipment_id)
            )
        ).scalar_one()
        milestones = await session.execute(
            scoped(select(Milestone.code, Milestone.estimated_at, Milestone.actual_at), Milestone, scope)
            .where(Milestone.shipment_id == shipment_id)
            .order_by(Milestone.sequence)
        )
        events = await session.execute(
            scoped(
                select(TrackingEvent.classifier, TrackingEvent.milestone_code, TrackingEvent.occurred_at),
                TrackingEvent,
                scope,
            )
            .where(TrackingEvent.shipment_id == shipment_id, TrackingEvent.source == "demo")
            .order_by(TrackingEvent.occurred_at)
        )
        return status, [tuple(row) for row in milestones], [tuple(row) for row in events]  # type: ignore[misc]


ROAD = [(M.BOOKED, -48), (M.PICKED_UP, -1), (M.DEPARTED, 6), (M.DELIVERED, 30)]


async def test_the_feed_reports_the_next_due_milestone_once_per_message(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        # the carrier announced the pickup for 30 minutes before the cutoff and the departure as planned
        scope, shipment_id = await feed_shipment(
            session,
            planned=ROAD,
            reports=[("ACT", M.BOOKED, -48), ("EST", M.PICKED_UP, -0.5), ("EST", M.DEPARTED, 6)],
        )

    assert await demo.advance_shipments(sessions, scope, [shipment_id], cutoff=CUTOFF, run_id="m-1") == 1
    expected = (
        ShipmentStatus.IN_TRANSIT,
        [
            (M.BOOKED, None, hours(-48)),
            (M.PICKED_UP, hours(-0.5), hours(-0.5)),
            (M.DEPARTED, hours(6), None),
            (M.DELIVERED, None, None),
        ],
        [("ACT", M.PICKED_UP, hours(-0.5))],
    )
    assert await feed_state(sessions, scope, shipment_id) == expected
    # the same message again (a redelivery): nothing new
    assert await demo.advance_shipments(sessions, scope, [shipment_id], cutoff=CUTOFF, run_id="m-1") == 0
    # a later message: the departure is not due yet, and its estimate already says so
    assert await demo.advance_shipments(sessions, scope, [shipment_id], cutoff=hours(1), run_id="m-2") == 0
    assert await feed_state(sessions, scope, shipment_id) == expected


async def test_a_late_carrier_announces_its_delay_as_an_estimate(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        # booked ten days late: most of that delay carries into the pickup (0.85 of it, to the minute)
        scope, shipment_id = await feed_shipment(session, planned=ROAD, reports=[("ACT", M.BOOKED, 192)])
    assert await demo.advance_shipments(sessions, scope, [shipment_id], cutoff=CUTOFF, run_id="m-1") == 1
    pickup = hours(-1) + dt.timedelta(hours=240 * 0.85)
    assert await feed_state(sessions, scope, shipment_id) == (
        ShipmentStatus.BOOKED,
        [
            (M.BOOKED, None, hours(192)),
            (M.PICKED_UP, pickup, None),
            (M.DEPARTED, None, None),
            (M.DELIVERED, None, None),
        ],
        [("EST", M.PICKED_UP, pickup)],
    )
    assert await demo.advance_shipments(sessions, scope, [shipment_id], cutoff=CUTOFF, run_id="m-2") == 0


async def test_due_shipments_are_the_ones_whose_next_milestone_is_due(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        tenant = await make_tenant(session)
        account = await make_account(session, tenant)
        scope = TenantScope(tenant.id)
        ids = {}
        for name, planned, reports in [
            ("overdue", [(M.BOOKED, -5), (M.PICKED_UP, -3)], [("ACT", M.BOOKED, -5)]),
            ("just due", [(M.BOOKED, -5), (M.PICKED_UP, -1)], [("ACT", M.BOOKED, -5)]),
            ("not yet", [(M.BOOKED, -5), (M.PICKED_UP, 2)], [("ACT", M.BOOKED, -5)]),
            (
                "delayed",
                [(M.BOOKED, -5), (M.PICKED_UP, -4)],
                [("ACT", M.BOOKED, -5), ("EST", M.PICKED_UP, 3)],
            ),
            (
                "delivered",
                [(M.BOOKED, -5), (M.DELIVERED, -4)],
                [("ACT", M.BOOKED, -5), ("ACT", M.DELIVERED, -4)],
            ),
            ("unreported", [(M.BOOKED, -9), (M.PICKED_UP, 1)], []),
        ]:
            shipment = await create_shipment(
                session,
                scope,
                ShipmentDraft(
                    account_id=account.id,
                    mode="road",
                    milestones=[PlannedMilestone(code=c, planned_at=hours(h)) for c, h in planned],
                ),
            )
            for classifier, code, at in reports:
                await record_event(
                    session,
                    scope,
                    shipment.id,
                    NewEvent(
                        source="test", classifier=classifier, milestone_code=code, occurred_at=hours(at)
                    ),
                )
            ids[shipment.id] = name
        due = await demo.due_shipments(session, scope, CUTOFF, limit=10)
        assert [ids[i] for i in due] == ["unreported", "overdue", "just due"]
        assert [ids[i] for i in await demo.due_shipments(session, scope, CUTOFF, limit=2)] == [
            "unreported",
            "overdue",
        ]


@pytest.fixture
def stub_worker(settings: Settings, database: Database) -> Iterator[StubBroker]:
    broker = current_broker()
    assert isinstance(broker, StubBroker)
    configure_workers(settings, database.app_url)
    worker = start_in_process_worker(broker, threads=2)
    try:
        yield broker
    finally:
        worker.stop()
        broker.flush_all()


async def test_the_actor_advances_the_feed_and_a_redelivered_message_adds_nothing(
    sessions: async_sessionmaker[AsyncSession], stub_worker: StubBroker
) -> None:
    # the actor's cutoff is the message's enqueue time, so this timeline is planned around the real clock;
    # the carrier's estimates pin the pickup (the simulation would otherwise draw its time) and the departure
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    async with sessions() as session, session.begin():
        scope, shipment_id = await feed_shipment(
            session,
            planned=[(M.BOOKED, -48), (M.PICKED_UP, -1), (M.DEPARTED, 6)],
            reports=[("ACT", M.BOOKED, -48), ("EST", M.PICKED_UP, -0.5), ("EST", M.DEPARTED, 7)],
            base=now,
        )

    message = advance_feed.send(str(scope.tenant_id), [str(shipment_id)])
    await join_demo_queue(stub_worker)
    expected = (
        ShipmentStatus.IN_TRANSIT,
        [
            (M.BOOKED, None, hours(-48, now)),
            (M.PICKED_UP, hours(-0.5, now), hours(-0.5, now)),
            (M.DEPARTED, hours(7, now), None),
        ],
        [("ACT", M.PICKED_UP, hours(-0.5, now))],
    )
    assert await feed_state(sessions, scope, shipment_id) == expected

    stub_worker.enqueue(message)  # the very same message, as a broker redelivers it
    await join_demo_queue(stub_worker)
    assert await feed_state(sessions, scope, shipment_id) == expected
    async with scoped_transaction(sessions, scope) as session:
        count = await session.execute(
            scoped(select(func.count()), TrackingEvent, scope).select_from(TrackingEvent)
        )
        assert count.scalar_one() == 4  # the booking, two estimates and the feed's one pickup


async def join_demo_queue(broker: StubBroker) -> None:
    await asyncio.to_thread(broker.join, "demo", timeout=20_000, fail_fast=True)


async def test_a_feed_tick_enqueues_the_due_shipments_of_each_tenant(
    sessions: async_sessionmaker[AsyncSession], seeded: dict[str, demo.SeededTenant]
) -> None:
    broker = current_broker()
    assert isinstance(broker, StubBroker)
    tenant_ids = await demo.demo_tenant_ids(sessions)
    assert tenant_ids == [seeded["northwind"].tenant_id, seeded["harbor-3pl"].tenant_id]
    try:
        assert await demo.feed_tick(sessions, tenant_ids, now=NOW) == 2
        messages = [Message.decode(data) for data in list(broker.queues["demo"].queue)]
    finally:
        broker.flush("demo")
    assert [(m.actor_name, m.args[0], len(m.args[1])) for m in messages] == [
        ("demo.advance_feed", str(tenant_ids[0]), 3),
        ("demo.advance_feed", str(tenant_ids[1]), 3),
    ]


# -- `milepost demo` ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_demo_until(
    data_dir: Path, log_path: Path, *, ready: Callable[[str], bool], timeout: float = 120
) -> tuple[int, str, str]:
    """Start `milepost demo` on its own embedded database, wait until ``ready(log)``, stop it with SIGINT."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "APP_DATABASE_URL", "BROKER_URL")}
    env |= {"MILEPOST_DATA_DIR": str(data_dir), "MILEPOST_DEMO_FEED_INTERVAL_SECONDS": "0.5"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "milepost.cli", "demo", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # so a hung run can be cleaned up with everything it started
        )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None and not ready(log_path.read_text()):
                time.sleep(0.3)
            assert ready(log_path.read_text()), log_path.read_text()
            # the feed and the "listening" line may come before uvicorn has bound its socket
            assert _healthz(port, deadline=time.monotonic() + 30) == 200, log_path.read_text()
        finally:
            process.send_signal(signal.SIGINT)
            try:
                stdout, _ = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                raise
    return process.returncode, stdout.decode(), f"http://127.0.0.1:{port}"


def _healthz(port: int, deadline: float) -> int | None:
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code
        except httpx.TransportError:
            time.sleep(0.2)
    return None


def _feed_reported(log: str) -> bool:
    return any(
        line.startswith("{") and json.loads(line).get("event") == "demo feed advanced"
        for line in log.splitlines()
    )


@pytest.mark.slow
def test_milepost_demo_seeds_once_feeds_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    code, stdout, base_url = _run_demo_until(data_dir, tmp_path / "first.log", ready=_feed_reported)
    assert code == 0, (tmp_path / "first.log").read_text()
    assert f"  API (GraphQL)  {base_url}/graphql" in stdout
    assert "  Tenant northwind (Northwind Forwarding)" in stdout
    assert "    staff    ops@northwind.example              operations" in stdout
    credentials = json.loads((data_dir / "demo-credentials.json").read_text())
    assert stat.S_IMODE((data_dir / "demo-credentials.json").stat().st_mode) == 0o600
    secret = credentials["harbor-3pl"]["client_secret"]
    assert f"      client_secret  {secret}" in stdout
    assert not _postmaster_running(data_dir / "postgres")

    code, stdout, _ = _run_demo_until(data_dir, tmp_path / "second.log", ready=lambda log: "listening" in log)
    assert code == 0, (tmp_path / "second.log").read_text()
    assert "  Tenant northwind (Northwind Forwarding), reused" in stdout
    assert f"      client_secret  {secret}" in stdout  # from the file: the database only has its hash
    assert json.loads((data_dir / "demo-credentials.json").read_text()) == credentials
    assert "Traceback" not in (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()


def _postmaster_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().splitlines()[0]), 0)
    except ProcessLookupError:
        return False
    return True
