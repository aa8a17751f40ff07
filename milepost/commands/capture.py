"""`milepost import FILE --format F --tenant T` and `milepost ingest replay ID --tenant T`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO

import click

# a CSV file is cut into messages of this many rows: each is stored raw and processed in its own
# transaction, so a file of any size streams through in bounded memory and a failure loses one chunk at most
CSV_ROWS_PER_MESSAGE = 5_000


def csv_chunks(handle: BinaryIO, rows: int = CSV_ROWS_PER_MESSAGE) -> Iterator[tuple[int, bytes, int]]:
    """``(first line number, header + up to ``rows`` lines, bytes read)``; never splits a quoted field."""
    header = handle.readline()
    lines: list[bytes] = []
    first_line, line_number, quotes, consumed = 2, 1, 0, len(header)
    for line in handle:
        line_number += 1
        consumed += len(line)
        lines.append(line)
        quotes += line.count(b'"')
        if len(lines) >= rows and quotes % 2 == 0:
            yield first_line, header + b"".join(lines), consumed
            lines, quotes, consumed, first_line = [], 0, 0, line_number + 1
    if lines or consumed:
        yield first_line, header + b"".join(lines), consumed


def _shift_line(position: str, first_line: int) -> str:
    match = re.match(r"line (\d+)(.*)", position)
    if not match:
        return position
    return f"line {int(match.group(1)) + first_line - 2}{match.group(2)}"


async def _tenant_scope(sessions: Any, slug: str) -> Any:
    """The scope of the tenant with this slug, or a clear CLI error."""
    from domain.db import TenantScope
    from domain.tenancy.service import find_tenant_by_slug

    async with sessions() as session, session.begin():
        tenant = await find_tenant_by_slug(session, slug)
    if tenant is None:
        raise click.ClickException(f"no tenant with slug {slug!r}")
    return TenantScope(tenant.id)


@asynccontextmanager
async def app_sessions(settings: Any) -> AsyncIterator[Any]:
    """A session factory for one command: the database (embedded or given), as the application role."""
    from milepost.database import create_engine, session_factory
    from milepost.runtime import prepare

    runtime = prepare(settings)
    engine = create_engine(runtime.database.app_url, settings)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()
        runtime.database.stop()


@asynccontextmanager
async def tenant_database(settings: Any, slug: str) -> AsyncIterator[tuple[Any, Any]]:
    """``(sessions, scope)`` for one command: :func:`app_sessions` and the tenant with this slug."""
    async with app_sessions(settings) as sessions:
        yield sessions, await _tenant_scope(sessions, slug)


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "format_", required=True, help="events, dcsa, x12, epcis, aftership, easypost, csv")
@click.option("--tenant", required=True, help="The tenant's slug.")
def import_file(file: Path, format_: str, tenant: str) -> None:
    """Ingest a file as the HTTP endpoint would: stored raw, parsed, deduplicated, applied. Prints JSON."""
    from domain.tracking.ingest import FORMATS
    from milepost.cli import load_settings
    from milepost.logs import configure_logging

    if format_ not in FORMATS:
        raise click.BadParameter(
            f"unknown format {format_!r}; use one of {', '.join(FORMATS)}", param_hint="--format"
        )
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    importer = _Importer(settings, tenant)
    size = file.stat().st_size
    try:
        with (
            asyncio.Runner() as runner,
            file.open("rb") as handle,
            click.progressbar(length=size, label=f"importing {file.name}", file=sys.stderr) as bar,
        ):
            try:
                runner.run(importer.open())
                chunks = csv_chunks(handle) if format_ == "csv" else iter([(2, handle.read(), size)])
                for first_line, body, consumed in chunks:
                    runner.run(importer.ingest(format_, body, first_line))
                    bar.update(consumed)
            finally:
                runner.run(importer.close())
    finally:
        importer.stop()
    click.echo(json.dumps(importer.summary(), indent=2))
    if importer.summary()["status"] == "rejected":
        raise SystemExit(1)


class _Importer:
    """One tenant-scoped engine for the whole file; each chunk is its own raw-first message."""

    def __init__(self, settings: Any, slug: str) -> None:
        from milepost.runtime import prepare

        self.settings = settings
        self.slug = slug
        self.runtime = prepare(settings)
        self.totals = {"events": 0, "accepted": 0, "parked": 0, "duplicate": 0, "rejected": 0}
        self.messages: list[str] = []
        self.problems: list[dict[str, Any]] = []
        self.statuses: set[str] = set()

    async def open(self) -> None:
        from milepost.database import create_engine, session_factory

        self.engine = create_engine(self.runtime.database.app_url, self.settings)
        self.sessions = session_factory(self.engine)
        self.scope = await _tenant_scope(self.sessions, self.slug)

    async def ingest(self, format_: str, body: bytes, first_line: int) -> None:
        from domain.db import scoped_transaction
        from domain.tracking.ingest import parse_body, process, receive
        from domain.tracking.models import IngestMessage

        scope = self.scope
        now = dt.datetime.now(dt.UTC)
        async with scoped_transaction(self.sessions, scope) as session:
            message = await receive(
                session,
                scope,
                format=format_,
                body=body,
                content_type=None,
                api_client_id=None,
                idempotency_key=None,
                now=now,
            )
            message_id = message.id
        parsed = await asyncio.to_thread(parse_body, format_, body, now)
        async with scoped_transaction(self.sessions, scope) as session:
            message = await session.get_one(IngestMessage, (scope.tenant_id, message_id))
            await process(session, scope, message, parsed, now=now)
        self.messages.append(str(message_id))
        self.statuses.add(message.status)
        for name, count in (
            ("events", message.event_count),
            ("accepted", message.accepted_count),
            ("parked", message.parked_count),
            ("duplicate", message.duplicate_count),
            ("rejected", message.rejected_count),
        ):
            self.totals[name] += count
        for issue in message.errors[: max(0, 100 - len(self.problems))]:
            self.problems.append({**issue, "position": _shift_line(issue["position"], first_line)})

    async def close(self) -> None:
        if hasattr(self, "engine"):
            await self.engine.dispose()

    def stop(self) -> None:
        self.runtime.database.stop()

    def summary(self) -> dict[str, Any]:
        if self.statuses <= {"accepted"}:
            status = "accepted"
        elif self.statuses == {"rejected"}:
            status = "rejected"
        else:
            status = "partially_accepted"
        return {"status": status, "messages": self.messages, "counts": self.totals, "issues": self.problems}


@click.group()
def ingest() -> None:
    """Inspect and replay stored ingest messages."""


@ingest.command("replay")
@click.argument("message_id", type=click.UUID)
@click.option("--tenant", required=True, help="The tenant's slug.")
def replay_command(message_id: uuid.UUID, tenant: str) -> None:
    """Parse and process a stored message again (e.g. after a mapping fix). Prints its new report."""
    from milepost.cli import load_settings
    from milepost.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    click.echo(json.dumps(asyncio.run(_replay(settings, message_id, tenant)), indent=2))


async def _replay(settings: Any, message_id: uuid.UUID, slug: str) -> dict[str, Any]:
    from api.ingest import report
    from domain.db import scoped_transaction
    from domain.tracking.ingest import IngestError, replay

    async with (
        tenant_database(settings, slug) as (sessions, scope),
        scoped_transaction(sessions, scope) as session,
    ):
        try:
            message = await replay(session, scope, message_id, now=dt.datetime.now(dt.UTC))
        except IngestError as error:
            raise click.ClickException(str(error)) from None
        return report(message)


@ingest.command("endpoint")
@click.option("--tenant", required=True, help="The tenant's slug.")
@click.option("--format", "format_", required=True, type=click.Choice(["aftership", "easypost"]))
@click.option("--secret", "secrets", multiple=True, required=True, help="HMAC secret (repeat to rotate).")
@click.option("--require-signature/--no-require-signature", default=True, show_default=True)
def endpoint_command(tenant: str, format_: str, secrets: tuple[str, ...], require_signature: bool) -> None:
    """Set the webhook secrets a tenant's AfterShip/EasyPost endpoint verifies. Prints JSON (no secrets)."""
    from milepost.cli import load_settings

    settings = load_settings()
    click.echo(
        json.dumps(asyncio.run(_endpoint(settings, tenant, format_, list(secrets), require_signature)))
    )


async def _endpoint(
    settings: Any, slug: str, format_: str, secrets: list[str], require: bool
) -> dict[str, Any]:
    from sqlalchemy import select

    from domain.db import scoped, scoped_transaction
    from domain.tracking.models import IngestEndpoint

    async with tenant_database(settings, slug) as (sessions, scope):
        async with scoped_transaction(sessions, scope) as session:
            statement = scoped(select(IngestEndpoint), IngestEndpoint, scope).where(
                IngestEndpoint.format == format_
            )
            endpoint = (await session.execute(statement)).scalar_one_or_none()
            if endpoint is None:
                endpoint = IngestEndpoint(tenant_id=scope.tenant_id, format=format_)
                session.add(endpoint)
            endpoint.secrets, endpoint.require_signature = secrets, require
        return {
            "tenant": slug,
            "format": format_,
            "secrets": len(secrets),
            "require_signature": require,
            "url": f"{settings.public_url}/ingest/{format_}?tenant={slug}",
        }


COMMANDS: list[click.Command] = [import_file, ingest]
