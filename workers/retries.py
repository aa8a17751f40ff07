"""Retries with our own attempt counter, and dead letters in PostgreSQL after the last attempt.

Replaces Dramatiq's ``Retries`` middleware. A message's attempt number is ``message.options["attempt"]``
(1-based; a message without one is on attempt 1). When an attempt fails and the actor has attempts left,
the same message (same id, same arguments) is enqueued again with ``attempt + 1`` after an exponential
backoff with jitter; the delay it waited is ``message.options["backoff_ms"]``. Per-actor options:
``max_attempts``, ``min_backoff`` and ``max_backoff`` (milliseconds); defaults from the settings
``MILEPOST_JOB_MAX_ATTEMPTS``, ``MILEPOST_JOB_MIN_BACKOFF_MS`` and ``MILEPOST_JOB_MAX_BACKOFF_MS``.

After the last attempt the message becomes a ``dead_letter`` row of the tenant it carries (``tenant_id``
keyword or first positional argument), visible and replayable (``domain.jobs.service``). Only when that
cannot be done — no tenant in the message, or the database refuses — is the message failed into
Dramatiq's own dead-letter queue, with an error in the log.
"""

from __future__ import annotations

import datetime as dt
import random
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.common import q_name
from dramatiq.errors import Retry
from dramatiq.middleware import Middleware

from domain.columns import utcnow
from domain.jobs.service import FailedJob

log = structlog.get_logger("milepost.workers")

# the longest error text kept on a dead letter: the exception and the innermost frames
ERROR_TEXT_LIMIT = 4_000
TRACEBACK_FRAMES = 8

KeepDeadLetter = Callable[[uuid.UUID, FailedJob], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    min_backoff_ms: int
    max_backoff_ms: int


def backoff_ms(attempt: int, min_backoff_ms: int, max_backoff_ms: int, jitter: float) -> int:
    """The wait after failed attempt ``attempt`` (1-based): ``min_backoff * 2^(attempt - 1)``, capped at
    ``max_backoff``, then spread by ``jitter`` (0..1) over its upper half, so waits never shrink from one
    attempt to the next while retries of many messages that failed together still spread out."""
    ceiling = min(max_backoff_ms, min_backoff_ms * (1 << (attempt - 1)))
    return max(1, round(ceiling * (1 + jitter) / 2))


def message_tenant(args: Sequence[Any], kwargs: Mapping[str, Any]) -> uuid.UUID | None:
    """The tenant a job message belongs to: its ``tenant_id`` keyword, else its first positional argument."""
    raw = kwargs["tenant_id"] if "tenant_id" in kwargs else (args[0] if args else None)
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None


def describe_error(exception: BaseException) -> str:
    """Type, message and the innermost frames of the traceback, short enough to keep on a row."""
    frames = "".join(traceback.format_exception(exception, limit=-TRACEBACK_FRAMES))
    text = f"{type(exception).__name__}: {exception}\n\n{frames}"
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 1] + "…"


class JobRetries(Middleware):
    """Attempt counting, backoff and dead-lettering (see the module docstring)."""

    def __init__(
        self,
        policy: RetryPolicy,
        keep_dead_letter: KeepDeadLetter,
        *,
        jitter: Callable[[], float] = random.random,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.policy = policy
        self.keep_dead_letter = keep_dead_letter
        self.jitter = jitter
        self.clock = clock

    @property
    def actor_options(self) -> set[str]:
        return {"max_attempts", "min_backoff", "max_backoff"}

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: object = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None:
            return
        options = broker.get_actor(message.actor_name).options
        attempt = int(message.options.get("attempt", 1))
        max_attempts = int(options.get("max_attempts", self.policy.max_attempts))
        if attempt < max_attempts:
            if isinstance(exception, Retry) and exception.delay is not None:
                delay = int(exception.delay)
            else:
                delay = backoff_ms(
                    attempt,
                    int(options.get("min_backoff", self.policy.min_backoff_ms)),
                    int(options.get("max_backoff", self.policy.max_backoff_ms)),
                    self.jitter(),
                )
            log.warning(
                "job attempt failed; retrying",
                actor=message.actor_name,
                message_id=message.message_id,
                attempt=attempt,
                max_attempts=max_attempts,
                retry_in_ms=delay,
                error=f"{type(exception).__name__}: {exception}",
            )
            broker.enqueue(message.copy(options={"attempt": attempt + 1, "backoff_ms": delay}), delay=delay)
            return
        self._dead_letter(message, attempt, exception)

    def _dead_letter(self, message: MessageProxy, attempts: int, exception: BaseException) -> None:
        tenant_id = message_tenant(message.args, message.kwargs)
        if tenant_id is None:
            log.error(
                "job failed its last attempt without a tenant id; left to the broker's dead-letter queue",
                actor=message.actor_name,
                message_id=message.message_id,
                attempts=attempts,
            )
            message.fail()
            return
        failed = FailedJob(
            actor_name=message.actor_name,
            queue_name=q_name(message.queue_name),
            message_id=message.message_id,
            args=list(message.args),
            kwargs=dict(message.kwargs),
            attempts=attempts,
            error=describe_error(exception),
            failed_at=self.clock(),
        )
        try:
            self.keep_dead_letter(tenant_id, failed)
        except Exception:
            log.exception(
                "could not record a dead letter; left to the broker's dead-letter queue",
                actor=message.actor_name,
                message_id=message.message_id,
            )
            message.fail()
            return
        log.error(
            "job failed its last attempt; kept as a dead letter",
            actor=message.actor_name,
            message_id=message.message_id,
            tenant_id=str(tenant_id),
            attempts=attempts,
        )
