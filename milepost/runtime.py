"""Process start-up: settings → database (embedded or given) → migrations → app state → uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn

from api.app import create_app
from api.auth.watch import CredentialWatch
from api.live import listen_dsn
from api.state import AppState
from milepost.credentials import prepare_signing, token_service
from milepost.database import (
    Database,
    create_engine,
    head_revision,
    migrate,
    open_database,
    session_factory,
)
from milepost.settings import Settings
from workers.background import run_background
from workers.broker import configure_workers, create_broker, install, run_in_process_worker

log = structlog.get_logger("milepost")

BackgroundTask = Callable[[AppState, asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Runtime:
    settings: Settings
    database: Database


def prepare(settings: Settings, *, migrate_embedded: bool = True) -> Runtime:
    """Open the database; an embedded one is migrated right away (a newcomer has nobody to run migrate)."""
    database = open_database(settings)
    if database.embedded is not None and migrate_embedded:
        migrate(database.owner_url, settings)
    return Runtime(settings=settings, database=database)


def start_workers(runtime: Runtime) -> list[BackgroundTask]:
    """Install the broker; the background tasks: the outbox dispatcher and periodic jobs, then (without
    BROKER_URL) the in-process worker, which stops last so it finishes what the others sent."""
    settings = runtime.settings
    install(create_broker(settings.broker_url, settings))
    configure_workers(settings, runtime.database.app_url)
    background: list[BackgroundTask] = [run_outbox]
    if settings.broker_url is None:
        background.append(run_in_process_worker)
    return background


async def run_outbox(state: AppState, stopping: asyncio.Event) -> None:
    """Background task: the outbox dispatcher and periodic jobs (``workers.background``)."""
    await run_background(state.engine, state.sessions, state.settings, stopping)


async def build_state(runtime: Runtime) -> tuple[AppState, CredentialWatch]:
    """The app state, with signing ready (a first key created if there is none), and the watch that keeps
    this process's revocations and keys current."""
    settings = runtime.settings
    engine = create_engine(runtime.database.app_url, settings)
    sessions = session_factory(engine)
    try:
        kek = await prepare_signing(settings, sessions)
        tokens = await token_service(settings, sessions, kek)
    except BaseException:
        await engine.dispose()
        raise
    watch = CredentialWatch(
        tokens,
        sessions,
        listen_dsn(engine.url),
        kek,
        refresh_seconds=settings.credentials_refresh_seconds,
    )
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        tokens=tokens,
        expected_revision=head_revision(),
    )
    return state, watch


class _Server(uvicorn.Server):
    """uvicorn re-raises a captured SIGINT/SIGTERM after its graceful shutdown, which would interrupt our
    own orderly shutdown (background tasks, engine, embedded database); we have handled the signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


# Young-generation collections every this many allocations (CPython's default is 700). One ingest request
# creates hundreds of thousands of short-lived objects (a 10,000-event message); at the default a request
# triggers thousands of collections, several of which walk everything the process holds (measured: 12% of
# capture's CPU). The older generations keep their defaults.
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collection() -> None:
    """Collect less often, and leave what start-up built (modules, schema, app) out of every collection."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def serve(
    runtime: Runtime,
    host: str,
    port: int,
    background: list[BackgroundTask] | None = None,
    on_ready: Callable[[AppState], Awaitable[None]] | None = None,
) -> None:
    """Run the API (and any background tasks) until SIGINT/SIGTERM, then stop everything in order.

    The broker is set up here for every API process (it enqueues work); without BROKER_URL the workers
    run inside this process too, stopping after the other background tasks so they finish what was queued.
    """
    background = [*(background or []), *start_workers(runtime)]
    async with AsyncExitStack() as stack:
        stack.callback(runtime.database.stop)
        state, watch = await build_state(runtime)
        stack.push_async_callback(state.engine.dispose)
        app = create_app(state)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on", access_log=False)
        server = _Server(config)
        stopping = asyncio.Event()
        tasks = [asyncio.create_task(watch.run(stopping))]
        tasks += [asyncio.create_task(task(state, stopping)) for task in background]
        if on_ready is not None:
            await on_ready(state)
        tune_garbage_collection()
        log.info("listening", url=f"http://{host}:{port}")
        try:
            await server.serve()
        finally:
            stopping.set()
            for task in tasks:
                try:
                    await asyncio.wait_for(task, timeout=10)
                except TimeoutError:
                    task.cancel()
            log.info("stopped")
