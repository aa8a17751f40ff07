"""`milepost rules list|backtest` and `milepost notice create`: detection from the command line, as JSON.

Each runs as the application role (row-level security applies); a refusal of the detection service is one
line on stderr with exit status 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from typing import Any

import click

from milepost.commands.capture import app_sessions, tenant_database


class AwareTime(click.ParamType[dt.datetime]):
    """An ISO 8601 time with a UTC offset (``Z`` or ``+02:00``): a naive time would be ambiguous."""

    name = "ISO-TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time", param, ctx)
        if moment.tzinfo is None:
            self.fail(f"{value!r} needs a UTC offset, e.g. {value}Z", param, ctx)
        return moment


class JsonObject(click.ParamType[Any]):
    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            self.fail(f"not JSON: {error}", param, ctx)


def _run(work: Any) -> None:
    """Run ``work(settings)`` and print its result; a detection refusal becomes a clear CLI error."""
    from domain.exceptions.service import DetectionError
    from milepost.cli import echo_json, load_settings
    from milepost.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        result = asyncio.run(work(settings))
    except DetectionError as error:
        raise click.ClickException(str(error)) from None
    echo_json(result)


@click.group()
def rules() -> None:
    """Inspect and try out detection rules."""


@rules.command("list")
@click.option("--tenant", required=True, help="The tenant's slug.")
def list_rules(tenant: str) -> None:
    """The rules in force (highest version of each type and name; defaults on first use)."""

    async def work(settings: Any) -> dict[str, Any]:
        from domain.db import scoped_transaction
        from domain.exceptions import repository, service

        async with (
            tenant_database(settings, tenant) as (sessions, scope),
            scoped_transaction(sessions, scope) as session,
        ):
            await service.ensure_default_rules(session, scope)
            rows = await repository.current_rules(session, scope)
            return {
                "tenant": tenant,
                "rules": [
                    {
                        "id": str(row.id),
                        "exception_type": row.exception_type,
                        "name": row.name,
                        "version": row.version,
                        "mode": row.mode,
                        "parameters": row.parameters,
                        "scope": row.scope,
                        "description": row.description,
                        "created_by": row.created_by,
                    }
                    for row in rows
                ],
            }

    _run(work)


@rules.command("backtest")
@click.option("--tenant", required=True, help="The tenant's slug.")
@click.option("--type", "exception_type", required=True, help="The exception type, e.g. MILESTONE_LATE.")
@click.option("--name", default="default", show_default=True, help="The rule's name within its type.")
@click.option(
    "--parameters", type=JsonObject(), default="{}", help='Thresholds, e.g. {"tolerance_hours": 2}.'
)
@click.option("--scope", type=JsonObject(), default="{}", help='Shipments covered, e.g. {"modes": ["air"]}.')
@click.option("--from", "starts_at", type=AwareTime(), required=True, help="Start of the window (ISO 8601).")
@click.option("--to", "ends_at", type=AwareTime(), required=True, help="End of the window (ISO 8601).")
@click.option("--step-hours", type=click.FloatRange(0.25, 24 * 366), default=6.0, show_default=True)
def backtest_rule(
    tenant: str,
    exception_type: str,
    name: str,
    parameters: Any,
    scope: Any,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    step_hours: float,
) -> None:
    """What a candidate rule would have raised over a past window, against the version in force. Writes
    nothing."""

    async def work(settings: Any) -> dict[str, Any]:
        from domain.db import scoped_transaction
        from domain.exceptions import service

        draft = service.RuleDraft(exception_type, name, parameters=parameters, scope=scope)
        async with (
            tenant_database(settings, tenant) as (sessions, tenant_scope),
            scoped_transaction(sessions, tenant_scope) as session,
        ):
            report = await service.backtest(
                session,
                tenant_scope,
                draft,
                starts_at=starts_at,
                ends_at=ends_at,
                step=dt.timedelta(hours=step_hours),
            )
        # not asdict() for the whole: it rebuilds each Counter from (key, count) pairs, counting the pairs
        fields = {field.name: getattr(report, field.name) for field in dataclasses.fields(report)}
        return {**fields, "examples": [dataclasses.asdict(example) for example in report.examples]}

    _run(work)


@click.group()
def notice() -> None:
    """Disruption notices: a cause at a place over a time window."""


@notice.command("create")
@click.option("--tenant", help="The tenant's slug (or --global).")
@click.option("--global", "is_global", is_flag=True, help="Platform-wide: applies to every tenant.")
@click.option("--cause", required=True, help="weather, port_congestion, strike, carrier or other.")
@click.option("--title", required=True, help="Short title, used in explanations.")
@click.option("--locode", required=True, help="The place (UN/LOCODE, e.g. NLRTM).")
@click.option("--from", "starts_at", type=AwareTime(), required=True, help="When it starts (ISO 8601).")
@click.option("--to", "ends_at", type=AwareTime(), required=True, help="When it ends (ISO 8601).")
@click.option("--description", default="", help="Details.")
def create_notice(
    tenant: str | None,
    is_global: bool,
    cause: str,
    title: str,
    locode: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    description: str,
) -> None:
    """Record a notice; the shipments passing the place are re-checked (for --global, in every tenant)."""
    from domain.exceptions.service import NoticeDraft

    if is_global == (tenant is not None):
        raise click.UsageError("give either --tenant SLUG or --global")
    draft = NoticeDraft(cause, title, locode, starts_at, ends_at, description=description, source="cli")
    _run(lambda settings: _global_notice(settings, draft) if is_global else _notice(settings, tenant, draft))


def _notice_summary(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "cause": row.cause,
        "title": row.title,
        "location_locode": row.location_locode,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
    }


async def _notice(settings: Any, slug: str | None, draft: Any) -> dict[str, Any]:
    from domain.db import scoped_transaction
    from domain.exceptions import service

    assert slug is not None
    async with tenant_database(settings, slug) as (sessions, scope):
        async with scoped_transaction(sessions, scope) as session:
            row = await service.create_notice(session, scope, draft)
        return {**_notice_summary(row), "global": False, "tenant": slug}


async def _global_notice(settings: Any, draft: Any) -> dict[str, Any]:
    """The notice, then each tenant's passing shipments made due, one transaction per tenant (no transaction
    may touch several tenants); the next sweep of each tenant evaluates them."""
    from sqlalchemy import select

    from domain.db import TenantScope, scoped_transaction, system_transaction
    from domain.exceptions import service
    from domain.tenancy.models import Tenant

    now = dt.datetime.now(dt.UTC)
    async with app_sessions(settings) as sessions:
        async with system_transaction(sessions) as session:
            row = await service.create_global_notice(session, draft)
            tenants = (await session.execute(select(Tenant.id, Tenant.slug).order_by(Tenant.slug))).all()
        due: dict[str, int] = {}
        for tenant_id, slug in tenants:
            scope = TenantScope(tenant_id)
            async with scoped_transaction(sessions, scope) as session:
                due[slug] = await service.mark_passing_due(session, scope, draft.location_locode, now)
        return {**_notice_summary(row), "global": True, "shipments_due": due}


COMMANDS: list[click.Command] = [rules, notice]
