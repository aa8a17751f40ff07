"""GraphQL for background jobs: dead letters (``deadLetters``) and their replay (``replayDeadLetter``)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from api.graphql.context import Context
from api.graphql.relay import (
    Node,
    PageInfo,
    check_page_size,
    decode_cursor,
    expect_global_id,
    paginate,
    to_global_id,
)
from api.graphql.tracking.types import NotFoundError
from domain.jobs import models, service
from domain.shipments.repository import PageKey

DEFAULT_PAGE_SIZE = 20


@strawberry.type(
    description="A background job that failed its last attempt, kept to be looked at and replayed."
)
class DeadLetter(Node):
    row: strawberry.Private[models.DeadLetter]

    @strawberry.field(description="The actor that failed, `<concept>.<verb>`.")
    def actor_name(self) -> str:
        return self.row.actor_name

    @strawberry.field(description="The queue it ran on.")
    def queue_name(self) -> str:
        return self.row.queue_name

    @strawberry.field(description="The broker message id of the failed job.")
    def message_id(self) -> str:
        return self.row.message_id

    @strawberry.field(description="Positional arguments of the job (ids and the tenant id).")
    def args(self) -> JSON:
        return cast(JSON, self.row.args)

    @strawberry.field(description="Keyword arguments of the job.")
    def kwargs(self) -> JSON:
        return cast(JSON, self.row.kwargs)

    @strawberry.field(description="How many times it was tried.")
    def attempts(self) -> int:
        return self.row.attempts

    @strawberry.field(description="The last error: type, message and the innermost traceback frames.")
    def error(self) -> str:
        return self.row.error

    @strawberry.field(description="When the last attempt failed.")
    def failed_at(self) -> dt.datetime:
        return self.row.failed_at

    @strawberry.field(description="When it was replayed; null until then.")
    def replayed_at(self) -> dt.datetime | None:
        return self.row.replayed_at

    @strawberry.field(description="The message id the replay was sent as; null until replayed.")
    def replay_message_id(self) -> str | None:
        return self.row.replay_message_id


def dead_letter_node(row: models.DeadLetter) -> DeadLetter:
    return DeadLetter(id=to_global_id("DeadLetter", row.id), row=row)


@strawberry.type(description="A dead letter in a connection.")
class DeadLetterEdge:
    cursor: str = strawberry.field(description="Opaque position; pass as `after`.")
    node: DeadLetter = strawberry.field(description="The dead letter.")


@strawberry.type(description="Dead letters not replayed yet, newest failure first.")
class DeadLetterConnection:
    edges: list[DeadLetterEdge] = strawberry.field(description="This page's dead letters.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")


@strawberry.type(description="The job was queued again; it is sent once this request's changes commit.")
class ReplayDeadLetterSuccess:
    dead_letter: DeadLetter = strawberry.field(description="The dead letter, now marked replayed.")


@strawberry.type(description="The dead letter was replayed before; a dead letter is replayed once.")
class AlreadyReplayedError:
    message: str = strawberry.field(description="What happened, in words.")
    replayed_at: dt.datetime = strawberry.field(description="When it was replayed.")
    replay_message_id: str = strawberry.field(description="The message id the replay was sent as.")


ReplayDeadLetterPayload = Annotated[
    ReplayDeadLetterSuccess | NotFoundError | AlreadyReplayedError,
    strawberry.union("ReplayDeadLetterPayload", description="The replayed dead letter, or why not."),
]


async def dead_letters(
    info: strawberry.Info[Context, None], first: int = DEFAULT_PAGE_SIZE, after: str | None = None
) -> DeadLetterConnection:
    context = info.context
    limit = check_page_size(first, context.state.settings.graphql_max_page_size)
    position = decode_cursor(after) if after else None
    scope = context.principal.scope
    rows = await context.loaders.run(
        lambda session: service.list_dead_letters(
            session,
            scope,
            limit=limit + 1,
            after=(position.created_at, position.id) if position else None,
        )
    )
    cursored, page_info = paginate(rows, limit, lambda row: PageKey(row.failed_at, row.id))
    edges = [DeadLetterEdge(cursor=cursor, node=dead_letter_node(row)) for cursor, row in cursored]
    return DeadLetterConnection(edges=edges, page_info=page_info)


async def dead_letter_by_id(
    info: strawberry.Info[Context, None], dead_letter_id: uuid.UUID
) -> DeadLetter | None:
    """For ``node(id)``, which has checked the caller."""
    scope = info.context.principal.scope
    row = await info.context.loaders.run(
        lambda session: service.get_dead_letter(session, scope, dead_letter_id)
    )
    return dead_letter_node(row) if row is not None else None


async def replay_dead_letter(
    info: strawberry.Info[Context, None], id: strawberry.ID
) -> ReplayDeadLetterPayload:
    context = info.context
    value = expect_global_id(id, "DeadLetter")
    if value is None:
        return NotFoundError(message=f"no dead letter {id}")
    scope = context.principal.scope

    async def work(session: Any) -> ReplayDeadLetterPayload:
        try:
            row = await service.replay_dead_letter(session, scope, value, context.state.clock())
        except service.DeadLetterNotFound:
            return NotFoundError(message=f"no dead letter {id}")
        except service.AlreadyReplayed as error:
            replayed = error.dead_letter
            assert replayed.replayed_at is not None
            assert replayed.replay_message_id is not None
            return AlreadyReplayedError(
                message=f"dead letter {id} was already replayed",
                replayed_at=replayed.replayed_at,
                replay_message_id=replayed.replay_message_id,
            )
        return ReplayDeadLetterSuccess(dead_letter=dead_letter_node(row))

    return await context.loaders.run(work)
