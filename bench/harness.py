"""What the benchmarks share: a PostgreSQL server (embedded or ``BENCH_DATABASE_URL``), a migrated database
of their own, tenants with an account and a partner client, ``milepost serve`` in a subprocess, tokens, and
the CPU time of a process tree."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

import domain.models  # noqa: F401 - every table, so foreign keys resolve
from bench import data
from domain.db import TenantScope, apply_scope
from domain.tenancy.service import create_account, create_api_client, create_tenant
from milepost.database import ROOT, app_url_for, embedded_server, libpq_url, migrate, sqlalchemy_url
from milepost.settings import Settings


def say(text: str) -> None:
    print(text, flush=True)


def code_version() -> str:
    """The commit of the code under test, marked when the tree has uncommitted changes."""
    try:
        described = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return f"{ROOT} (not a git checkout)"
    return f"{ROOT} at {described.stdout.strip()}"


# --- database -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """Where the benchmark's databases live: an admin (owner/superuser) URL, a scratch folder and, for the
    embedded server, its data directory (to find its processes)."""

    admin: URL
    folder: Path
    pgdata: Path | None


@contextmanager
def database_server(database_url: str | None) -> Iterator[PostgresServer]:
    """The server at ``database_url`` (an owner/superuser URL), or an embedded PostgreSQL in a scratch
    folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="milepost-bench-") as tmp:
        folder = Path(tmp)
        if database_url:
            yield PostgresServer(sqlalchemy_url(database_url), folder, None)
            return
        pgdata = folder / "pgdata"
        pgdata.mkdir()
        say("starting an embedded PostgreSQL ...")
        server = embedded_server(pgdata, cleanup_mode="delete")
        try:
            yield PostgresServer(sqlalchemy_url(server.get_uri()), folder, pgdata)
        finally:
            server.cleanup()


@dataclass(frozen=True)
class BenchDatabase:
    owner: URL  # runs migrations and maintenance
    app: URL  # the application role: row-level security applies
    version: str  # the server's


async def recreate_database(admin: str, name: str) -> str:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def drop_database(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def create_database(server: PostgresServer, name: str) -> BenchDatabase:
    """A fresh database ``name`` (dropped first if it exists), migrated; with the application role's URL."""
    version = asyncio.run(recreate_database(libpq_url(server.admin), name))
    owner = server.admin.set(database=name)
    settings = Settings(data_dir=server.folder / "data")
    migrate(owner, settings)
    return BenchDatabase(owner, app_url_for(owner, settings), version)


async def owner_maintenance(owner: str, *statements: str) -> None:
    conn = await asyncpg.connect(owner)
    try:
        for statement in statements:
            try:
                await conn.execute(statement)
            except asyncpg.InsufficientPrivilegeError:  # CHECKPOINT needs superuser or pg_checkpoint
                say(f"  (skipped, not permitted: {statement})")
    finally:
        await conn.close()


async def in_tenant(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))


# --- tenants ------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    index: int
    id: uuid.UUID
    slug: str
    account_id: uuid.UUID
    client_id: str
    client_secret: str


async def create_tenants(app_url: URL, count: int, scopes: Sequence[str]) -> list[Tenant]:
    """Tenants through the domain services, each with an account and a partner client holding ``scopes``."""
    engine = create_async_engine(app_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    tenants: list[Tenant] = []
    suffix = uuid.uuid4().hex[:6]
    try:
        for index in range(count):
            session: AsyncSession
            async with sessions() as session, session.begin():
                row = await create_tenant(session, f"Bench {index}", f"bench-{index}-{suffix}")
                scope = TenantScope(row.id)
                await apply_scope(session, scope)
                account = await create_account(session, scope, code="BENCH", name="Bench shipper")
                issued = await create_api_client(session, scope, name="bench client", scopes=list(scopes))
                tenants.append(
                    Tenant(
                        index,
                        row.id,
                        row.slug,
                        account.id,
                        issued.client.client_id,
                        issued.client_secret,
                    )
                )
    finally:
        await engine.dispose()
    return tenants


async def seed(plan: data.Plan, app_url: URL) -> list[Tenant]:
    """The capture benchmarks' tenants (an ``ingest`` client each) and their shipments (``bench.data``)."""
    tenants = await create_tenants(app_url, plan.tenants, ["ingest"])
    conn = await asyncpg.connect(libpq_url(app_url))
    try:
        for tenant in tenants:
            await data.seed_shipments(conn, plan, tenant.index, tenant.id, tenant.account_id)
    finally:
        await conn.close()
    return tenants


# --- milepost serve -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(
    process: subprocess.Popen[bytes], name: str, log_path: Path, ready: str, seconds: float = 120
) -> None:
    """Poll ``ready`` until it answers 200; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited ({process.returncode}):\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(ready, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise SystemExit(f"{name} did not become ready:\n{log_path.read_text()[-4000:]}")


def start_server(
    owner: URL, folder: Path, env_overrides: Mapping[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``milepost serve`` on a free loopback port, logging to ``folder/serve.log``: (process, base URL,
    log path)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "APP_DATABASE_URL", "BROKER_URL")}
    env.update(
        DATABASE_URL=libpq_url(owner),
        MILEPOST_DATA_DIR=str(folder / "data"),
        MILEPOST_LOG_LEVEL="WARNING",
        MILEPOST_ACCESS_TOKEN_TTL_SECONDS="7200",
        MILEPOST_ACCESS_TOKEN_MAX_TTL_SECONDS="7200",
    )
    env.update(env_overrides or {})
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "milepost.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    wait_ready(process, "milepost serve", log_path, f"{base}/readyz")
    return process, base, log_path


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def tokens_for(http: httpx.AsyncClient, tenants: Sequence[Tenant]) -> dict[int, str]:
    """An OAuth2 client-credentials access token per tenant (by index)."""
    tokens = {}
    for tenant in tenants:
        response = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(tenant.client_id, tenant.client_secret),
        )
        response.raise_for_status()
        tokens[tenant.index] = response.json()["access_token"]
    return tokens


def server_errors(log_path: Path, limit: int = 5) -> str:
    """The server's first error lines, each with the last line of its traceback (not the whole statement)."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "critical"):
            causes = [
                text
                for text in str(entry.get("exception", "")).splitlines()
                if re.match(r"^[\w.]+(Error|Exception)\b", text)
            ]
            found.append(f"  {entry.get('event')}: {(causes or [''])[-1][:600]}")
        if len(found) >= limit:
            break
    return "server errors (first ones):\n" + "\n".join(found) if found else f"server log: {log_path}"


# --- optional profile ---------------------------------------------------------------------------------


def start_pyspy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    binary = os.environ.get("BENCH_PYSPY_BIN") or shutil.which("py-spy")
    if binary is None:
        raise SystemExit("BENCH_PYSPY is set but py-spy is not on PATH (or in BENCH_PYSPY_BIN)")
    fmt = "raw" if output.suffix == ".txt" else "speedscope"
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--format",
            fmt,
            "--output",
            str(output),
            "--rate",
            "200",
            "--threads",
            "--idle",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_pyspy(profiler: subprocess.Popen[bytes], output: Path) -> None:
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=120)
    except subprocess.TimeoutExpired:
        profiler.kill()
    say(f"  py-spy profile of the server: {output}")


# --- CPU time -----------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process from ``/proc`` (Linux): its own user and system time and
    that of its children that have exited and been waited for."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICKS


def tree_cpu_seconds(root: int) -> float | None:
    """CPU seconds used so far by ``root`` and its descendants, the exited ones included once their parent
    has waited for them (as the postmaster does for its backends); ``None`` without ``/proc``."""
    if not Path("/proc/self/stat").exists():
        return None
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = found
    if root not in stats:
        return None
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, (parent, _) in stats.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(stats[pid][1] for pid in tree)


def database_cpu_seconds(pgdata: Path | None) -> float | None:
    """CPU seconds used so far by the embedded server in ``pgdata`` (its postmaster and backends, the exited
    ones included); ``None`` for a server the benchmark did not start, or without ``/proc``."""
    postmaster = postmaster_pid(pgdata) if pgdata is not None else None
    return tree_cpu_seconds(postmaster) if postmaster is not None else None


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
