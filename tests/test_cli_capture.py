"""`milepost import` and `milepost ingest replay` against the test database."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db import scoped, scoped_transaction
from domain.tracking.models import IngestEndpoint, IngestMessage, TrackingEvent
from milepost.commands import capture
from milepost.commands.capture import csv_chunks
from milepost.database import Database
from tests.cli_support import milepost, printed
from tests.shipment_factories import committed_tenant

SHIPMENTS = (
    "account_code,mode,carrier_code,origin_locode,destination_locode,booking,etd,eta\n"
    "ACC0,ocean,MAEU,CNSHA,NLRTM,BK-IMP-1,2026-03-01T10:00:00+08:00,2026-04-01T08:00:00+02:00\n"
    "ACC0,air,LH,DEFRA,USORD,BK-IMP-2,2026-03-02T10:00:00+01:00,2026-03-02T18:00:00-06:00\n"
    "NOPE,road,ODFL,USCHI,USNYC,BK-IMP-3,2026-03-03T10:00:00-06:00,2026-03-05T10:00:00-05:00\n"
    "ACC0,parcel,UPS,USCHI,USNYC,BK-IMP-4,2026-03-03T10:00:00-06:00,not-a-date\n"
    "ACC0,rail,BNSF,USCHI,USLAX,BK-IMP-5,2026-03-03T10:00:00-06:00,2026-03-09T10:00:00-08:00\n"
)


def test_csv_chunks_keep_the_header_and_never_split_a_quoted_field() -> None:
    text = b'h1,h2\n1,"a\nb"\n2,x\n3,y\n'
    chunks = list(csv_chunks(io.BytesIO(text), rows=1))
    assert chunks == [
        (2, b'h1,h2\n1,"a\nb"\n', 14),  # the quoted newline keeps both physical lines together
        (4, b"h1,h2\n2,x\n", 4),
        (5, b"h1,h2\n3,y\n", 4),
    ]


@pytest.mark.slow
async def test_import_streams_a_csv_in_chunks_and_reports_file_lines(
    cli_env: dict[str, str | None],
    database: Database,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = await committed_tenant(sessions, accounts=1, shipments_per_account=0)
    monkeypatch.setattr(capture, "CSV_ROWS_PER_MESSAGE", 2)
    monkeypatch.setattr(capture.csv_chunks, "__defaults__", (2,))
    path = tmp_path / "shipments.csv"
    path.write_text(SHIPMENTS)
    result = printed(await milepost(cli_env, "import", str(path), "--format", "csv", "--tenant", world.slug))
    assert result["status"] == "partially_accepted"
    assert len(result["messages"]) == 3
    assert result["counts"]["rejected"] == 2
    # line 5 sits in the second chunk: its position is still the file's line, not the chunk's
    assert [(i["position"], i["code"]) for i in result["issues"]] == [("line 5, column eta", "invalid_time")]

    events = tmp_path / "events.csv"
    events.write_text(
        "reference,code,classifier,occurred_at,locode\n"
        "BK-IMP-1,DEPARTED,ACT,2026-03-01T12:00:00+08:00,CNSHA\n"
        "BK-UNKNOWN,DEPARTED,ACT,2026-03-01T12:00:00+08:00,CNSHA\n"
    )
    result = printed(
        await milepost(cli_env, "import", str(events), "--format", "csv", "--tenant", world.slug)
    )
    assert result["counts"] == {"events": 2, "accepted": 1, "parked": 1, "duplicate": 0, "rejected": 0}

    message_id = result["messages"][0]
    replayed = printed(await milepost(cli_env, "ingest", "replay", message_id, "--tenant", world.slug))
    assert replayed["counts"] == {"events": 2, "accepted": 0, "parked": 0, "duplicate": 2, "rejected": 0}
    async with scoped_transaction(sessions, world.scope) as session:
        stored = (
            await session.execute(scoped(select(func.count(TrackingEvent.id)), TrackingEvent, world.scope))
        ).scalar_one()
        attempts = await session.get_one(IngestMessage, (world.scope.tenant_id, uuid.UUID(message_id)))
    assert (stored, attempts.attempts) == (2, 2)


async def test_import_refuses_unknown_tenants_and_formats(
    cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a\n")
    unknown_format = await milepost(cli_env, "import", str(path), "--format", "telex", "--tenant", "x")
    assert unknown_format.exit_code == 2
    assert "unknown format 'telex'" in unknown_format.stderr
    unknown_tenant = await milepost(
        cli_env, "import", str(path), "--format", "csv", "--tenant", "no-such-tenant"
    )
    assert unknown_tenant.exit_code == 1
    assert "no tenant with slug 'no-such-tenant'" in unknown_tenant.stderr


async def test_replay_of_an_unknown_message_is_a_clear_error(
    cli_env: dict[str, str | None], sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    missing = str(uuid.uuid4())
    result = await milepost(cli_env, "ingest", "replay", missing, "--tenant", world.slug)
    assert result.exit_code == 1
    assert f"no ingest message {missing}" in result.stderr


async def test_webhook_endpoint_secrets_are_set_by_the_cli(
    cli_env: dict[str, str | None], sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    args = [
        "ingest",
        "endpoint",
        "--tenant",
        world.slug,
        "--format",
        "easypost",
        "--secret",
        "a",
        "--secret",
        "b",
    ]
    result = printed(await milepost(cli_env, *args))
    assert result == {
        "tenant": world.slug,
        "format": "easypost",
        "secrets": 2,
        "require_signature": True,
        "url": f"http://127.0.0.1:8000/ingest/easypost?tenant={world.slug}",
    }
    printed(await milepost(cli_env, *args[:-4], "--secret", "c"))  # rotating replaces the set
    async with scoped_transaction(sessions, world.scope) as session:
        endpoint = (
            await session.execute(scoped(select(IngestEndpoint), IngestEndpoint, world.scope))
        ).scalar_one()
    assert (endpoint.secrets, endpoint.require_signature) == (["c"], True)
