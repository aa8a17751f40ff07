"""`milepost jobs dead-letters --tenant T` and `milepost jobs replay --tenant T (ID | --all)`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import click

from milepost.commands.capture import tenant_database

# dead letters read per transaction while listing
PAGE = 500


@click.group()
def jobs() -> None:
    """Background jobs: dead letters (jobs that failed their last attempt) and their replay."""


@jobs.command("dead-letters")
@click.option("--tenant", required=True, help="The tenant's slug.")
def dead_letters_command(tenant: str) -> None:
    """Print the tenant's dead letters not replayed yet, newest first, one JSON object per line."""
    from milepost.cli import load_settings
    from milepost.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(_list(settings, tenant))


async def _list(settings: Any, slug: str) -> None:
    from domain.db import scoped_transaction
    from domain.jobs.service import list_dead_letters

    async with tenant_database(settings, slug) as (sessions, scope):
        after = None
        while True:
            async with scoped_transaction(sessions, scope) as session:
                page = await list_dead_letters(session, scope, limit=PAGE, after=after)
            for dead_letter in page:
                click.echo(json.dumps(dead_letter_json(dead_letter)))
            if len(page) < PAGE:
                return
            after = (page[-1].failed_at, page[-1].id)


@jobs.command("replay")
@click.argument("dead_letter_id", type=click.UUID, required=False)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter of the tenant not replayed yet.")
@click.option("--tenant", required=True, help="The tenant's slug.")
def replay_command(dead_letter_id: uuid.UUID | None, replay_all: bool, tenant: str) -> None:
    """Send failed jobs again (same actor and arguments, attempt 1). Prints one JSON object per replay."""
    from milepost.cli import load_settings
    from milepost.logs import configure_logging

    if (dead_letter_id is None) == (not replay_all):
        raise click.UsageError("give one dead letter ID or --all")
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    for dead_letter in asyncio.run(_replay(settings, tenant, dead_letter_id)):
        click.echo(json.dumps(dead_letter))


async def _replay(settings: Any, slug: str, dead_letter_id: uuid.UUID | None) -> list[dict[str, Any]]:
    from domain.db import scoped_transaction
    from domain.jobs.service import JobsError, replay_all, replay_dead_letter

    now = dt.datetime.now(dt.UTC)
    async with (
        tenant_database(settings, slug) as (sessions, scope),
        scoped_transaction(sessions, scope) as session,
    ):
        try:
            if dead_letter_id is None:
                replayed = await replay_all(session, scope, now)
            else:
                replayed = [await replay_dead_letter(session, scope, dead_letter_id, now)]
        except JobsError as error:
            raise click.ClickException(str(error)) from None
        return [dead_letter_json(dead_letter) for dead_letter in replayed]


def dead_letter_json(dead_letter: Any) -> dict[str, Any]:
    return {
        "id": str(dead_letter.id),
        "actor": dead_letter.actor_name,
        "queue": dead_letter.queue_name,
        "message_id": dead_letter.message_id,
        "args": dead_letter.args,
        "kwargs": dead_letter.kwargs,
        "attempts": dead_letter.attempts,
        "error": dead_letter.error,
        "failed_at": dead_letter.failed_at.isoformat(),
        "replayed_at": dead_letter.replayed_at.isoformat() if dead_letter.replayed_at else None,
        "replay_message_id": dead_letter.replay_message_id,
    }


COMMANDS: list[click.Command] = [jobs]
