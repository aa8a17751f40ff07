"""The detection sweep: its cost follows the shipments that are due, not all shipments.

For each size N (``BENCH_SWEEP_SIZES``, default ``10000,100000``) one run seeds two tenants of N shipments
each (4 planned milestones, as ``bench_capture`` does). Every shipment of the second tenant is due — they
must not cost the first tenant's sweep anything — and the first tenant's are not, except those we make due:

- *nothing due*: the median time of 50 sweeps that find nothing (one index probe each);
- *500 due* (one sweep batch): seconds per sweep and shipments evaluated per second, median of 5.

It prints both per N and the ratio of the largest N to the smallest: about 1 means the sweep's cost does not
grow with the number of shipments. Environment: ``BENCH_DATABASE_URL`` (an owner URL; default: an embedded
PostgreSQL in a temporary folder), ``BENCH_SWEEP_SIZES``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bench import data
from bench.harness import (
    PostgresServer,
    code_version,
    create_database,
    database_server,
    owner_maintenance,
    say,
    seed,
)
from domain.db import TenantScope, scoped_transaction
from domain.exceptions import service
from milepost.database import libpq_url

DATABASE = "milepost_bench_sweep"
IDLE_SWEEPS = 50
DUE_SWEEPS = 5


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_SWEEP_SIZES", "10000,100000").split(",")]
    with database_server(os.environ.get("BENCH_DATABASE_URL")) as server:
        say(f"code under test: {code_version()}")
        results = {size: asyncio.run(measure(server, size)) for size in sizes}
    smallest, largest = min(sizes), max(sizes)
    for size, (idle, due) in results.items():
        say(
            f"{size:>9,} shipments per tenant: nothing due {idle * 1000:7.2f} ms per sweep; "
            f"500 due {due:6.2f} s per sweep = {500 / due:,.0f} shipments/s"
        )
    if largest != smallest:
        idle_ratio = results[largest][0] / results[smallest][0]
        due_ratio = results[largest][1] / results[smallest][1]
        say(
            f"cost at {largest:,} / cost at {smallest:,} shipments: nothing due x{idle_ratio:.2f}, "
            f"500 due x{due_ratio:.2f} (1.0 = independent of the number of shipments; "
            f"{largest / smallest:.0f}x the shipments)"
        )


async def measure(server: PostgresServer, size: int) -> tuple[float, float]:
    database = await asyncio.to_thread(create_database, server, DATABASE)
    owner, app_url, version = database.owner, database.app, database.version
    plan = data.make_plan(
        events=size * 2,
        shipments=size * 2,
        tenants=2,
        message_events=1000,
        order="time",
        now=dt.datetime.now(dt.UTC),
    )
    started = time.perf_counter()
    tenants = await seed(plan, app_url)
    engine = create_async_engine(app_url, pool_size=2)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    quiet, busy = (TenantScope(t.id) for t in tenants)
    now = dt.datetime.now(dt.UTC)
    async with scoped_transaction(sessions, busy) as session:
        await session.execute(
            text("UPDATE shipment SET next_check_at = :due"), {"due": now - dt.timedelta(hours=1)}
        )
    await owner_maintenance(libpq_url(owner), "VACUUM ANALYZE")
    say(f"PostgreSQL {version}: seeded 2 x {size:,} shipments in {time.perf_counter() - started:.1f} s")
    try:
        async with scoped_transaction(sessions, quiet) as session:
            await service.ensure_default_rules(session, quiet)
        idle = []
        for _ in range(IDLE_SWEEPS):
            began = time.perf_counter()
            async with scoped_transaction(sessions, quiet) as session:
                report = await service.sweep(session, quiet, now=now)
            idle.append(time.perf_counter() - began)
            assert report.evaluated == 0, report
        due = []
        for _ in range(DUE_SWEEPS):
            async with scoped_transaction(sessions, quiet) as session:
                await session.execute(
                    text(
                        "UPDATE shipment SET next_check_at = :due WHERE id IN "
                        "(SELECT id FROM shipment ORDER BY random() LIMIT 500)"
                    ),
                    {"due": now - dt.timedelta(minutes=1)},
                )
            began = time.perf_counter()
            async with scoped_transaction(sessions, quiet) as session:
                report = await service.sweep(session, quiet, now=now)
            due.append(time.perf_counter() - began)
            assert report.evaluated == 500, report
        return statistics.median(idle), statistics.median(due)
    finally:
        await engine.dispose()
