"""Dead letters: background jobs that failed their last attempt, kept per tenant, listed and replayed.

A replay does not talk to the broker: it marks the dead letter replayed and writes the message to send
(same actor and arguments, a new message id chosen here, attempt 1) to the outbox in the same transaction,
so it goes out only if that transaction commits, and in every mode (in-process workers included).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db import TenantScope, scoped, tenant_condition
from domain.jobs.models import DeadLetter
from domain.outbox.service import publish

# the outbox topic of a replay; its payload is the message to send (see workers.dispatcher)
REPLAY_TOPIC = "dead_letter.replayed"


class JobsError(Exception):
    """A refused dead-letter operation, in words for the caller."""


class DeadLetterNotFound(JobsError):
    pass


class AlreadyReplayed(JobsError):
    def __init__(self, dead_letter: DeadLetter) -> None:
        when = f"{dead_letter.replayed_at:%Y-%m-%dT%H:%M:%SZ}"
        replay = dead_letter.replay_message_id
        super().__init__(f"dead letter {dead_letter.id} was already replayed at {when} as message {replay}")
        self.dead_letter = dead_letter


@dataclass(frozen=True, slots=True)
class FailedJob:
    """A job message after its last failed attempt, as the worker saw it."""

    actor_name: str
    queue_name: str
    message_id: str
    args: Sequence[Any]
    kwargs: dict[str, Any]
    attempts: int
    error: str
    failed_at: dt.datetime


async def record_dead_letter(session: AsyncSession, scope: TenantScope, failed: FailedJob) -> None:
    """Keep a failed job; recording the same message twice (a redelivered last attempt) keeps one row."""
    await session.execute(
        insert(DeadLetter)
        .values(
            tenant_id=scope.tenant_id,
            id=uuid.uuid4(),
            actor_name=failed.actor_name,
            queue_name=failed.queue_name,
            message_id=failed.message_id,
            args=list(failed.args),
            kwargs=failed.kwargs,
            attempts=failed.attempts,
            error=failed.error,
            failed_at=failed.failed_at,
        )
        .on_conflict_do_nothing(index_elements=[DeadLetter.tenant_id, DeadLetter.message_id])
    )


async def list_dead_letters(
    session: AsyncSession,
    scope: TenantScope,
    *,
    limit: int,
    after: tuple[dt.datetime, uuid.UUID] | None = None,
) -> list[DeadLetter]:
    """Dead letters not replayed yet, newest first, keyset-paginated on (failed_at, id)."""
    statement = scoped(select(DeadLetter), DeadLetter, scope).where(DeadLetter.replayed_at.is_(None))
    if after is not None:
        statement = statement.where(tuple_(DeadLetter.failed_at, DeadLetter.id) < tuple_(*after))
    statement = statement.order_by(DeadLetter.failed_at.desc(), DeadLetter.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


async def get_dead_letter(
    session: AsyncSession, scope: TenantScope, dead_letter_id: uuid.UUID
) -> DeadLetter | None:
    statement = scoped(select(DeadLetter), DeadLetter, scope).where(DeadLetter.id == dead_letter_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def replay_dead_letter(
    session: AsyncSession, scope: TenantScope, dead_letter_id: uuid.UUID, now: dt.datetime
) -> DeadLetter:
    """Send the failed job again (attempt 1, after the caller commits); a dead letter is replayed once.

    Raises :class:`DeadLetterNotFound` or :class:`AlreadyReplayed`.
    """
    message_id = str(uuid.uuid4())
    claimed = (
        await session.execute(
            update(DeadLetter)
            .where(
                tenant_condition(DeadLetter, scope),
                DeadLetter.id == dead_letter_id,
                DeadLetter.replayed_at.is_(None),
            )
            .values(replayed_at=now, replay_message_id=message_id)
            .returning(DeadLetter)
            .execution_options(synchronize_session="fetch")
        )
    ).scalar_one_or_none()
    if claimed is None:
        existing = await get_dead_letter(session, scope, dead_letter_id)
        if existing is None:
            raise DeadLetterNotFound(f"no dead letter {dead_letter_id}")
        raise AlreadyReplayed(existing)
    payload = {
        "dead_letter_id": str(claimed.id),
        "message_id": message_id,
        "actor_name": claimed.actor_name,
        "args": claimed.args,
        "kwargs": claimed.kwargs,
    }
    await publish(session, scope, REPLAY_TOPIC, payload)
    return claimed


async def replay_all(session: AsyncSession, scope: TenantScope, now: dt.datetime) -> list[DeadLetter]:
    """Replay every dead letter of the scope not replayed yet, oldest first."""
    pending = scoped(select(DeadLetter.id), DeadLetter, scope).where(DeadLetter.replayed_at.is_(None))
    ids = (await session.execute(pending.order_by(DeadLetter.failed_at, DeadLetter.id))).scalars().all()
    return [await replay_dead_letter(session, scope, dead_letter_id, now) for dead_letter_id in ids]
