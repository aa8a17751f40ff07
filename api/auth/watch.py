"""Keeps an API process's revocations and signing keys current.

Revoking a client or a token, and adding or rotating a signing key, send ``NOTIFY milepost_credentials``
in their transaction. Each API process ``LISTEN``s on a connection of its own and reloads both (two small
queries) when one arrives, so a change is in force everywhere a few milliseconds after its commit. Should
the connection drop, or a notification be missed, the periodic reload every
``MILEPOST_CREDENTIALS_REFRESH_SECONDS`` bounds how stale a process can get. The process that made the
change applies it to itself at once (``TokenService.revoked_client``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
from api.listen import Listener, wait_any
from domain.db import system_transaction
from domain.signing.service import load_key_ring
from domain.tenancy.repository import revocations_in_force
from domain.tenancy.rules import CREDENTIALS_CHANNEL, Revocations

log = structlog.get_logger("milepost.auth")

MAX_RECONNECT_DELAY_SECONDS = 30.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CredentialWatch:
    def __init__(
        self,
        tokens: TokenService,
        sessions: async_sessionmaker[AsyncSession],
        dsn: str,
        key_encryption_key: bytes,
        *,
        refresh_seconds: float,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._tokens = tokens
        self._sessions = sessions
        self._kek = key_encryption_key
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._wake = asyncio.Event()
        self._listener = Listener(
            dsn,
            CREDENTIALS_CHANNEL,
            lambda *_heard: self._wake.set(),
            name="credentials",
            keepalive_seconds=refresh_seconds,
            retry_seconds=(1.0, MAX_RECONNECT_DELAY_SECONDS),
            on_listening=self._wake.set,  # what changed while nobody listened is read now
        )
        self.reloads = 0  # how many reloads completed (tests wait on it)

    @property
    def listening(self) -> bool:
        return self._listener.listening

    async def reload(self) -> None:
        """Read revocations and signing keys and put them in force in this process."""
        before = self._tokens.revocations
        now = self._clock()
        known = {key.kid: key for key in self._tokens.keys.keys}
        async with system_transaction(self._sessions) as session:
            revocations = await revocations_in_force(session, now)
            ring = await load_key_ring(session, self._kek, now=now, known=known)
        # keep what this process revoked itself while the reload ran (its query may predate the commit)
        current = self._tokens.revocations
        self._tokens.use_revocations(
            Revocations(
                revocations.clients | (current.clients - before.clients),
                revocations.token_ids | (current.token_ids - before.token_ids),
            )
        )
        self._tokens.use_keys(ring)
        self.reloads += 1

    async def run(self, stopping: asyncio.Event) -> None:
        """Listen and reload until ``stopping`` is set; a failure is logged and retried, never raised."""
        listener = asyncio.create_task(self._listener.run(stopping))
        try:
            while not stopping.is_set():
                try:
                    await self.reload()
                except Exception as error:  # a database hiccup must not stop the watch
                    log.error("credentials: reload failed; keeping the previous ones", error=repr(error))
                await wait_any((stopping, self._wake), self._refresh_seconds)
                self._wake.clear()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
