"""`milepost rules list|backtest` and `milepost notice create` against the test database."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db import TenantScope, scoped, scoped_transaction
from domain.exceptions.models import DisruptionNotice, Rule
from domain.outbox.models import OutboxMessage
from domain.shipments.models import Shipment
from domain.shipments.service import PlannedMilestone, ShipmentDraft, create_shipment
from domain.tracking.service import NewEvent, record_events
from tests.cli_support import milepost, printed
from tests.shipment_factories import T0, TenantWorld, committed_tenant

H = dt.timedelta(hours=1)


async def count(sessions: async_sessionmaker[AsyncSession], scope: TenantScope, model: object) -> int:
    async with scoped_transaction(sessions, scope) as session:
        return int((await session.execute(scoped(select(func.count()), model, scope))).scalar_one())


async def test_rules_list_prints_the_rules_in_force(
    cli_env: dict[str, str | None], sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    listed = printed(await milepost(cli_env, "rules", "list", "--tenant", world.slug))
    assert listed["tenant"] == world.slug
    assert len(listed["rules"]) == 16
    late = next(r for r in listed["rules"] if r["exception_type"] == "MILESTONE_LATE")
    assert {k: late[k] for k in ("name", "version", "mode", "parameters", "scope", "created_by")} == {
        "name": "default",
        "version": 1,
        "mode": "enabled",
        "parameters": {"tolerance_hours": 6.0, "milestones": []},
        "scope": {},
        "created_by": "system",
    }
    unknown = await milepost(cli_env, "rules", "list", "--tenant", "no-such-tenant")
    assert unknown.exit_code == 1
    assert "no tenant with slug 'no-such-tenant'" in unknown.stderr


async def test_rules_backtest_prints_the_report_and_writes_nothing(
    cli_env: dict[str, str | None], sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    late = NewEvent(
        source="carrier",
        classifier="EST",
        milestone_code="DEPARTED",
        occurred_at=T0 + 100 * H,
        location_locode="CNSHA",
    )
    async with scoped_transaction(sessions, world.scope) as session:
        await session.execute(update(Shipment).values(created_at=T0 - 24 * H))
        await record_events(session, world.scope, world.shipments[0].id, [late], now=T0 + 10 * H)
    args = ["rules", "backtest", "--tenant", world.slug, "--type", "MILESTONE_LATE"]
    window = ["--from", "2026-11-01T08:00:00Z", "--to", "2026-11-03T08:00:00+00:00", "--step-hours", "6"]
    report = printed(await milepost(cli_env, *args, "--parameters", '{"tolerance_hours": 1}', *window))
    assert {
        k: report[k] for k in ("checkpoints", "shipments", "raised", "by_severity", "current_raised")
    } == {
        "checkpoints": 9,
        "shipments": 1,
        "raised": {"MILESTONE_LATE": 1},
        "by_severity": {"medium": 1},
        "current_raised": {},
    }
    [example] = report["examples"]
    assert (example["shipment_id"], example["key"], example["first_raised_at"]) == (
        str(world.shipments[0].id),
        "DEPARTED",
        "2026-11-01 20:00:00+00:00",
    )
    assert await count(sessions, world.scope, Rule) == 0

    bad_type = await milepost(cli_env, "rules", "backtest", "--tenant", world.slug, "--type", "LATE", *window)
    assert bad_type.exit_code == 1
    assert "exceptionType: unknown type 'LATE'" in bad_type.stderr
    bad_json = await milepost(cli_env, *args, "--parameters", "{tolerance", *window)
    assert bad_json.exit_code == 2
    assert "not JSON" in bad_json.stderr
    naive = await milepost(cli_env, *args, "--from", "2026-11-01T08:00:00", "--to", "2026-11-02T08:00:00Z")
    assert naive.exit_code == 2
    assert "needs a UTC offset" in naive.stderr
    reversed_window = await milepost(
        cli_env, *args, "--from", "2026-11-03T08:00:00Z", "--to", "2026-11-01T08:00Z"
    )
    assert reversed_window.exit_code == 1
    assert "endsAt: must be after startsAt" in reversed_window.stderr


async def test_a_tenant_notice_is_recorded_and_rechecks_the_shipments_passing(
    cli_env: dict[str, str | None], sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=1)
    args = [
        "notice",
        "create",
        "--cause",
        "strike",
        "--title",
        "Dock strike",
        "--from",
        "2026-11-30T12:00:00Z",
    ]
    created = printed(
        await milepost(
            cli_env, *args, "--tenant", world.slug, "--locode", "NLRTM", "--to", "2026-12-01T12:00:00Z"
        )
    )
    assert {k: v for k, v in created.items() if k != "id"} == {
        "cause": "strike",
        "title": "Dock strike",
        "location_locode": "NLRTM",
        "starts_at": "2026-11-30T12:00:00+00:00",
        "ends_at": "2026-12-01T12:00:00+00:00",
        "global": False,
        "tenant": world.slug,
    }
    async with scoped_transaction(sessions, world.scope) as session:
        stored = (
            await session.execute(scoped(select(DisruptionNotice), DisruptionNotice, world.scope))
        ).scalar_one()
        requested = (
            await session.execute(
                scoped(select(OutboxMessage.payload), OutboxMessage, world.scope).where(
                    OutboxMessage.topic == "shipment.timeline_changed"
                )
            )
        ).scalars()
        assert [p["shipment_id"] for p in requested if p.get("reason") == "re-evaluate"] == [
            str(world.shipments[0].id)
        ]
    assert (str(stored.id), stored.source) == (created["id"], "cli")

    bad_place = await milepost(
        cli_env, *args, "--tenant", world.slug, "--locode", "nlrtm", "--to", "2026-12-01T12:00Z"
    )
    assert bad_place.exit_code == 1
    assert "locationLocode: 'nlrtm' is not a UN/LOCODE" in bad_place.stderr
    both = await milepost(
        cli_env, *args, "--tenant", world.slug, "--global", "--locode", "NLRTM", "--to", "2026-12-01T12:00Z"
    )
    assert both.exit_code == 2
    assert "give either --tenant SLUG or --global" in both.stderr
    assert await count(sessions, world.scope, DisruptionNotice) == 1


async def _passing(sessions: async_sessionmaker[AsyncSession], world: TenantWorld, locode: str) -> Shipment:
    """A shipment arriving at ``locode`` (a place no other test uses: a global notice reaches every tenant)."""
    async with scoped_transaction(sessions, world.scope) as session:
        draft = ShipmentDraft(
            account_id=world.accounts[0].id,
            mode="ocean",
            origin_locode="CNSHA",
            destination_locode=locode,
            milestones=[PlannedMilestone("ARRIVED", T0 + 700 * H, locode)],
        )
        return await create_shipment(session, world.scope, draft)


async def test_a_global_notice_makes_every_tenants_passing_shipments_due(
    cli_env: dict[str, str | None], sessions: async_sessionmaker[AsyncSession]
) -> None:
    locode = "XQCLI"
    worlds = [await committed_tenant(sessions, accounts=1, shipments_per_account=1) for _ in range(2)]
    passing = [await _passing(sessions, world, locode) for world in worlds]
    before = dt.datetime.now(dt.UTC)
    created = printed(
        await milepost(
            cli_env,
            "notice",
            "create",
            "--global",
            "--cause",
            "weather",
            "--title",
            "Typhoon",
            "--locode",
            locode,
            "--from",
            "2026-11-29T00:00:00Z",
            "--to",
            "2026-12-02T00:00:00Z",
        )
    )
    assert created["global"] is True
    assert {w.slug: created["shipments_due"][w.slug] for w in worlds} == {w.slug: 1 for w in worlds}
    for world, shipment in zip(worlds, passing, strict=True):
        async with scoped_transaction(sessions, world.scope) as session:
            due = dict(
                (
                    await session.execute(
                        scoped(select(Shipment.id, Shipment.next_check_at), Shipment, world.scope)
                    )
                ).all()
            )
        assert due[shipment.id] >= before
        unrelated = due[world.shipments[0].id]  # it does not pass there: not made due by the notice
        assert unrelated is None or unrelated < before
