"""Detection against PostgreSQL: exceptions opened, updated, auto-resolved and reopened from real timelines;
the sweep; groups and snoozes; rules as versioned tenant data; notices; backtests; a second tenant."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, apply_scope, scoped
from domain.exceptions import service
from domain.exceptions.models import (
    ExceptionActivity,
    ExceptionGroup,
    Rule,
    ShipmentException,
)
from domain.exceptions.service import DetectionError, NoticeDraft, RuleDraft
from domain.outbox.models import OutboxMessage
from domain.shipments.models import Shipment
from domain.shipments.service import PlannedLeg, PlannedMilestone, ShipmentDraft, create_shipment
from domain.tenancy.models import Account
from domain.tracking.service import NewEvent, record_events
from tests.factories import make_account, make_tenant

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


async def world(
    session: AsyncSession, *, tier: str = "standard", voyage: str = "245W"
) -> tuple[TenantScope, Shipment]:
    tenant = await make_tenant(session)
    account = await make_account(session, tenant, sla_tier=tier)
    scope = TenantScope(tenant.id)
    return scope, await ocean_shipment(session, scope, account.id, voyage=voyage)


async def ocean_shipment(
    session: AsyncSession,
    scope: TenantScope,
    account_id: uuid.UUID,
    *,
    voyage: str = "245W",
    **changes: object,
) -> Shipment:
    await apply_scope(session, scope)
    draft = ShipmentDraft(
        account_id=account_id,
        mode="ocean",
        references=[("booking", f"BK{uuid.uuid4().hex[:10]}")],
        carrier_code="MAEU",
        origin_locode="CNSHA",
        destination_locode="NLRTM",
        promised_delivery_at=T0 + 840 * H,
        legs=[PlannedLeg(1, "ocean", "CNSHA", "NLRTM", "MAEU", "MAERSK KOLKATA", voyage)],
        milestones=[
            PlannedMilestone("DEPARTED", T0 + 96 * H, "CNSHA"),
            PlannedMilestone("ARRIVED", T0 + 720 * H, "NLRTM"),
            PlannedMilestone("DELIVERED", T0 + 816 * H, "NLRTM"),
        ],
        **changes,  # type: ignore[arg-type]
    )
    return await create_shipment(session, scope, draft)


async def report(
    session: AsyncSession, scope: TenantScope, shipment: Shipment, *events: NewEvent, now: dt.datetime
) -> None:
    await record_events(session, scope, shipment.id, list(events), now=now)


def est(code: str, at: dt.datetime, *, place: str = "CNSHA", version: dt.datetime | None = None) -> NewEvent:
    return NewEvent(
        source="carrier",
        classifier="EST",
        milestone_code=code,
        occurred_at=at,
        location_locode=place,
        version_at=version,
    )


def act(code: str, at: dt.datetime, *, place: str = "CNSHA") -> NewEvent:
    return NewEvent(
        source="carrier", classifier="ACT", milestone_code=code, occurred_at=at, location_locode=place
    )


async def exceptions(session: AsyncSession, scope: TenantScope, **where: object) -> list[ShipmentException]:
    statement = scoped(select(ShipmentException), ShipmentException, scope).order_by(
        ShipmentException.created_at
    )
    for name, value in where.items():
        statement = statement.where(getattr(ShipmentException, name) == value)
    rows = list((await session.execute(statement.execution_options(populate_existing=True))).scalars())
    return rows


async def evaluate(
    session: AsyncSession, scope: TenantScope, shipment: Shipment, now: dt.datetime
) -> service.EvaluationReport:
    return await service.evaluate_shipments(session, scope, [shipment.id], now=now)


async def test_a_late_estimate_opens_one_exception_that_follows_the_facts_and_clears(
    session: AsyncSession,
) -> None:
    scope, shipment = await world(session)
    await report(session, scope, shipment, est("DEPARTED", T0 + 120 * H), now=T0)
    first = await evaluate(session, scope, shipment, T0 + H)
    assert first.changes == {"open": 1}
    [late] = await exceptions(session, scope, exception_type="MILESTONE_LATE")
    rule = (
        await session.execute(scoped(select(Rule), Rule, scope).where(Rule.id == late.rule_id))
    ).scalar_one()
    assert (rule.exception_type, rule.name, late.rule_version) == ("MILESTONE_LATE", "default", 1)
    assert (late.milestone_code, late.status, late.occurrences, late.category) == (
        "DEPARTED",
        "open",
        1,
        "delay",
    )
    assert late.evidence["estimated_at"] == (T0 + 120 * H).isoformat()
    assert late.evidence["rule"]["version"] == 1
    assert late.explanation.startswith(
        "DEPARTED is now expected at 2026-11-06 08:00 UTC (carrier), 24.0 h after"
    )

    again = await evaluate(session, scope, shipment, T0 + 2 * H)  # nothing new: no new occurrence
    assert again.changes == {"update": 1}
    await report(session, scope, shipment, est("DEPARTED", T0 + 130 * H, version=T0 + 3 * H), now=T0 + 3 * H)
    await evaluate(session, scope, shipment, T0 + 3 * H)
    [late] = await exceptions(session, scope, exception_type="MILESTONE_LATE")
    assert (late.occurrences, late.last_seen_at) == (2, T0 + 3 * H)

    await report(session, scope, shipment, act("DEPARTED", T0 + 128 * H), now=T0 + 128 * H)
    cleared = await evaluate(session, scope, shipment, T0 + 128 * H)
    assert cleared.changes["auto_resolve"] == 1
    [late] = await exceptions(session, scope, exception_type="MILESTONE_LATE")
    assert (late.status, late.resolved_at) == ("auto_resolved", T0 + 128 * H)
    assert late.resolution_reason == "MILESTONE_LATE no longer detected: the condition cleared"
    kinds = (
        await session.execute(
            scoped(select(ExceptionActivity.kind), ExceptionActivity, scope)
            .where(ExceptionActivity.exception_id == late.id)
            .order_by(ExceptionActivity.created_at)
        )
    ).scalars()
    assert list(kinds) == ["opened", "occurred", "auto_resolved"]
    published = (
        await session.execute(
            scoped(select(OutboxMessage.topic, OutboxMessage.payload), OutboxMessage, scope)
            .where(OutboxMessage.topic.like("exception.%"))
            .order_by(OutboxMessage.id)
        )
    ).all()
    topics = [topic for topic, payload in published if payload["exception_id"] == str(late.id)]
    assert topics == ["exception.opened", "exception.updated", "exception.auto_resolved"]


async def test_a_recurrence_within_the_window_reopens_the_same_exception(session: AsyncSession) -> None:
    scope, shipment = await world(session)
    await report(session, scope, shipment, est("ARRIVED", T0 + 760 * H, place="NLRTM", version=T0), now=T0)
    await evaluate(session, scope, shipment, T0)
    await report(
        session, scope, shipment, est("ARRIVED", T0 + 721 * H, place="NLRTM", version=T0 + H), now=T0 + H
    )
    await evaluate(session, scope, shipment, T0 + H)
    await report(
        session,
        scope,
        shipment,
        est("ARRIVED", T0 + 780 * H, place="NLRTM", version=T0 + 2 * H),
        now=T0 + 2 * H,
    )
    await evaluate(session, scope, shipment, T0 + 2 * H)
    [late] = await exceptions(session, scope, exception_type="MILESTONE_LATE")
    assert (late.status, late.reopen_count, late.occurrences) == ("reopened", 1, 2)


async def test_the_sweep_raises_time_driven_exceptions_without_any_new_event(session: AsyncSession) -> None:
    scope, shipment = await world(session)
    await evaluate(session, scope, shipment, T0)
    due = (
        await session.execute(select(Shipment.next_check_at).where(Shipment.id == shipment.id))
    ).scalar_one()
    assert due == T0 + 96 * H - 48 * H  # the first deadline: the commercial invoice, 48 h before departure
    assert (await service.sweep(session, scope, now=due - H)).evaluated == 0
    assert (await service.sweep(session, scope, now=due)).evaluated == 1
    assert [
        e.milestone_code for e in await exceptions(session, scope, exception_type="DOCUMENTS_MISSING")
    ] == [
        "doc:commercial_invoice",
        "doc:packing_list",
    ]
    await service.sweep(session, scope, now=T0 + 103 * H)
    [missed] = await exceptions(session, scope, exception_type="MILESTONE_MISSED")
    assert (missed.milestone_code, missed.first_seen_at) == ("DEPARTED", T0 + 103 * H)


async def test_the_sweep_reads_only_due_shipments_through_its_index(session: AsyncSession) -> None:
    scope, _ = await world(session)
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    engine = session.bind.engine  # type: ignore[union-attr]
    sa_event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        assert (await service.sweep(session, scope, now=T0)).evaluated == 0
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == 1  # nothing due: one index probe, whatever the number of shipments
    await session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = (
        await session.execute(
            text(
                "EXPLAIN SELECT id FROM shipment WHERE tenant_id = :t AND next_check_at <= :now ORDER BY next_check_at LIMIT 500"
            ),
            {"t": scope.tenant_id, "now": T0},
        )
    ).scalars()
    assert "ix_shipment_due" in "\n".join(plan)


async def test_one_cause_groups_shipments_and_a_group_snooze_covers_newcomers(session: AsyncSession) -> None:
    scope, first = await world(session)
    account = (await session.execute(scoped(select(Account.id), Account, scope))).scalar_one()
    second = await ocean_shipment(session, scope, account)
    hold = NewEvent(
        source="carrier",
        classifier="ACT",
        milestone_code="CUSTOMS_HOLD",
        occurred_at=T0 + 730 * H,
        location_locode="NLRTM",
    )
    for shipment in (first, second):
        await report(session, scope, shipment, hold, now=T0 + 730 * H)
    await service.evaluate_shipments(session, scope, [first.id, second.id], now=T0 + 731 * H)
    holds = await exceptions(session, scope, exception_type="CUSTOMS_HOLD")
    assert len(holds) == 2
    assert holds[0].group_id == holds[1].group_id is not None
    group = (await session.execute(scoped(select(ExceptionGroup), ExceptionGroup, scope))).scalars().all()
    assert [(g.cause_kind, g.cause_key) for g in group if g.id == holds[0].group_id] == [("port", "NLRTM")]

    with pytest.raises(DetectionError, match="until: a time needs a UTC offset"):
        await service.snooze_group(session, scope, holds[0].group_id, T0.replace(tzinfo=None), now=T0)
    snoozed = await service.snooze_group(session, scope, holds[0].group_id, T0 + 800 * H, now=T0 + 732 * H)
    assert snoozed == 2
    third = await ocean_shipment(session, scope, account)
    await report(session, scope, third, hold, now=T0 + 733 * H)
    await service.evaluate_shipments(session, scope, [first.id, second.id, third.id], now=T0 + 733 * H)
    holds = await exceptions(session, scope, exception_type="CUSTOMS_HOLD")
    assert [h.status for h in holds] == ["snoozed", "snoozed", "snoozed"]
    await service.evaluate_shipments(session, scope, [first.id], now=T0 + 801 * H)
    [first_hold] = await exceptions(session, scope, exception_type="CUSTOMS_HOLD", shipment_id=first.id)
    assert first_hold.status == "open"  # the snooze expired and customs still holds it


async def test_shadow_rules_record_without_raising_and_rules_are_versioned(session: AsyncSession) -> None:
    scope, shipment = await world(session)
    await report(session, scope, shipment, est("DEPARTED", T0 + 100 * H), now=T0)
    trial = RuleDraft("MILESTONE_LATE", name="strict", mode="shadow", parameters={"tolerance_hours": 1})
    await service.upsert_rule(session, scope, trial, actor="test")
    await evaluate(session, scope, shipment, T0 + H)
    rows = await exceptions(session, scope, exception_type="MILESTONE_LATE")
    assert [(r.shadow, r.status) for r in rows] == [(True, "open")]
    outbox = await session.execute(
        scoped(select(func.count()), OutboxMessage, scope).where(OutboxMessage.topic.like("exception.%"))
    )
    assert outbox.scalar_one() == 0  # shadow findings are never announced

    tighter = RuleDraft("MILESTONE_LATE", parameters={"tolerance_hours": 2})
    rule = await service.upsert_rule(session, scope, tighter, actor="test")
    assert rule.version == 2
    await evaluate(session, scope, shipment, T0 + 2 * H)
    [raised] = await exceptions(session, scope, exception_type="MILESTONE_LATE", shadow=False)
    assert (raised.rule_id, raised.rule_version) == (rule.id, 2)
    versions = (
        await session.execute(
            scoped(select(Rule.version), Rule, scope).where(
                Rule.exception_type == "MILESTONE_LATE", Rule.name == "default"
            )
        )
    ).scalars()
    assert sorted(versions) == [1, 2]


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        (RuleDraft("LATE"), "exceptionType: unknown type 'LATE'"),
        (RuleDraft("NO_MOVEMENT", mode="loud"), "mode: 'loud' is not one of enabled, disabled, shadow"),
        (RuleDraft("NO_MOVEMENT", name=" "), "name: needs 1-100 characters"),
        (
            RuleDraft("NO_MOVEMENT", parameters={"hours": 3}),
            "parameters: NO_MOVEMENT: unknown parameter(s) hours",
        ),
        (RuleDraft("NO_MOVEMENT", scope={"lanes": ["x"]}), "scope: unknown key(s) lanes"),
        (RuleDraft("NO_MOVEMENT", parameters=[1]), "parameters: expected a JSON object"),  # type: ignore[arg-type]
        (RuleDraft("NO_MOVEMENT", scope=["modes"]), "scope: expected a JSON object"),  # type: ignore[arg-type]
        (
            RuleDraft("NO_MOVEMENT", scope={"modes": "ocean"}),
            "scope.modes: expected a list of non-empty strings",
        ),
    ],
)
async def test_a_bad_rule_is_refused_with_the_field_and_nothing_stored(
    session: AsyncSession, draft: RuleDraft, message: str
) -> None:
    tenant = await make_tenant(session)
    scope = TenantScope(tenant.id)
    await apply_scope(session, scope)
    with pytest.raises(DetectionError) as error:
        await service.upsert_rule(session, scope, draft, actor="test")
    assert str(error.value).startswith(message)
    assert (await session.execute(scoped(select(func.count()), Rule, scope))).scalar_one() == 0


async def test_a_tier_change_applies_at_the_next_evaluation(session: AsyncSession) -> None:
    scope, shipment = await world(session)
    await report(session, scope, shipment, est("DEPARTED", T0 + 120 * H), now=T0)
    await evaluate(session, scope, shipment, T0)
    [late] = await exceptions(session, scope, exception_type="MILESTONE_LATE")
    assert (late.severity, late.priority_score) == ("low", 28)  # delay 20 + 24 h late → 8
    await session.execute(
        update(Account).where(Account.id == shipment.account_id).values(sla_tier="platinum")
    )
    await session.execute(
        update(Shipment)
        .where(Shipment.id == shipment.id)
        .values(declared_value=Decimal(60_000), declared_value_currency="EUR")
    )
    await evaluate(session, scope, shipment, T0 + H)
    [late] = await exceptions(session, scope, exception_type="MILESTONE_LATE")
    assert (late.severity, late.priority_score) == ("high", 28 + 25 + 12)  # + platinum + value band


async def test_a_notice_rechecks_the_shipments_passing_there(session: AsyncSession) -> None:
    scope, shipment = await world(session)
    draft = NoticeDraft("strike", "Dock strike Rotterdam", "NLRTM", T0 + 700 * H, T0 + 740 * H)
    notice = await service.create_notice(session, scope, draft)
    requested = (
        await session.execute(
            scoped(select(OutboxMessage.payload), OutboxMessage, scope).where(
                OutboxMessage.topic == "shipment.timeline_changed"
            )
        )
    ).scalars()
    assert {p["shipment_id"] for p in requested if p.get("reason") == "re-evaluate"} == {str(shipment.id)}
    await evaluate(session, scope, shipment, T0)
    [strike] = await exceptions(session, scope, exception_type="EXTERNAL_DISRUPTION")
    assert strike.evidence["notice"]["id"] == str(notice.id)
    assert strike.explanation.startswith("Dock strike Rotterdam: strike at NLRTM from 2026-11-30 12:00 UTC")
    with pytest.raises(DetectionError, match="endsAt: must be after startsAt"):
        await service.create_notice(session, scope, NoticeDraft("strike", "x", "NLRTM", T0, T0))
    with pytest.raises(DetectionError, match="cause: 'flood' is not one of"):
        await service.create_notice(session, scope, NoticeDraft("flood", "x", "NLRTM", T0, T0 + H))


async def test_a_global_notice_applies_to_every_tenant(session: AsyncSession) -> None:
    worlds = [await world(session), await world(session)]
    draft = NoticeDraft("weather", "Typhoon", "NLRTM", T0 + 700 * H, T0 + 740 * H, source="cli")
    await service.create_global_notice(session, draft)
    for scope, _ in worlds:
        await apply_scope(session, scope)
        assert await service.mark_passing_due(session, scope, "NLRTM", T0) == 1
        await service.sweep(session, scope, now=T0)
        [typhoon] = await exceptions(session, scope, exception_type="EXTERNAL_DISRUPTION")
        assert typhoon.evidence["notice"]["global"] is True


async def test_documents_received_clear_the_missing_documents(session: AsyncSession) -> None:
    scope, shipment = await world(session)
    await evaluate(session, scope, shipment, T0 + 50 * H)
    assert len(await exceptions(session, scope, exception_type="DOCUMENTS_MISSING")) == 2
    for kind in ("commercial_invoice", "Packing_List"):
        await service.record_document(session, scope, shipment.id, kind, received_at=T0 + 51 * H)
    await evaluate(session, scope, shipment, T0 + 52 * H)
    assert {e.status for e in await exceptions(session, scope, exception_type="DOCUMENTS_MISSING")} == {
        "auto_resolved"
    }
    with pytest.raises(DetectionError, match="documentType"):
        await service.record_document(session, scope, shipment.id, "bill of lading!", received_at=T0)
    with pytest.raises(DetectionError, match="not found"):
        await service.record_document(session, scope, uuid.uuid4(), "invoice", received_at=T0)


async def test_a_backtest_reports_without_writing(session: AsyncSession) -> None:
    scope, shipment = await world(session)
    await session.execute(update(Shipment).where(Shipment.id == shipment.id).values(created_at=T0 - 24 * H))
    await report(session, scope, shipment, est("DEPARTED", T0 + 100 * H), now=T0 + 10 * H)
    await report(
        session, scope, shipment, est("DEPARTED", T0 + 140 * H, version=T0 + 40 * H), now=T0 + 40 * H
    )
    candidate = RuleDraft("MILESTONE_LATE", parameters={"tolerance_hours": 1})
    result = await service.backtest(session, scope, candidate, starts_at=T0, ends_at=T0 + 48 * H, step=6 * H)
    assert (result.checkpoints, result.shipments) == (9, 1)
    assert result.raised == {"MILESTONE_LATE": 1}
    [example] = result.examples
    assert example.first_raised_at == T0 + 12 * H  # the first checkpoint after the 4 h-late estimate arrived
    assert "4.0 h after its plan" in example.explanation
    assert result.current_raised == {"MILESTONE_LATE": 1}  # default 6 h: raised at T0 + 42 h (44 h late)
    assert await exceptions(session, scope) == []
    # compared against the defaults without storing them: the tenant still has no rule
    assert (await session.execute(scoped(select(func.count()), Rule, scope))).scalar_one() == 0
    with pytest.raises(DetectionError, match="step: 1153 checkpoints"):
        await service.backtest(
            session, scope, candidate, starts_at=T0, ends_at=T0 + 288 * H, step=dt.timedelta(minutes=15)
        )
    # counted before anything is built: a century in quarter hours is refused at once
    with pytest.raises(DetectionError, match="step: 3506401 checkpoints"):
        await service.backtest(
            session, scope, candidate, starts_at=T0, ends_at=T0 + 876_600 * H, step=dt.timedelta(minutes=15)
        )
    with pytest.raises(DetectionError, match="startsAt: a time needs a UTC offset"):
        await service.backtest(session, scope, candidate, starts_at=T0.replace(tzinfo=None), ends_at=T0 + H)


async def test_another_tenants_shipments_are_neither_evaluated_nor_swept(session: AsyncSession) -> None:
    scope, shipment = await world(session)
    other_scope, other = await world(session)
    await apply_scope(session, scope)
    assert (await service.evaluate_shipments(session, scope, [other.id], now=T0 + 200 * H)).evaluated == 0
    await service.evaluate_shipments(session, scope, [shipment.id], now=T0)
    report_ = await service.sweep(session, scope, now=T0 + 200 * H)
    assert report_.evaluated == 1
    await apply_scope(session, other_scope)
    assert await exceptions(session, other_scope) == []
    assert (await session.execute(select(func.count()).select_from(ShipmentException))).scalar_one() == 0
    await apply_scope(session, scope)
    assert len(await exceptions(session, scope)) > 0


event_plan = st.lists(
    st.tuples(st.sampled_from(["est_late", "est_ok", "act", "hold", "release"]), st.integers(0, 3)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=event_plan, order=st.randoms(use_true_random=False))
async def test_any_order_and_repetition_of_events_ends_with_one_open_exception_per_key(
    session: AsyncSession, plan: list[tuple[str, int]], order: object
) -> None:
    async with session.begin_nested() as savepoint:
        scope, shipment = await world(session)
        events = {
            "est_late": est("DEPARTED", T0 + 130 * H, version=T0 + H),
            "est_ok": est("DEPARTED", T0 + 97 * H, version=T0 + 2 * H),
            "act": act("DEPARTED", T0 + 98 * H),
            "hold": NewEvent(
                source="carrier",
                classifier="ACT",
                milestone_code="CUSTOMS_HOLD",
                occurred_at=T0 + 90 * H,
                location_locode="CNSHA",
            ),
            "release": act("CUSTOMS_RELEASED", T0 + 92 * H),
        }
        sequence = [events[name] for name, repeat in plan for _ in range(repeat + 1)]
        order.shuffle(sequence)  # type: ignore[attr-defined]
        now = T0 + 99 * H
        for item in sequence:
            await report(session, scope, shipment, item, now=now)
            await evaluate(session, scope, shipment, now)
        rows = await exceptions(session, scope)
        open_keys = [
            (r.exception_type, r.milestone_code, r.shadow)
            for r in rows
            if r.status not in ("resolved", "auto_resolved", "closed")
        ]
        assert len(open_keys) == len(set(open_keys))
        # the end state is the one a single evaluation of the final facts gives
        fresh_scope, fresh = await world(session)
        for item in {id(e): e for e in sequence}.values():
            await report(session, fresh_scope, fresh, item, now=now)
        await evaluate(session, fresh_scope, fresh, now)
        fresh_open = sorted(
            (r.exception_type, r.milestone_code, r.fingerprint)
            for r in await exceptions(session, fresh_scope)
            if r.status == "open"
        )
        await apply_scope(session, scope)
        live = sorted(
            (r.exception_type, r.milestone_code, r.fingerprint)
            for r in await exceptions(session, scope)
            if r.status in ("open", "reopened")
        )
        assert [(t, k) for t, k, _ in live] == [(t, k) for t, k, _ in fresh_open]
        await savepoint.rollback()


async def test_a_snooze_ends_by_itself_at_the_next_sweep(session: AsyncSession) -> None:
    scope, shipment = await world(session)
    await report(session, scope, shipment, est("DEPARTED", T0 + 120 * H), now=T0)
    await evaluate(session, scope, shipment, T0)
    [late] = await exceptions(session, scope, exception_type="MILESTONE_LATE")
    until = T0 + 5 * H  # before any rule's own deadline (the documents are due at T0 + 48 h)
    await service.snooze_exception(session, scope, late.id, until, now=T0 + H, note="carrier called")
    await evaluate(
        session, scope, shipment, T0 + 2 * H
    )  # still late, still snoozed: the snooze sets the due time
    due = (
        await session.execute(select(Shipment.next_check_at).where(Shipment.id == shipment.id))
    ).scalar_one()
    assert due == until
    assert (await service.sweep(session, scope, now=until - H)).evaluated == 0
    assert (await service.sweep(session, scope, now=until)).evaluated == 1
    [late] = await exceptions(session, scope, exception_type="MILESTONE_LATE")
    assert (late.status, late.snoozed_until) == ("open", None)
    with pytest.raises(DetectionError, match="until: must be in the future"):
        await service.snooze_exception(session, scope, late.id, T0, now=T0 + H)
