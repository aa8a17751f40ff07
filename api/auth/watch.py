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
from typing import Any

import asyncpg
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.tokens import TokenService
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
        self._dsn = dsn
        self._kek = key_encryption_key
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._wake = asyncio.Event()
        self.listening = False
        self.reloads = 0  # how many reloads completed (tests wait on it)

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
        listener = asyncio.create_task(self._listen(stopping))
        try:
            while not stopping.is_set():
                try:
                    await self.reload()
                except Exception as error:  # a database hiccup must not stop the watch
                    log.error("credentials: reload failed; keeping the previous ones", error=repr(error))
                await _wait_any([stopping, self._wake], self._refresh_seconds)
                self._wake.clear()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    def _heard(self, _connection: object, _pid: int, _channel: str, _payload: str) -> None:
        self._wake.set()

    async def _listen(self, stopping: asyncio.Event) -> None:
        delay = 1.0
        while not stopping.is_set():
            try:
                connection = await asyncpg.connect(self._dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                log.warning(
                    "credentials: cannot connect to listen; retrying", error=repr(error), retry_in=delay
                )
                await _wait_any([stopping], delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)
                continue
            delay = 1.0
            try:
                problem = await self._hold(connection, stopping)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), timeout=5)
            if not stopping.is_set():
                log.warning("credentials: LISTEN connection lost; reconnecting", error=problem)

    async def _hold(self, connection: Any, stopping: asyncio.Event) -> str:
        """Listen on ``connection`` until it is lost or ``stopping``; returns what went wrong."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CREDENTIALS_CHANNEL, self._heard)
            self.listening = True
            self._wake.set()  # what changed while nobody listened is read now
            while not stopping.is_set():
                await _wait_any([stopping, lost], self._refresh_seconds)
                if lost.is_set():
                    return "the connection was closed"
                if not stopping.is_set():
                    # a connection that died quietly (no FIN) is only found by using it
                    await asyncio.wait_for(connection.fetchval("SELECT 1"), timeout=self._refresh_seconds)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            return repr(error)
        return "stopping"


async def _wait_any(events: list[asyncio.Event], seconds: float) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
