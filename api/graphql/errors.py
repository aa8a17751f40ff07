"""Unexpected errors never reach a client: it sees "Internal server error" and the request id, and the log
has the traceback under the same id (every log line of a request carries it)."""

from __future__ import annotations

import structlog
from graphql import GraphQLError
from strawberry.extensions import MaskErrors

log = structlog.get_logger("milepost.graphql")


def is_internal(error: GraphQLError) -> bool:
    """An exception we did not raise on purpose (ours are GraphQLError subclasses; so are validation
    and syntax errors)."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def internal_error(request_id: str, error: GraphQLError | None = None) -> GraphQLError:
    """What the client sees instead of ``error`` (or of a failure outside GraphQL), after logging it."""
    original = error.original_error if error is not None else None
    log.error(
        "graphql request failed" if error is None or error.path is None else "resolver failed",
        path=error.path if error is not None else None,
        exc_info=original or True,
    )
    return GraphQLError(
        f"Internal server error (request id {request_id})",
        error.nodes if error is not None else None,
        path=error.path if error is not None else None,
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


class MaskInternalErrors(MaskErrors):
    """Masks unexpected exceptions of resolvers; errors we raise on purpose pass through."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_internal)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = getattr(self.execution_context.context, "request_id", "unknown")
        return internal_error(request_id, error)
