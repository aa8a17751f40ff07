"""Capture throughput: events end-to-end through ``milepost serve`` against the database's own limit.

One run, on its own database:

1. seed 2 tenants (an account and a partner client with the ``ingest`` scope each) and their shipments, each
   with a booking reference and a 4-milestone plan, with set-based SQL as the application role;
2. *database limit*: the exact rows the application would store, inserted with batched
   ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`` into ``tracking_event`` as the application role
   (same batches, same concurrency), then the same batches again (all conflicts); then the tables are
   emptied again;
3. *end-to-end*: ``milepost serve`` in a subprocess; every message is posted to ``POST /ingest/events``
   (stored raw → parsed → deduplicated → matched → timelines rebuilt → outbox rows), a few requests in
   flight; the database is checked against what was sent;
4. *replay*: the same messages again under new Idempotency-Keys — every event a duplicate.

It prints the rates, their ratios and per-message latencies. It asserts no time (``make bench`` is not a
test), but it does fail loudly when the stored data is not what was sent.

Environment: ``BENCH_DATABASE_URL`` (an owner/superuser URL; default: an embedded PostgreSQL in a temporary
folder), ``BENCH_EVENTS`` (1,000,000), ``BENCH_SHIPMENTS`` (100,000), ``BENCH_MESSAGE_EVENTS`` (10,000),
``BENCH_CONCURRENCY`` (3 requests / connections in flight), ``BENCH_ORDER`` (``time``: a live feed, each
message touches as many shipments as it has events; ``shipment``: a backfill, each shipment's events
together), ``BENCH_PYSPY`` (a file: record the server with py-spy during the first ingest; needs ``py-spy``
on PATH or in ``BENCH_PYSPY_BIN``), ``BENCH_KEEP_DATABASE`` (keep ``milepost_bench`` afterwards).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis

from bench import data
from bench.harness import (
    PostgresServer,
    Tenant,
    code_version,
    create_database,
    database_cpu_seconds,
    database_server,
    drop_database,
    in_tenant,
    owner_maintenance,
    say,
    seed,
    server_errors,
    start_pyspy,
    start_server,
    stop_pyspy,
    stop_server,
    tokens_for,
    tree_cpu_seconds,
)
from milepost.database import libpq_url

DATABASE = "milepost_bench"
MAX_BODY_BYTES = 64 * 1024 * 1024
# production runs detection in `milepost worker` processes fed by a broker: the server only enqueues
# (a database of its own, emptied afterwards; the tests use 0)
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
RETRIES = 3


@dataclass(frozen=True)
class Config:
    events: int
    shipments: int
    message_events: int
    concurrency: int
    order: str
    database_url: str | None
    pyspy: Path | None
    keep_database: bool
    broker_url: str | None  # None: the workers run in the server process (the embedded default)

    @classmethod
    def from_env(cls) -> Config:
        def number(name: str, default: int) -> int:
            value = int(os.environ.get(name, default))
            if value < 1:
                raise SystemExit(f"{name} must be at least 1")
            return value

        message_events = number("BENCH_MESSAGE_EVENTS", 10_000)
        if message_events > 10_000:
            raise SystemExit("BENCH_MESSAGE_EVENTS: a message holds at most 10,000 events")
        pyspy = os.environ.get("BENCH_PYSPY")
        return cls(
            events=number("BENCH_EVENTS", 1_000_000),
            shipments=number("BENCH_SHIPMENTS", 100_000),
            message_events=message_events,
            concurrency=number("BENCH_CONCURRENCY", 3),
            order=os.environ.get("BENCH_ORDER", "time"),
            database_url=os.environ.get("BENCH_DATABASE_URL") or None,
            pyspy=Path(pyspy).resolve() if pyspy else None,
            keep_database=bool(os.environ.get("BENCH_KEEP_DATABASE")),
            broker_url=_broker_url(os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER_URL)),
        )


def _broker_url(value: str) -> str | None:
    """The broker the server enqueues detection to; ``in-process`` (or an unreachable default Redis): none."""
    if value == "in-process":
        return None
    if value == DEFAULT_BROKER_URL and not _redis_answers(value):
        say(f"no Redis at {value}: the workers run in the server process (BENCH_BROKER_URL=in-process)")
        return None
    return value


def _redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError:
        return False
    return True


def flush_broker(url: str) -> None:
    """Empty the broker's queues: nothing consumes what the run enqueued."""
    if url.startswith(("redis://", "rediss://")):
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()


@dataclass
class Phase:
    """One pass over all messages: wall time, per-message latencies and the summed outcome counts."""

    name: str
    rows: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds used during the phase, per process

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    def cpu_per_row(self, *names: str) -> float | None:
        """Microseconds of CPU per row used by these processes together; ``None`` when one was not read."""
        if not self.rows or any(name not in self.cpu for name in names):
            return None
        return sum(self.cpu[name] for name in names) / self.rows * 1e6

    def latency(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000

    def line(self) -> str:
        text = f"{self.name:<34} {self.rows:>10,} rows in {self.seconds:8.1f} s = {self.rate:>9,.0f} /s"
        if self.latencies:
            text += f"   per message p50 {self.latency(0.5):,.0f} ms, p99 {self.latency(0.99):,.0f} ms"
        if self.cpu and self.rows:
            used = ", ".join(f"{name} {seconds / self.rows * 1e6:,.0f}" for name, seconds in self.cpu.items())
            text += f"\n  {'':<34} CPU per row (µs): {used}"
        return text


@dataclass(frozen=True)
class CpuMeter:
    """CPU seconds of the processes a phase runs on, from ``/proc`` (Linux): the database (the embedded
    server's postmaster and its backends; not read for a server of BENCH_DATABASE_URL), ``milepost serve``
    and its threads, and this process (the database-limit client)."""

    pgdata: Path | None
    server_pid: int | None = None

    def read(self) -> dict[str, float]:
        readings: dict[str, float | None] = {
            "client": time.process_time(),
            "database": database_cpu_seconds(self.pgdata),
        }
        if self.server_pid is not None:
            readings["server"] = tree_cpu_seconds(self.server_pid)
        return {name: value for name, value in readings.items() if value is not None}

    def measure(self, work: Coroutine[Any, Any, Phase]) -> Phase:
        """Run ``work`` (a phase) and record what it cost each process."""
        before = self.read()
        phase = asyncio.run(work)
        after = self.read()
        names = ("database", "client") if self.server_pid is None else ("server", "database")
        phase.cpu = {name: after[name] - before[name] for name in names if name in before and name in after}
        return phase


# --- the database's limit -----------------------------------------------------------------------------

_LIMIT_MESSAGE = """
INSERT INTO ingest_message (tenant_id, id, format, size_bytes, sha256, body, received_at, status, errors)
VALUES ($1, $2, 'events', 0, '', ''::bytea, $3, 'accepted', '[]'::jsonb)
"""
_LIMIT_INSERT = """
INSERT INTO tracking_event (
    tenant_id, id, created_at, shipment_id, ingest_message_id, source, source_event_id, dedup_key, classifier,
    milestone_code, raw_code, code_system, location_locode, occurred_at, utc_offset_minutes, received_at,
    "references", reference_values, carrier_code, place, payload, is_retracted)
SELECT $1, r.id, $2, r.shipment_id, $3, 'events', r.source_event_id, r.dedup_key, r.classifier, r.code,
    r.code, 'canonical', r.locode, r.occurred_at, r.utc_offset_minutes, $2, r.refs::jsonb,
    ARRAY[r.reference_value], 'MAEU', r.place::jsonb, r.payload::jsonb, false
FROM unnest($4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
            $11::timestamptz[], $12::int[], $13::text[], $14::text[], $15::text[], $16::text[])
    AS r(id, shipment_id, source_event_id, dedup_key, classifier, code, locode, occurred_at,
         utc_offset_minutes, refs, reference_value, place, payload)
ON CONFLICT (tenant_id, dedup_key) DO NOTHING
"""


async def run_pool(concurrency: int, count: int, work: Callable[[int, int], Awaitable[bool]]) -> None:
    """``work(worker, item)`` for items 0..count-1, ``concurrency`` at a time, in order of taking; once a
    ``work`` returns ``False`` no further item is started (a broken server fails the run in seconds)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for item in range(count):
        queue.put_nowait(item)
    failed = False

    async def worker(number: int) -> None:
        nonlocal failed
        while not failed:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if not await work(number, item):
                failed = True

    await asyncio.gather(*(worker(n) for n in range(concurrency)))


async def database_limit(
    name: str,
    app: str,
    tenants: Sequence[Tenant],
    batches: Sequence[tuple[int, dict[str, list[Any]]]],
    concurrency: int,
) -> Phase:
    connections = [await asyncpg.connect(app) for _ in range(concurrency)]
    inserted = 0
    latencies: list[float] = []

    async def insert(worker: int, item: int) -> bool:
        nonlocal inserted
        tenant_index, columns = batches[item]
        conn = connections[worker]
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        message_id = uuid.uuid4()
        async with conn.transaction():
            await in_tenant(conn, tenants[tenant_index].id)
            await conn.execute(_LIMIT_MESSAGE, tenants[tenant_index].id, message_id, now)
            status = await conn.execute(
                _LIMIT_INSERT,
                tenants[tenant_index].id,
                now,
                message_id,
                *(columns[c] for c in data.ROW_COLUMNS),
            )
        inserted += int(status.split()[-1])
        latencies.append(time.perf_counter() - started)
        return True

    try:
        started = time.perf_counter()
        await run_pool(concurrency, len(batches), insert)
        seconds = time.perf_counter() - started
    finally:
        for conn in connections:
            await conn.close()
    rows = sum(len(columns["id"]) for _, columns in batches)
    return Phase(name, rows, seconds, latencies, {"inserted": inserted})


# --- the server ---------------------------------------------------------------------------------------


async def post_all(
    name: str,
    plan: data.Plan,
    base: str,
    tenants: Sequence[Tenant],
    messages: Sequence[data.Message],
    bodies: Sequence[bytes],
    concurrency: int,
    key_prefix: str,
) -> Phase:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=900, limits=limits) as http:
        tokens = await tokens_for(http, tenants)
        counts = {"events": 0, "accepted": 0, "parked": 0, "duplicate": 0, "rejected": 0}
        latencies: list[float] = []
        failures: list[str] = []
        retried: list[str] = []

        async def post(_worker: int, item: int) -> bool:
            message = messages[item]
            started = time.perf_counter()
            for attempt in range(RETRIES + 1):
                # a partner re-sends a message the server failed to process, under a new key: the failed
                # one is kept (and its key answers with the failure)
                key = f"{key_prefix}-{item}" + (f"-retry{attempt}" if attempt else "")
                response = await http.post(
                    "/ingest/events",
                    content=bodies[item],
                    headers={
                        "authorization": f"Bearer {tokens[message.tenant]}",
                        "content-type": "application/json",
                        "idempotency-key": key,
                    },
                )
                if response.status_code != 500 or attempt == RETRIES:
                    break
                retried.append(f"message {item}: {response.text[:200]}")
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                failures.append(f"message {item}: {response.status_code} {response.text[:300]}")
                return False
            for name, value in response.json()["counts"].items():
                counts[name] += value
            return True

        started = time.perf_counter()
        await run_pool(concurrency, len(messages), post)
        seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{name}: {len(failures)} message(s) failed, first: {failures[0]}")
    counts["retried"] = len(retried)
    return Phase(name, sum(m.size(plan) for m in messages), seconds, latencies, counts)


# --- checks -------------------------------------------------------------------------------------------


async def stored(app: str, tenants: Sequence[Tenant]) -> dict[str, int]:
    """What the database holds, summed over the tenants (each read inside its own tenant scope)."""
    totals: dict[str, int] = {}
    conn = await asyncpg.connect(app)
    try:
        for tenant in tenants:
            async with conn.transaction():
                await in_tenant(conn, tenant.id)
                row = await conn.fetchrow(
                    """
                    SELECT
                      (SELECT count(*) FROM tracking_event) AS events,
                      (SELECT count(*) FROM tracking_event WHERE shipment_id IS NULL) AS parked,
                      (SELECT count(*) FROM milestone WHERE actual_at IS NOT NULL) AS actuals,
                      (SELECT count(*) FROM milestone WHERE estimated_at IS NOT NULL) AS estimates,
                      (SELECT count(*) FROM milestone WHERE sequence >= 100) AS unplanned,
                      (SELECT count(*) FROM shipment WHERE status = 'delivered') AS delivered,
                      (SELECT count(*) FROM outbox WHERE topic = 'shipment.timeline_changed') AS outbox,
                      (SELECT count(*) FROM ingest_message) AS messages,
                      (SELECT coalesce(sum(accepted_count), 0) FROM ingest_message) AS accepted,
                      (SELECT coalesce(sum(duplicate_count), 0) FROM ingest_message) AS duplicate
                    """
                )
                for key, value in dict(row).items():
                    totals[key] = totals.get(key, 0) + int(value)
    finally:
        await conn.close()
    return totals


def warn_retries(phase: Phase, log_path: Path) -> None:
    if phase.counts["retried"]:
        say(f"  WARNING: {phase.counts['retried']} message(s) answered 500 and were re-sent under a new key")
        say(server_errors(log_path))


def check(label: str, got: int, expected: int, problems: list[str]) -> None:
    mark = "ok" if got == expected else "MISMATCH"
    say(f"  {label:<46} {got:>10,}  (expected {expected:,})  {mark}")
    if got != expected:
        problems.append(f"{label}: {got} != {expected}")


# --- the run ------------------------------------------------------------------------------------------


def main() -> None:
    config = Config.from_env()
    with database_server(config.database_url) as server:
        run(config, server)


def run(config: Config, server: PostgresServer) -> None:
    began = time.perf_counter()
    plan = data.make_plan(
        events=config.events,
        shipments=config.shipments,
        tenants=2,
        message_events=config.message_events,
        order=config.order,
        now=dt.datetime.now(dt.UTC),
    )
    database = create_database(server, DATABASE)
    owner, version = database.owner, database.version
    app = libpq_url(database.app)
    say(f"code under test: {code_version()}")
    say(
        f"PostgreSQL {version}; {os.cpu_count()} cores; "
        f"{plan.events:,} events over {plan.shipments:,} shipments "
        f"in {plan.tenants} tenants ({plan.events_per_shipment} per shipment, order={plan.order}); "
        f"messages of {plan.message_events:,} events, {config.concurrency} in flight"
    )

    started = time.perf_counter()
    tenants = asyncio.run(seed(plan, database.app))
    asyncio.run(owner_maintenance(libpq_url(owner), "VACUUM ANALYZE"))
    say(
        f"seeded {plan.shipments:,} shipments with {len(data.STEPS)} planned milestones "
        f"in {time.perf_counter() - started:.1f} s"
    )

    started = time.perf_counter()
    messages = data.messages(plan)
    bodies = [data.body(plan, m) for m in messages]
    batches = [(m.tenant, data.rows(plan, m)) for m in messages]
    megabytes = sum(len(b) for b in bodies) / 1e6
    say(
        f"generated {len(messages)} messages ({megabytes:,.0f} MB of JSON) "
        f"in {time.perf_counter() - started:.1f} s"
    )

    problems: list[str] = []
    say("\ndatabase limit (batched INSERT … SELECT FROM unnest … ON CONFLICT DO NOTHING, application role):")
    asyncio.run(owner_maintenance(libpq_url(owner), "CHECKPOINT"))
    meter = CpuMeter(server.pgdata)
    limit = meter.measure(
        database_limit("database limit, first insert", app, tenants, batches, config.concurrency)
    )
    say("  " + limit.line())
    check("rows inserted", limit.counts["inserted"], plan.events, problems)
    limit_replay = meter.measure(
        database_limit("database limit, all duplicates", app, tenants, batches, config.concurrency)
    )
    say("  " + limit_replay.line())
    check("rows inserted by the duplicate pass", limit_replay.counts["inserted"], 0, problems)
    del batches
    asyncio.run(
        owner_maintenance(
            libpq_url(owner), "TRUNCATE tracking_event, ingest_message", "VACUUM ANALYZE", "CHECKPOINT"
        )
    )

    say("\nend to end (milepost serve, POST /ingest/events):")
    overrides = {"MILEPOST_MAX_BODY_BYTES": str(MAX_BODY_BYTES)}
    if config.broker_url is not None:
        overrides["BROKER_URL"] = config.broker_url
        flush_broker(config.broker_url)
    say(
        f"  detection enqueued to {config.broker_url} (no worker consumes it)"
        if config.broker_url
        else "  detection runs in the server process (in-process workers)"
    )
    process, base, log_path = start_server(owner, server.folder, overrides)
    profiler = None
    try:
        if config.pyspy is not None:
            profiler = start_pyspy(process.pid, config.pyspy)
        meter = CpuMeter(server.pgdata, process.pid)
        first = meter.measure(
            post_all("first ingest", plan, base, tenants, messages, bodies, config.concurrency, "bench-first")
        )
        if profiler is not None and config.pyspy is not None:
            stop_pyspy(profiler, config.pyspy)
            profiler = None
        say("  " + first.line())
        warn_retries(first, log_path)
        check("events accepted (responses)", first.counts["accepted"], plan.events, problems)
        after_first = asyncio.run(stored(app, tenants))
        check("tracking_event rows", after_first["events"], plan.events, problems)
        check("parked events", after_first["parked"], 0, problems)
        actuals = min(plan.events_per_shipment, len(data.STEPS))
        estimated = min(plan.events_per_shipment - actuals, len(data.STEPS))
        check("milestones with an actual", after_first["actuals"], plan.shipments * actuals, problems)
        check("milestones with an estimate", after_first["estimates"], plan.shipments * estimated, problems)
        check("unplanned milestones", after_first["unplanned"], 0, problems)
        delivered = plan.shipments if actuals == len(data.STEPS) else 0
        check("shipments delivered", after_first["delivered"], delivered, problems)
        say(f"  outbox rows (shipment.timeline_changed, detection enqueued) {after_first['outbox']:>10,}")

        replay = meter.measure(
            post_all(
                "replay (all duplicates)",
                plan,
                base,
                tenants,
                messages,
                bodies,
                config.concurrency,
                "bench-replay",
            )
        )
        say("  " + replay.line())
        warn_retries(replay, log_path)
        check("events reported duplicate (responses)", replay.counts["duplicate"], plan.events, problems)
        after_replay = asyncio.run(stored(app, tenants))
        check("tracking_event rows after the replay", after_replay["events"], plan.events, problems)
        check("outbox rows added by the replay", after_replay["outbox"] - after_first["outbox"], 0, problems)
    except BaseException:
        stop_server(process)
        say(server_errors(log_path))
        raise
    finally:
        if profiler is not None:
            profiler.kill()
        stop_server(process)
        if config.broker_url is not None:
            flush_broker(config.broker_url)
    if not config.keep_database:
        asyncio.run(drop_database(libpq_url(server.admin), DATABASE))

    ratio = first.rate / limit.rate
    say("\n=== capture throughput ===")
    say(
        f"events {plan.events:,}   shipments {plan.shipments:,}   tenants {plan.tenants}   order {plan.order}"
    )
    say(f"end-to-end first ingest     {first.rate:>10,.0f} events/s")
    say(f"database limit              {limit.rate:>10,.0f} rows/s")
    say(f"ratio end-to-end / limit    {ratio:>10.2f}   (target >= 0.5)")
    say(f"replay (all duplicates)     {replay.rate:>10,.0f} events/s")
    say(f"replay / first ingest       {replay.rate / first.rate:>10.2f}   (a replay should cost less: > 1)")
    say(f"database limit, duplicates  {limit_replay.rate:>10,.0f} rows/s")
    e2e_cpu, limit_cpu = first.cpu_per_row("server", "database"), limit.cpu_per_row("database", "client")
    if e2e_cpu is not None and limit_cpu is not None:
        # less sensitive than the rates to what else the machine runs: the ratio an idle machine would show
        # if both runs were bound by CPU alone
        say(
            f"CPU per event (µs)          end to end {e2e_cpu:,.0f} "
            f"(server {first.cpu_per_row('server'):,.0f}, database {first.cpu_per_row('database'):,.0f}); "
            f"limit {limit_cpu:,.0f}; "
            f"ratio {limit_cpu / e2e_cpu:.2f}"
        )
    say(
        f"per message (ms)            first p50 {first.latency(0.5):,.0f} p99 {first.latency(0.99):,.0f}; "
        f"replay p50 {replay.latency(0.5):,.0f} p99 {replay.latency(0.99):,.0f}; "
        f"limit p50 {limit.latency(0.5):,.0f} p99 {limit.latency(0.99):,.0f}"
    )
    retried = first.counts["retried"] + replay.counts["retried"]
    if retried:
        say(f"WARNING: {retried} message(s) failed with 500 and were re-sent (see the server errors above)")
    say(f"total bench time {time.perf_counter() - began:,.0f} s")
    if problems:
        say(f"server log: {log_path}")
        raise SystemExit("stored data differs from what was sent:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
