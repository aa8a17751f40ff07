"""GraphQL read speed: Milepost against PostGraphile 4 serving the same tables, over HTTP, in the same run.

One run, on a database of its own (``milepost_bench_graphql``, dropped afterwards):

1. seed 2 tenants, each with an account, a partner client (``shipments:read``, ``exceptions:read``) and
   ``BENCH_GRAPHQL_SHIPMENTS`` shipments with references, a 6-milestone timeline (planned, estimated and
   actual times as far as each shipment has come) and exceptions (a third of the shipments with 1-2 open
   ones; resolved and shadow ones besides, which the queries must leave out), with set-based SQL as the
   application role;
2. start ``milepost serve`` and PostGraphile 4 (``bench/postgraphile``: ``npm ci`` on first use) on the same
   database, both as the application role with the tenant set per request, so row-level security applies;
3. check that both answer the two query shapes with the same data — (a) the newest 50 shipments with
   references, timeline and open exceptions, (b) one shipment by reference — and that it is what the
   database holds;
4. per server and shape: a warm-up, then a closed loop (``BENCH_GRAPHQL_CLIENTS`` clients for
   ``BENCH_GRAPHQL_SECONDS``): requests/s, p50/p99 latency; then an open loop at ``BENCH_GRAPHQL_RATE``
   requests/s on (a): p50/p99 from the scheduled times and the requests that missed their schedule. The load
   generator runs in a process of its own (``bench/graphql_load.py``) and reports its CPU time; the servers'
   and (embedded) database's CPU time per request are read from ``/proc``.

It prints a table with the ratio Milepost/PostGraphile per shape and whether the issue's targets are met
(≥ 0.5x PostGraphile on (a); p99 < 200 ms at 80 requests/s on (a)). Nothing asserts a time; a run fails
when a server's answers differ from the other's or from the database, or when a request fails.

Environment: see bench/README.md (``BENCH_DATABASE_URL``, ``BENCH_GRAPHQL_*``, ``BENCH_KEEP_DATABASE``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy.engine import URL

from api.graphql.relay import from_global_id
from bench import data
from bench.graphql_load import Load, Outcome, Request
from bench.harness import (
    BenchDatabase,
    PostgresServer,
    Tenant,
    code_version,
    create_database,
    create_tenants,
    database_cpu_seconds,
    database_server,
    drop_database,
    free_port,
    in_tenant,
    owner_maintenance,
    postmaster_pid,
    say,
    server_errors,
    start_pyspy,
    start_server,
    stop_pyspy,
    stop_server,
    tokens_for,
    tree_cpu_seconds,
    wait_ready,
)
from domain.exceptions.models import OPEN_STATUSES
from milepost.database import libpq_url

DATABASE = "milepost_bench_graphql"
POSTGRAPHILE = Path(__file__).parent / "postgraphile"
JWT_AUDIENCE = "milepost-bench-postgraphile"  # bench/postgraphile/server.js checks it
REFERENCES = 256  # distinct references that shape (b) cycles through
TARGET_RATIO = 0.5
TARGET_P99_MS = 200.0


@dataclass(frozen=True)
class Config:
    shipments: int  # per tenant
    page: int
    clients: int
    seconds: float
    warmup: float  # seconds
    rate: float
    open_seconds: float
    database_url: str | None
    keep_database: bool
    pyspy: Path | None

    @classmethod
    def from_env(cls) -> Config:
        def number(name: str, default: float) -> float:
            value = float(os.environ.get(name, default))
            if value <= 0:
                raise SystemExit(f"{name} must be positive")
            return value

        return cls(
            shipments=int(number("BENCH_GRAPHQL_SHIPMENTS", 10_000)),
            page=int(number("BENCH_GRAPHQL_PAGE", 50)),
            clients=int(number("BENCH_GRAPHQL_CLIENTS", 8)),
            seconds=number("BENCH_GRAPHQL_SECONDS", 20),
            warmup=number("BENCH_GRAPHQL_WARMUP_SECONDS", 3),
            rate=number("BENCH_GRAPHQL_RATE", 80),
            open_seconds=number("BENCH_GRAPHQL_OPEN_SECONDS", 20),
            database_url=os.environ.get("BENCH_DATABASE_URL") or None,
            keep_database=bool(os.environ.get("BENCH_KEEP_DATABASE")),
            pyspy=Path(pyspy).resolve() if (pyspy := os.environ.get("BENCH_PYSPY")) else None,
        )


# --- data ---------------------------------------------------------------------------------------------

# (origin, destination, their UTC offsets in minutes): shipment s takes lane s % 4
LANES = (
    ("CNSHA", "NLRTM", 480, 60),
    ("CNNGB", "DEHAM", 480, 60),
    ("SGSIN", "USLAX", 480, -420),
    ("KRPUS", "USLGB", 540, -420),
)
CARRIERS = ("MAEU", "MSCU", "CMDU", "HLCU")
# (sequence, code, hours after the planned gate-in, at the origin?)
TIMELINE = (
    (1, "GATE_IN_ORIGIN", 0, True),
    (2, "LOADED", 20, True),
    (3, "DEPARTED", 24, True),
    (4, "ARRIVED", 28 * 24, False),
    (5, "DISCHARGED", 28 * 24 + 12, False),
    (6, "DELIVERED", 30 * 24, False),
)
PROGRESS_HOURS = 40 * 24  # planned gate-ins spread over the last 40 days: booked to delivered

_SHIPMENT_ID = "md5('bench-shipment:' || $2::int || ':' || s)::uuid"  # data.shipment_id(tenant, s)
_SEED_SHIPMENTS = f"""
INSERT INTO shipment (tenant_id, id, account_id, mode, service_level, status, carrier_code, origin_locode,
                      destination_locode, promised_delivery_at, priority, created_at, updated_at)
SELECT $1::uuid, {_SHIPMENT_ID}, $3::uuid, 'ocean', CASE WHEN s % 5 = 0 THEN 'LCL' ELSE 'FCL' END, 'booked',
       ($6::text[])[1 + (s / 4) % 4], ($7::text[])[1 + s % 4], ($8::text[])[1 + s % 4],
       $5::timestamptz - make_interval(hours => (s * 37) % $9::int) + interval '31 days',
       CASE WHEN s % 20 = 0 THEN 'high' ELSE 'normal' END,
       $5::timestamptz - make_interval(mins => s), $5::timestamptz - make_interval(mins => s)
FROM generate_series(0, $4::int - 1) AS s
"""
_SEED_REFERENCES = f"""
INSERT INTO shipment_reference (tenant_id, id, shipment_id, kind, value)
SELECT $1::uuid, gen_random_uuid(), {_SHIPMENT_ID}, r.kind, r.value
FROM generate_series(0, $3::int - 1) AS s
CROSS JOIN LATERAL (VALUES
    ('booking', 'BK' || $2::int || lpad(s::text, 8, '0')),
    ('container', 'MSKU' || $2::int || lpad(s::text, 6, '0')),
    ('customer_reference', CASE WHEN s % 2 = 0 THEN 'PO-' || $2::int || '-' || s END)
) AS r(kind, value)
WHERE r.value IS NOT NULL
"""
# planned from the booking; an actual once the (jittered) time has passed; the carrier's estimate on 3 in 4
_SEED_MILESTONES = f"""
INSERT INTO milestone (tenant_id, id, shipment_id, code, sequence, location_locode, utc_offset_minutes,
                       baseline_planned_at, baseline_source, planned_at, planned_source,
                       estimated_at, estimated_source, actual_at, actual_source)
SELECT $1::uuid, gen_random_uuid(), {_SHIPMENT_ID}, m.code, m.sequence,
       CASE WHEN m.at_origin THEN ($6::text[])[1 + s % 4] ELSE ($7::text[])[1 + s % 4] END,
       CASE WHEN m.at_origin THEN ($8::int[])[1 + s % 4] ELSE ($9::int[])[1 + s % 4] END,
       t.planned, 'booking', t.planned, 'booking',
       CASE WHEN s % 4 <> 3 THEN t.planned + make_interval(hours => (s % 5) * 6) END,
       CASE WHEN s % 4 <> 3 THEN 'carrier:' || ($10::text[])[1 + (s / 4) % 4] END,
       CASE WHEN t.happened <= $4::timestamptz THEN t.happened END,
       CASE WHEN t.happened <= $4::timestamptz THEN 'events' END
FROM generate_series(0, $3::int - 1) AS s
CROSS JOIN unnest($11::int[], $12::text[], $13::int[], $14::bool[]) AS m(sequence, code, hours, at_origin)
CROSS JOIN LATERAL (
    SELECT gate_in + make_interval(hours => m.hours) AS planned,
           gate_in + make_interval(hours => m.hours, mins => (s * 7919 + m.sequence * 104729) % 420 - 60)
               AS happened
    FROM (SELECT $4::timestamptz - make_interval(hours => (s * 37) % $5::int) AS gate_in) AS g
) AS t
"""
_SEED_STATUS = """
UPDATE shipment SET status = CASE WHEN m.delivered THEN 'delivered' WHEN m.moving THEN 'in_transit'
                                  ELSE 'booked' END
FROM (SELECT shipment_id, bool_or(code = 'DELIVERED' AND actual_at IS NOT NULL) AS delivered,
             bool_or(actual_at IS NOT NULL) AS moving
      FROM milestone GROUP BY shipment_id) AS m
WHERE m.shipment_id = shipment.id
"""
# open ones: MILESTONE_LATE on the first pending milestone for 1 in 3 shipments (in every open status), and
# an ETA_SLIPPAGE for 1 in 6; left out by the queries: a resolved DOCUMENTS_MISSING for 1 in 5 and a shadow
# NO_MOVEMENT for 1 in 7
_SEED_EXCEPTIONS = f"""
WITH pending AS (  -- each shipment's first milestone without an actual (none once delivered)
    SELECT DISTINCT ON (shipment_id) shipment_id, code FROM milestone WHERE actual_at IS NULL
    ORDER BY shipment_id, sequence
)
INSERT INTO shipment_exception (tenant_id, id, shipment_id, account_id, exception_type, category,
    milestone_code, shadow, status, severity, priority_score, explanation, evidence, fingerprint, occurrences,
    first_seen_at, last_seen_at, acknowledged_at, snoozed_until, resolved_at, resolution_reason)
SELECT $1::uuid, gen_random_uuid(), {_SHIPMENT_ID}, $3::uuid, k.type, k.category, k.code, k.shadow, k.status,
       (ARRAY['low', 'medium', 'high', 'critical'])[1 + (s * 3 + k.n) % 4], (s * 13 + k.n * 29) % 101,
       format('%s: %s is %s h behind its plan', k.type, coalesce(k.code, 'the shipment'), 1 + s % 48),
       jsonb_build_object('milestone', k.code, 'thresholdHours', 4, 'lateHours', 1 + s % 48),
       md5(s || ':' || k.n), 1 + s % 3,
       $4::timestamptz - make_interval(hours => 1 + s % 72), $4::timestamptz - make_interval(hours => s % 5),
       CASE WHEN k.status IN ('acknowledged', 'in_progress') THEN $4::timestamptz END,
       CASE WHEN k.status = 'snoozed' THEN $4::timestamptz + interval '6 hours' END,
       CASE WHEN k.status = 'resolved' THEN $4::timestamptz END,
       CASE WHEN k.status = 'resolved' THEN 'documents received' END
FROM generate_series(0, $5::int - 1) AS s
LEFT JOIN pending ON pending.shipment_id = {_SHIPMENT_ID}
CROSS JOIN LATERAL (VALUES
    (1, s % 3 = 0, 'MILESTONE_LATE', 'delay', coalesce(pending.code, 'DELIVERED'), false,
     ($6::text[])[1 + (s / 3) % 5]),
    (2, s % 6 = 0, 'ETA_SLIPPAGE', 'delay', 'ARRIVED', false, 'open'),
    (3, s % 5 = 1, 'DOCUMENTS_MISSING', 'documentation', NULL, false, 'resolved'),
    (4, s % 7 = 2, 'NO_MOVEMENT', 'delay', NULL, true, 'open')
) AS k(n, wanted, type, category, code, shadow, status)
WHERE k.wanted
"""


async def seed_timelines(conn: asyncpg.Connection, tenant: Tenant, count: int, now: dt.datetime) -> None:
    """One tenant's shipments, references and timelines, in one transaction as the application role
    (row-level security applies)."""
    index, lanes = tenant.index, list(zip(*LANES, strict=True))
    async with conn.transaction():
        await in_tenant(conn, tenant.id)
        await conn.execute(
            _SEED_SHIPMENTS,
            tenant.id,
            index,
            tenant.account_id,
            count,
            now,
            list(CARRIERS),
            list(lanes[0]),
            list(lanes[1]),
            PROGRESS_HOURS,
        )
        await conn.execute(_SEED_REFERENCES, tenant.id, index, count)
        steps = list(zip(*TIMELINE, strict=True))
        await conn.execute(
            _SEED_MILESTONES,
            tenant.id,
            index,
            count,
            now,
            PROGRESS_HOURS,
            list(lanes[0]),
            list(lanes[1]),
            list(lanes[2]),
            list(lanes[3]),
            list(CARRIERS),
            *(list(column) for column in steps),
        )


async def seed_exceptions(conn: asyncpg.Connection, tenant: Tenant, count: int, now: dt.datetime) -> None:
    """Shipment statuses and exceptions from the timelines, as the application role."""
    async with conn.transaction():
        await in_tenant(conn, tenant.id)
        await conn.execute(_SEED_STATUS)
        open_statuses = [str(s) for s in OPEN_STATUSES]
        await conn.execute(
            _SEED_EXCEPTIONS, tenant.id, tenant.index, tenant.account_id, now, count, open_statuses
        )


async def seed(database: BenchDatabase, count: int) -> list[Tenant]:
    """Tenants and their data; the tables are analysed between the two steps, which join what the first
    wrote (without statistics the planner would loop over it)."""
    tenants = await create_tenants(database.app, 2, ["shipments:read", "exceptions:read"])
    conn = await asyncpg.connect(libpq_url(database.app))
    try:
        now = dt.datetime.now(dt.UTC)
        for tenant in tenants:
            await seed_timelines(conn, tenant, count, now)
        await owner_maintenance(libpq_url(database.owner), "ANALYZE shipment, milestone")
        for tenant in tenants:
            await seed_exceptions(conn, tenant, count, now)
    finally:
        await conn.close()
    return tenants


async def totals(app: URL, tenants: Sequence[Tenant]) -> dict[str, int]:
    """What was seeded, over both tenants (each read in its own scope)."""
    found: dict[str, int] = {}
    conn = await asyncpg.connect(libpq_url(app))
    try:
        for tenant in tenants:
            async with conn.transaction():
                await in_tenant(conn, tenant.id)
                row = await conn.fetchrow(
                    """
                    SELECT (SELECT count(*) FROM shipment) AS shipments,
                           (SELECT count(*) FROM shipment_reference) AS "references",
                           (SELECT count(*) FROM milestone) AS milestones,
                           (SELECT count(*) FROM milestone WHERE actual_at IS NOT NULL) AS actuals,
                           (SELECT count(*) FROM shipment_exception) AS exceptions,
                           (SELECT count(*) FROM shipment_exception
                            WHERE NOT shadow AND status = ANY($1::text[])) AS open_exceptions
                    """,
                    [str(s) for s in OPEN_STATUSES],
                )
                for key, value in dict(row).items():
                    found[key] = found.get(key, 0) + int(value)
    finally:
        await conn.close()
    return found


# --- the two servers' queries -------------------------------------------------------------------------

# about 24 leaf fields per shipment: what a partner polling its shipments reads
MILEPOST_SHIPMENT = """
fragment ShipmentView on Shipment {
  id mode status priority createdAt
  origin { locode }
  destination { locode }
  references { kind value }
  timeline { id code sequence locationLocode plannedAt estimatedAt actualAt actualSource }
  exceptions { id type severity status priorityScore explanation firstSeenAt }
}
"""
MILEPOST_PAGE = (
    "query Page($first: Int!) { shipments(first: $first) { "
    "pageInfo { hasNextPage endCursor } edges { node { ...ShipmentView } } } }" + MILEPOST_SHIPMENT
)
MILEPOST_BY_REFERENCE = (
    "query ByReference($reference: String!) { shipmentByReference(reference: $reference) "
    "{ ...ShipmentView } }" + MILEPOST_SHIPMENT
)

# the same data in PostGraphile's naming: relations through the (tenant_id, shipment_id) foreign keys, open
# exceptions by the connection-filter plugin, Milepost's orders spelled out
_OPEN = ", ".join(json.dumps(str(s)) for s in OPEN_STATUSES)
POSTGRAPHILE_SHIPMENT = f"""
fragment ShipmentView on Shipment {{
  id mode status priority createdAt originLocode destinationLocode
  references: shipmentReferencesByTenantIdAndShipmentId(orderBy: [KIND_ASC, VALUE_ASC]) {{
    nodes {{ kind value }}
  }}
  timeline: milestonesByTenantIdAndShipmentId(orderBy: SEQUENCE_ASC) {{
    nodes {{ id code sequence locationLocode plannedAt estimatedAt actualAt actualSource }}
  }}
  exceptions: shipmentExceptionsByTenantIdAndShipmentId(
    condition: {{ shadow: false }}
    filter: {{ status: {{ in: [{_OPEN}] }} }}
    orderBy: [PRIORITY_SCORE_DESC, CREATED_AT_ASC, ID_ASC]
  ) {{
    nodes {{ id type: exceptionType severity status priorityScore explanation firstSeenAt }}
  }}
}}
"""
POSTGRAPHILE_PAGE = (
    "query Page($first: Int!) { allShipments(first: $first, orderBy: [CREATED_AT_DESC, ID_DESC]) { "
    "pageInfo { hasNextPage endCursor } nodes { ...ShipmentView } } }" + POSTGRAPHILE_SHIPMENT
)
POSTGRAPHILE_BY_REFERENCE = (
    "query ByReference($reference: String!) { allShipments(first: 1, orderBy: [CREATED_AT_DESC, ID_DESC], "
    "filter: { shipmentReferencesByTenantIdAndShipmentId: { some: { value: { equalTo: $reference } } } }) "
    "{ nodes { ...ShipmentView } } }" + POSTGRAPHILE_SHIPMENT
)


@dataclass(frozen=True)
class Shape:
    key: str
    title: str
    milepost: str
    postgraphile: str


PAGE = Shape("a", "(a) page of shipments", MILEPOST_PAGE, POSTGRAPHILE_PAGE)
BY_REFERENCE = Shape("b", "(b) one by reference", MILEPOST_BY_REFERENCE, POSTGRAPHILE_BY_REFERENCE)


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value is not None else None


@dataclass(frozen=True)
class Dialect:
    """How a server's answer spells what both select: where the shipments are, how an id reads, how a list
    field holds its items, where the lane is."""

    shipments: Callable[[dict[str, Any]], list[dict[str, Any]]]
    decode_id: Callable[[str], uuid.UUID]
    items: Callable[[Any], list[dict[str, Any]]]
    lane: Callable[[dict[str, Any]], tuple[str, str]]

    def comparable(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The answer in one form for both servers: ids as uuids, enums upper-case, times parsed."""
        return [
            {
                "id": self.decode_id(n["id"]),
                "head": (
                    n["mode"].upper(),
                    n["status"].upper(),
                    n["priority"].upper(),
                    _time(n["createdAt"]),
                ),
                "lane": self.lane(n),
                "references": [(r["kind"].upper(), r["value"]) for r in self.items(n["references"])],
                "timeline": [self.milestone(m) for m in self.items(n["timeline"])],
                "exceptions": [self.exception(e) for e in self.items(n["exceptions"])],
            }
            for n in self.shipments(body["data"])
        ]

    def milestone(self, m: dict[str, Any]) -> tuple[Any, ...]:
        times = (_time(m["plannedAt"]), _time(m["estimatedAt"]), _time(m["actualAt"]))
        return (
            self.decode_id(m["id"]),
            m["code"],
            m["sequence"],
            m["locationLocode"],
            *times,
            m["actualSource"],
        )

    def exception(self, e: dict[str, Any]) -> tuple[Any, ...]:
        return (
            self.decode_id(e["id"]),
            e["type"],
            e["severity"].upper(),
            e["status"].upper(),
            e["priorityScore"],
            e["explanation"],
            _time(e["firstSeenAt"]),
        )


def _milepost_shipments(found: dict[str, Any]) -> list[dict[str, Any]]:
    if "shipments" in found:
        return [edge["node"] for edge in found["shipments"]["edges"]]
    return [found["shipmentByReference"]] if found["shipmentByReference"] else []


MILEPOST_DIALECT = Dialect(
    shipments=_milepost_shipments,
    decode_id=lambda value: from_global_id(value)[1],
    items=lambda field: list(field),
    lane=lambda n: (n["origin"]["locode"], n["destination"]["locode"]),
)
POSTGRAPHILE_DIALECT = Dialect(  # its enums are the stored lower-case text
    shipments=lambda found: list(found["allShipments"]["nodes"]),
    decode_id=uuid.UUID,
    items=lambda connection: list(connection["nodes"]),
    lane=lambda n: (n["originLocode"], n["destinationLocode"]),
)


# --- PostGraphile -------------------------------------------------------------------------------------


def install_postgraphile() -> None:
    """``npm ci`` in bench/postgraphile when its node_modules are missing or older than the lockfile."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("bench_graphql needs node and npm on PATH (PostGraphile 4 is the peer)")
    installed = POSTGRAPHILE / "node_modules" / ".package-lock.json"
    lock = POSTGRAPHILE / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    say("installing PostGraphile 4 (npm ci in bench/postgraphile) ...")
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=POSTGRAPHILE,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"npm ci failed in {POSTGRAPHILE}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def libpq_environment(url: URL) -> dict[str, str]:
    """``url`` as the PG* variables node-postgres reads (a socket directory may sit in ``?host=``)."""
    env = {"PGUSER": url.username or "", "PGDATABASE": url.database or ""}
    host = url.host or url.query.get("host")
    port = url.port or url.query.get("port")
    if host:
        env["PGHOST"] = str(host)
    if port:
        env["PGPORT"] = str(port)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return env


def start_postgraphile(app: URL, folder: Path, secret: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(libpq_environment(app), BENCH_JWT_SECRET=secret, BENCH_PORT=str(port), NODE_ENV="production")
    log_path = folder / "postgraphile.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["node", str(POSTGRAPHILE / "server.js")], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    wait_ready(process, "postgraphile", log_path, f"{base}/readyz")
    return process, base, log_path


def postgraphile_token(secret: str, tenant: Tenant) -> str:
    claims = {"tenant_id": str(tenant.id), "aud": JWT_AUDIENCE, "exp": int(time.time()) + 7200}
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret))


# --- the servers side by side -------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str  # the GraphQL endpoint
    pid: int
    tokens: dict[int, str]  # tenant index → bearer token
    queries: Callable[[Shape], str]
    dialect: Dialect

    def request(self, shape: Shape, tenant: int, variables: dict[str, Any]) -> Request:
        body = json.dumps({"query": self.queries(shape), "variables": variables})
        return Request(f"Bearer {self.tokens[tenant]}", body)


async def answer(http: httpx.AsyncClient, server: Server, request: Request) -> dict[str, Any]:
    response = await http.post(
        server.url,
        content=request.body,
        headers={"authorization": request.authorization, "content-type": "application/json"},
    )
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise SystemExit(f"{server.name}: {response.status_code} {response.text[:1000]}")
    return body


async def stored_counts(app: URL, tenant: Tenant, ids: Sequence[uuid.UUID]) -> tuple[int, int]:
    """The milestones and open (non-shadow) exceptions the database holds for these shipments."""
    conn = await asyncpg.connect(libpq_url(app))
    try:
        async with conn.transaction():
            await in_tenant(conn, tenant.id)
            row = await conn.fetchrow(
                """
                SELECT (SELECT count(*) FROM milestone WHERE shipment_id = ANY($1::uuid[])) AS milestones,
                       (SELECT count(*) FROM shipment_exception WHERE shipment_id = ANY($1::uuid[])
                        AND NOT shadow AND status = ANY($2::text[])) AS open_exceptions
                """,
                list(ids),
                [str(s) for s in OPEN_STATUSES],
            )
            return int(row["milestones"]), int(row["open_exceptions"])
    finally:
        await conn.close()


def describe(shipments: Sequence[dict[str, Any]]) -> tuple[int, int, int]:
    return (
        len(shipments),
        sum(len(s["timeline"]) for s in shipments),
        sum(len(s["exceptions"]) for s in shipments),
    )


async def verify(
    servers: Sequence[Server],
    app: URL,
    tenants: Sequence[Tenant],
    cases: Sequence[tuple[Shape, int, dict[str, Any]]],
    expected_shipments: Callable[[Shape], int],
) -> None:
    """Every case answered alike by both servers, with what the database holds; fails loudly otherwise."""
    problems: list[str] = []
    sizes: dict[str, list[int]] = {}
    async with httpx.AsyncClient(timeout=60) as http:
        for shape, tenant, variables in cases:
            answers = [
                s.dialect.comparable(await answer(http, s, s.request(shape, tenant, variables)))
                for s in servers
            ]
            label = f"{shape.title}, tenant {tenant}, {variables}"
            first = answers[0]
            for server, other in zip(servers[1:], answers[1:], strict=True):
                if other != first:
                    problems.append(f"{label}: {servers[0].name} and {server.name} differ")
            shipments, milestones, exceptions = describe(first)
            if shipments != expected_shipments(shape):
                problems.append(f"{label}: {shipments} shipments, expected {expected_shipments(shape)}")
            held = await stored_counts(app, tenants[tenant], [s["id"] for s in first])
            if (milestones, exceptions) != held:
                problems.append(f"{label}: answered {(milestones, exceptions)}, the database holds {held}")
            totals_ = sizes.setdefault(shape.title, [0, 0, 0, 0])
            for position, value in enumerate((1, shipments, milestones, exceptions)):
                totals_[position] += value
    for title, (queries, shipments, milestones, exceptions) in sizes.items():
        say(
            f"  {title}: {queries} queries answered alike by both servers and matching the database: "
            f"{shipments} shipments, {milestones} milestones, {exceptions} open exceptions"
        )
    if problems:
        raise SystemExit("the servers' answers differ:\n  " + "\n  ".join(problems[:20]))


# --- load ---------------------------------------------------------------------------------------------


@dataclass
class Measured:
    server: str
    shape: Shape
    outcome: Outcome
    server_cpu: float | None  # seconds during the window
    database_cpu: float | None
    connections: float | None  # database sessions opened during the window

    @property
    def rate(self) -> float:
        return self.outcome.completed / self.outcome.seconds

    def latency(self, quantile: float) -> float:
        """Milliseconds; a missed request (open loop) counts as slower than every answered one."""
        ordered = sorted(self.outcome.latencies_ms) + [float("inf")] * self.outcome.missed
        if not ordered:
            return float("inf")
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    def per_request(self, seconds: float | None) -> str:
        if seconds is None or not self.outcome.completed:
            return "n/a"
        return f"{seconds / self.outcome.completed * 1000:.2f}"


def generate(load: Load) -> Outcome:
    """Run the load generator in a process of its own and read its outcome."""
    payload = json.dumps(asdict(load))
    done = subprocess.run(
        [sys.executable, "-m", "bench.graphql_load"],
        input=payload,
        capture_output=True,
        text=True,
        timeout=load.seconds + 300,
        cwd=Path(__file__).parent.parent,
    )
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    outcome = Outcome(**json.loads(done.stdout))
    if outcome.failed:
        raise SystemExit(f"{outcome.failed} request(s) failed; first: {outcome.first_failure}")
    return outcome


async def sessions_opened(owner: URL) -> float | None:
    """Sessions the database has seen so far (PostgreSQL 14 and later; the statistics may lag by a
    second)."""
    conn = await asyncpg.connect(libpq_url(owner))
    try:
        found = await conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        return float(found)
    except asyncpg.UndefinedColumnError:
        return None
    finally:
        await conn.close()


@dataclass(frozen=True)
class Meters:
    """What is read before and after a window: the server's and the (embedded) database's CPU seconds and
    the database's sessions."""

    owner: URL
    pgdata: Path | None

    def read(self, server: Server) -> tuple[float | None, float | None, float | None]:
        return (
            tree_cpu_seconds(server.pid),
            database_cpu_seconds(self.pgdata),
            asyncio.run(sessions_opened(self.owner)),
        )


def measure(server: Server, shape: Shape, load: Load, meters: Meters) -> Measured:
    before = meters.read(server)
    outcome = generate(load)
    after = meters.read(server)
    server_cpu, database_cpu, sessions = (
        b - a if a is not None and b is not None else None for a, b in zip(before, after, strict=True)
    )
    # less the meter's own session, the one that read ``before``
    return Measured(server.name, shape, outcome, server_cpu, database_cpu, sessions and sessions - 1)


def combine(parts: Sequence[Measured]) -> Measured:
    """One measurement out of several of the same server and shape (the halves of an A-B-B-A sequence)."""
    merged: dict[str, Any] = {}
    for column in fields(Outcome):
        values = [getattr(p.outcome, column.name) for p in parts]
        if isinstance(values[0], str):
            merged[column.name] = next((v for v in values if v), "")
        elif isinstance(values[0], list):
            merged[column.name] = [x for v in values for x in v]
        else:
            merged[column.name] = sum(values)

    def total(values: Sequence[float | None]) -> float | None:
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)

    first = parts[0]
    return Measured(
        first.server,
        first.shape,
        Outcome(**merged),
        total([p.server_cpu for p in parts]),
        total([p.database_cpu for p in parts]),
        total([p.connections for p in parts]),
    )


def idle_use(servers: Sequence[Server], pgdata: Path | None, seconds: float = 3.0) -> str:
    """What the servers and the database use with nothing asked of them (background tasks), to read the
    CPU columns by."""
    pids = {s.name: s.pid for s in servers}
    if pgdata is not None and (postmaster := postmaster_pid(pgdata)) is not None:
        pids["database"] = postmaster
    before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    after = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    used = [
        f"{name} {(after[name] or 0.0) - (before[name] or 0.0):.2f} s"
        for name in pids
        if before[name] is not None and after[name] is not None
    ]
    return f"idle for {seconds:g} s, CPU used: " + (", ".join(used) or "n/a (no /proc)")


@contextmanager
def recording(pid: int, output: Path | None) -> Iterator[None]:
    """A py-spy profile of ``pid`` while the block runs, when ``output`` is given."""
    if output is None:
        yield
        return
    profiler = start_pyspy(pid, output)
    try:
        yield
    finally:
        stop_pyspy(profiler, output)


def _ms(value: float) -> str:
    return "missed" if value == float("inf") else f"{value:,.1f}"


def report_line(m: Measured) -> str:
    o = m.outcome
    cells = [
        f"{m.server:<13} {m.shape.title:<22} {m.rate:>8,.1f}",
        f"{_ms(m.latency(0.5)):>9} {_ms(m.latency(0.99)):>9}",
        f"{m.per_request(m.server_cpu):>10} {m.per_request(m.database_cpu):>10}",
        f"{m.per_request(o.cpu_seconds):>10} {o.cpu_seconds / o.seconds * 100:>6.0f}%",
        f"{o.response_bytes / max(1, o.completed) / 1000:>7.1f}",
        f"{'n/a' if m.connections is None else f'{m.connections:.0f}':>6}",
    ]
    return " ".join(cells)


HEADER = (
    f"{'server':<13} {'shape':<22} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9} "
    f"{'server':>10} {'database':>10} {'client':>10} {'client':>7} {'answer':>7} {'db':>6}\n"
    f"{'':<13} {'':<22} {'':>8} {'':>9} {'':>9} {'CPU ms/req':>10} {'CPU ms/req':>10} {'CPU ms/req':>10} "
    f"{'CPU':>7} {'kB':>7} {'conns':>6}"
)


# --- the run ------------------------------------------------------------------------------------------


def main() -> None:
    config = Config.from_env()
    # a termination (not only Ctrl-C) unwinds too, so that the servers stop and the database is dropped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    install_postgraphile()
    try:
        with database_server(config.database_url) as server:
            run(config, server)
    except KeyboardInterrupt:
        raise SystemExit(
            "bench_graphql: interrupted; the servers are stopped and the database dropped"
        ) from None


@contextmanager
def servers_running(
    database: BenchDatabase, folder: Path, tenants: Sequence[Tenant]
) -> Iterator[tuple[Server, Server]]:
    """Milepost and PostGraphile on the same database; both stopped however the block ends."""
    with ExitStack() as stack:
        process, base, log_path = start_server(
            database.owner, folder, {"MILEPOST_GRAPHQL_RATE_LIMIT_PER_MINUTE": "0"}
        )
        stack.callback(stop_server, process)

        async def milepost_tokens() -> dict[int, str]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                return await tokens_for(http, tenants)

        milepost = Server(
            "milepost",
            f"{base}/graphql",
            process.pid,
            asyncio.run(milepost_tokens()),
            lambda shape: shape.milepost,
            MILEPOST_DIALECT,
        )
        secret = secrets.token_hex(32)
        node, node_base, node_log = start_postgraphile(database.app, folder, secret)
        stack.callback(stop_server, node)
        postgraphile = Server(
            "postgraphile",
            f"{node_base}/graphql",
            node.pid,
            {t.index: postgraphile_token(secret, t) for t in tenants},
            lambda shape: shape.postgraphile,
            POSTGRAPHILE_DIALECT,
        )
        try:
            yield milepost, postgraphile
        except KeyboardInterrupt:
            raise
        except BaseException:
            say(server_errors(log_path))
            say("postgraphile log (last lines):\n" + node_log.read_text(errors="replace")[-2000:])
            raise


def run(config: Config, server: PostgresServer) -> None:
    began = time.perf_counter()
    database = create_database(server, DATABASE)
    try:
        measure_all(config, server, database, began)
    finally:
        if not config.keep_database:
            try:
                asyncio.run(drop_database(libpq_url(server.admin), DATABASE))
            except (OSError, asyncpg.PostgresError) as error:
                say(f"(could not drop {DATABASE}: {error})")


def measure_all(config: Config, server: PostgresServer, database: BenchDatabase, began: float) -> None:
    say(f"code under test: {code_version()}")
    say(
        f"PostgreSQL {database.version}; {os.cpu_count()} cores; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    started = time.perf_counter()
    tenants = asyncio.run(seed(database, config.shipments))
    asyncio.run(owner_maintenance(libpq_url(database.owner), "VACUUM ANALYZE"))
    seeded = asyncio.run(totals(database.app, tenants))
    say(
        f"seeded 2 tenants in {time.perf_counter() - started:.1f} s: {seeded['shipments']:,} shipments, "
        f"{seeded['references']:,} references, {seeded['milestones']:,} milestones "
        f"({seeded['actuals']:,} with an actual), {seeded['exceptions']:,} exceptions "
        f"({seeded['open_exceptions']:,} open and not shadow)"
    )
    if seeded["shipments"] != 2 * config.shipments:
        raise SystemExit(f"seeded {seeded['shipments']} shipments, expected {2 * config.shipments}")

    picker = random.Random(6)
    references = [
        (tenant, data.booking(tenant, s) if n % 2 == 0 else f"MSKU{tenant}{s:06d}")
        for n in range(REFERENCES)
        for tenant, s in [(n % 2, picker.randrange(config.shipments))]
    ]
    page = {"first": config.page}

    with servers_running(database, server.folder, tenants) as pair:
        say("\nthe same answers from both servers:")
        cases = [(PAGE, t.index, page) for t in tenants] + [
            (BY_REFERENCE, tenant, {"reference": value}) for tenant, value in references[:32]
        ]
        asyncio.run(
            verify(
                pair,
                database.app,
                tenants,
                cases,
                lambda shape: min(config.page, config.shipments) if shape is PAGE else 1,
            )
        )

        def requests(target: Server, shape: Shape) -> list[Request]:
            if shape is PAGE:
                return [target.request(PAGE, t.index, page) for t in tenants]
            return [target.request(BY_REFERENCE, t, {"reference": v}) for t, v in references]

        say(idle_use(pair, server.pgdata))
        meters = Meters(database.owner, server.pgdata)
        results: list[Measured] = []
        say(
            f"\nclosed loop: {config.clients} clients for {config.seconds:g} s per server and shape "
            f"(after {config.warmup:g} s of warm-up)"
        )
        say(HEADER)
        for shape in (PAGE, BY_REFERENCE):
            for target in pair:
                generate(Load(target.url, requests(target, shape), "closed", config.warmup, config.clients))
            # A-B-B-A halves, so that a load the machine carries besides weighs on both servers alike
            halves: dict[str, list[Measured]] = {target.name: [] for target in pair}
            for target in (*pair, *reversed(pair)):
                load = Load(target.url, requests(target, shape), "closed", config.seconds / 2, config.clients)
                profile = (
                    config.pyspy if (target, shape) == (pair[0], PAGE) and not halves[target.name] else None
                )
                with recording(target.pid, profile):
                    halves[target.name].append(measure(target, shape, load, meters))
            for target in pair:
                results.append(combine(halves[target.name]))
                say(report_line(results[-1]))

        say(f"\nopen loop: {config.rate:g} requests/s for {config.open_seconds:g} s, {PAGE.title}")
        say(HEADER)
        opened: list[Measured] = []
        for target in pair:
            load = Load(
                url=target.url,
                requests=requests(target, PAGE),
                mode="open",
                seconds=config.open_seconds,
                rate=config.rate,
            )
            opened.append(measure(target, PAGE, load, meters))
            say(report_line(opened[-1]))
            o = opened[-1].outcome
            say(
                f"{'':<13} scheduled {o.scheduled:,}, answered {o.completed:,}, "
                f"late (> {load.late_ms:g} ms after schedule) {o.late:,}, missed {o.missed:,}"
            )
    summarise(config, results, opened, began)


def summarise(config: Config, results: Sequence[Measured], opened: Sequence[Measured], began: float) -> None:
    def rate(server: str, shape: Shape) -> float:
        return next(m.rate for m in results if m.server == server and m.shape is shape)

    say("\n=== GraphQL read speed: Milepost / PostGraphile 4 ===")
    ratios = {}
    for shape in (PAGE, BY_REFERENCE):
        ratios[shape.key] = rate("milepost", shape) / rate("postgraphile", shape)
        say(
            f"{shape.title:<24} milepost {rate('milepost', shape):>8,.1f} req/s   "
            f"postgraphile {rate('postgraphile', shape):>8,.1f} req/s   ratio {ratios[shape.key]:.2f}"
        )
    milepost_open = next(m for m in opened if m.server == "milepost")
    p99 = milepost_open.latency(0.99)
    met_ratio = ratios["a"] >= TARGET_RATIO
    met_p99 = p99 < TARGET_P99_MS and milepost_open.outcome.missed == 0
    say(
        f"target (a) >= {TARGET_RATIO}x PostGraphile: {ratios['a']:.2f} -> "
        f"{'met' if met_ratio else 'NOT met'}"
    )
    say(
        f"target (a) p99 < {TARGET_P99_MS:.0f} ms at {config.rate:g} req/s: {_ms(p99)} ms "
        f"({milepost_open.outcome.missed} missed) -> {'met' if met_p99 else 'NOT met'}"
    )
    say(
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total bench time "
        f"{time.perf_counter() - began:,.0f} s"
    )


if __name__ == "__main__":
    main()
