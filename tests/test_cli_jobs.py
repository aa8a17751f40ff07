"""`milepost jobs dead-letters` and `milepost jobs replay` against the test database."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db import scoped_transaction
from domain.jobs.service import REPLAY_TOPIC, get_dead_letter
from tests.cli_support import milepost
from tests.shipment_factories import committed_tenant
from tests.workers.support import add_dead_letter, outbox_ids


async def test_dead_letters_are_listed_as_json_lines_for_one_tenant(
    cli_env: dict[str, str | None], sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    other = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    letters = [await add_dead_letter(sessions, world.scope, ids=[f"s{n}"]) for n in range(2)]
    await add_dead_letter(sessions, other.scope)

    result = await milepost(cli_env, "jobs", "dead-letters", "--tenant", world.slug)

    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == [str(letters[1].id), str(letters[0].id)]
    assert lines[1] == {
        "id": str(letters[0].id),
        "actor": "test.not_declared",
        "queue": "demo",
        "message_id": letters[0].message_id,
        "args": [str(world.scope.tenant_id), ["s0"]],
        "kwargs": {},
        "attempts": 5,
        "error": letters[0].error,
        "failed_at": letters[0].failed_at.isoformat(),
        "replayed_at": None,
        "replay_message_id": None,
    }


async def test_replay_one_then_all_and_never_twice_nor_another_tenants(
    cli_env: dict[str, str | None], sessions: async_sessionmaker[AsyncSession]
) -> None:
    world = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    other = await committed_tenant(sessions, accounts=0, shipments_per_account=0)
    first, second, third = [await add_dead_letter(sessions, world.scope) for _ in range(3)]
    theirs = await add_dead_letter(sessions, other.scope)

    one = await milepost(cli_env, "jobs", "replay", str(first.id), "--tenant", world.slug)
    assert one.exit_code == 0, one.stderr
    [replayed] = [json.loads(line) for line in one.stdout.splitlines()]
    assert replayed["id"] == str(first.id)
    assert replayed["replay_message_id"] is not None

    again = await milepost(cli_env, "jobs", "replay", str(first.id), "--tenant", world.slug)
    assert again.exit_code == 1
    assert f"Error: dead letter {first.id} was already replayed at " in again.stderr
    assert f"as message {replayed['replay_message_id']}" in again.stderr

    foreign = await milepost(cli_env, "jobs", "replay", str(theirs.id), "--tenant", world.slug)
    assert foreign.exit_code == 1
    assert foreign.stderr == f"Error: no dead letter {theirs.id}\n"

    rest = await milepost(cli_env, "jobs", "replay", "--all", "--tenant", world.slug)
    assert rest.exit_code == 0, rest.stderr
    assert [json.loads(line)["id"] for line in rest.stdout.splitlines()] == [str(second.id), str(third.id)]

    async with scoped_transaction(sessions, world.scope) as session:
        assert len(await outbox_ids(session, world.scope, REPLAY_TOPIC, pending=True)) == 3
    async with scoped_transaction(sessions, other.scope) as session:
        untouched = await get_dead_letter(session, other.scope, theirs.id)
        assert untouched is not None
        assert untouched.replayed_at is None


async def test_replay_needs_an_id_or_all(cli_env: dict[str, str | None]) -> None:
    result = await milepost(cli_env, "jobs", "replay", "--tenant", "anyone")
    assert result.exit_code == 2
    assert "Error: give one dead letter ID or --all" in result.stderr
