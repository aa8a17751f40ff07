"""One PostgreSQL ``LISTEN`` connection kept open: reconnected with backoff when it cannot be made or is
lost, and checked with ``SELECT 1`` every ``keepalive`` seconds (a connection that died quietly, without a
FIN, is only found by using it). The live-events hub (``api/live.py``) and the credentials watch
(``api/auth/watch.py``) each hold one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger("milepost.listen")

Heard = Callable[[Any, int, str, str], None]  # asyncpg's listener: (connection, pid, channel, payload)


class Listener:
    """``LISTEN channel`` on a connection of its own until stopped; ``on_listening`` runs each time it
    listens (again), ``on_lost`` each time a connection is lost while not stopping."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        heard: Heard,
        *,
        name: str,
        keepalive_seconds: float,
        retry_seconds: tuple[float, float],
        on_listening: Callable[[], None] = lambda: None,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._heard = heard
        self._name = name
        self._keepalive = keepalive_seconds
        self._retry = retry_seconds
        self._on_listening = on_listening
        self._on_lost = on_lost
        self.listening = False
        self.server_pid: int | None = None  # of the connection's backend (tests end it on purpose)

    async def run(self, stopping: asyncio.Event) -> None:
        delay = self._retry[0]
        while not stopping.is_set():
            try:
                connection = await asyncpg.connect(self._dsn, timeout=10)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                log.warning(
                    f"{self._name}: cannot connect to listen; retrying", error=repr(error), retry_in=delay
                )
                await wait_any((stopping,), delay)
                delay = min(delay * 2, self._retry[1])
                continue
            delay = self._retry[0]
            try:
                problem = await self._hold(connection, stopping)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), timeout=5)
            if not stopping.is_set():
                log.warning(f"{self._name}: LISTEN connection lost; reconnecting", error=problem)
                self._on_lost()

    async def _hold(self, connection: Any, stopping: asyncio.Event) -> str:
        """Listen on ``connection`` until it is lost or ``stopping``; returns what went wrong."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(self._channel, self._heard)
            self.server_pid = connection.get_server_pid()
            self.listening = True
            self._on_listening()
            while not stopping.is_set():
                await wait_any((stopping, lost), self._keepalive)
                if lost.is_set():
                    return "the connection was closed"
                if not stopping.is_set():
                    await asyncio.wait_for(connection.fetchval("SELECT 1"), timeout=self._keepalive)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            return repr(error)
        return "stopping"


async def wait_any(events: Sequence[asyncio.Event], seconds: float) -> None:
    """Until one of ``events`` is set, or ``seconds`` have passed."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
