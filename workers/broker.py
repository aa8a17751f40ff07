"""The Dramatiq broker, chosen by ``BROKER_URL``, and the per-process context actors run in.

- ``amqp://`` → RabbitMQ with publisher confirms (production);
- ``redis://`` → Redis;
- unset → an in-process broker: messages stay in this process and :func:`start_in_process_worker` runs
  the worker threads next to the API (what ``milepost serve``/``demo`` do on a newcomer's machine).

Actors are declared with :func:`actor` and are re-bound to whichever broker :func:`install` makes current,
so the modules that declare them do not need to know the broker at import time.

Actors are ``async def`` and run on the worker's own event loop (the AsyncIO middleware's thread), never on
the API's; so they use their own engine, from :func:`configure_workers`, created lazily on that loop and
disposed when the worker shuts down.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, CurrentMessage, Middleware, Retries, default_middleware
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.db import TenantScope, scoped_transaction
from domain.jobs.service import FailedJob, record_dead_letter
from milepost.database import create_engine, session_factory
from milepost.settings import Settings
from workers.retries import JobRetries, RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")

# modules whose import declares actors; every worker process imports them
ACTOR_MODULES = ("workers.actors", "workers.notify")

_lock = threading.Lock()
_current: dramatiq.Broker | None = None
_actors: dict[str, dramatiq.Actor[Any, Any]] = {}


# -- broker -------------------------------------------------------------------------------------------


def create_broker(broker_url: str | None, settings: Settings | None = None) -> dramatiq.Broker:
    """A broker for ``broker_url`` with our middleware stack; ``None`` gives the in-process broker.

    ``settings`` gives the retry defaults (``MILEPOST_JOB_*``); without them, the settings' defaults.
    """
    settings = settings or Settings.model_construct()  # model_construct: the defaults, not the environment
    policy = RetryPolicy(
        max_attempts=settings.job_max_attempts,
        min_backoff_ms=settings.job_min_backoff_ms,
        max_backoff_ms=settings.job_max_backoff_ms,
    )
    middleware: list[Middleware] = [
        # our attempt counter and dead letters take the place of Dramatiq's Retries
        *(JobRetries(policy, keep_dead_letter) if m is Retries else m() for m in default_middleware),
        AsyncIO(),
        CurrentMessage(),
        # after AsyncIO on purpose: "after" hooks run in reverse order, so the engine is disposed while the
        # event loop it lives on is still running
        WorkerDatabase(),
    ]
    if broker_url is None:
        return StubBroker(middleware=middleware)
    if broker_url.startswith(("amqp://", "amqps://")):
        # confirm_delivery: send() returns only once RabbitMQ has the message, so nothing is lost silently
        return RabbitmqBroker(url=broker_url, confirm_delivery=True, middleware=middleware)
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisBroker(url=broker_url, middleware=middleware)  # type: ignore[no-untyped-call]
    raise ValueError(f"BROKER_URL must be an amqp:// (RabbitMQ) or redis:// URL, got {broker_url!r}")


def install(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Make ``broker`` the process's broker and bind every declared actor to it."""
    global _current
    with _lock:
        _current = broker
        dramatiq.set_broker(broker)
    for module in ACTOR_MODULES:
        importlib.import_module(module)
    with _lock:
        for declared in _actors.values():
            declared.broker = broker
            broker.declare_actor(declared)
    return broker


def current_broker() -> dramatiq.Broker:
    """The installed broker; an in-process one when nothing was installed yet (imports, unit tests)."""
    global _current
    with _lock:
        if _current is None:
            _current = create_broker(None)
            dramatiq.set_broker(_current)
        return _current


def actor(
    name: str, *, queue_name: str = "default", **options: Any
) -> Callable[[Callable[P, Awaitable[R]]], dramatiq.Actor[P, R]]:
    """Declare an ``async def`` actor named ``<concept>.<verb>`` (e.g. ``demo.advance_feed``).

    Messages carry ids and the tenant id only; the actor reloads what it needs and must be safe to run
    twice for the same message (redelivery after a crash, retries).
    """
    concept, _, verb = name.partition(".")
    if not concept or not verb:
        raise ValueError(f"actor names are <concept>.<verb>, got {name!r}")

    def declare(fn: Callable[P, Awaitable[R]]) -> dramatiq.Actor[P, R]:
        broker = current_broker()
        unknown = set(options) - broker.actor_options
        if unknown:
            raise ValueError(f"actor {name}: unknown option(s) {', '.join(sorted(unknown))}")
        declared: dramatiq.Actor[P, R] = dramatiq.Actor(
            fn, broker=broker, actor_name=name, queue_name=queue_name, priority=0, options=options
        )
        _actors[name] = declared
        return declared

    return declare


def start_in_process_worker(
    broker: dramatiq.Broker | None = None, *, threads: int = 2, idle_timeout_ms: int = 200
) -> dramatiq.Worker:
    """Run a worker in this process (threads) on ``broker`` (default: the current one); ``stop()`` it.

    The short idle timeout keeps ``stop()`` quick: idle threads notice the stop within that time.
    """
    worker = dramatiq.Worker(
        broker or current_broker(), worker_threads=threads, worker_timeout=idle_timeout_ms
    )
    worker.start()
    return worker


async def run_in_process_worker(_state: object, stopping: asyncio.Event) -> None:
    """A background task for ``milepost.runtime.serve``: an in-process worker until ``stopping`` is set.

    ``stop()`` lets the message in hand finish, so put this task after the ones that enqueue.
    """
    worker = await asyncio.to_thread(start_in_process_worker)
    try:
        await stopping.wait()
    finally:
        await asyncio.to_thread(worker.stop)


# -- per-process context ------------------------------------------------------------------------------


@dataclass
class WorkerContext:
    """What actors in this process share: settings and the application role's database URL.

    The engine is made on first use on the worker's event loop (asyncpg connections belong to one loop).
    """

    settings: Settings
    app_url: URL
    _engine: AsyncEngine | None = None
    _sessions: async_sessionmaker[AsyncSession] | None = None

    def sessions(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            self._engine = create_engine(self.app_url, self.settings)
            self._sessions = session_factory(self._engine)
        return self._sessions

    async def dispose(self) -> None:
        engine, self._engine, self._sessions = self._engine, None, None
        if engine is not None:
            await engine.dispose()


_context: WorkerContext | None = None


def configure_workers(settings: Settings, app_url: URL | str) -> WorkerContext:
    """Set this process's worker context (call once per process, before the worker starts)."""
    global _context
    url = app_url if isinstance(app_url, URL) else _asyncpg_url(app_url)
    _context = WorkerContext(settings=settings, app_url=url)
    return _context


def worker_context() -> WorkerContext:
    if _context is None:
        raise RuntimeError("configure_workers(settings, app_url) was not called in this process")
    return _context


def _asyncpg_url(url: str) -> URL:
    return make_url(url).set(drivername="postgresql+asyncpg")


class WorkerDatabase(Middleware):
    """Disposes the worker context's engine on the worker's event loop when the worker shuts down."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if _context is not None and loop_thread is not None:
            loop_thread.run_coroutine(_context.dispose())


def keep_dead_letter(tenant_id: uuid.UUID, failed: FailedJob) -> None:
    """Record a dead letter from a worker thread, on the worker's event loop (where its engine lives)."""
    loop_thread = get_event_loop_thread()
    if loop_thread is None:
        raise RuntimeError("dead letters are recorded inside a worker (the AsyncIO middleware's loop)")
    loop_thread.run_coroutine(_record_dead_letter(TenantScope(tenant_id), failed))


async def _record_dead_letter(scope: TenantScope, failed: FailedJob) -> None:
    async with scoped_transaction(worker_context().sessions(), scope) as session:
        await record_dead_letter(session, scope, failed)


# -- `milepost worker` processes ----------------------------------------------------------------------


def configure_from_environment() -> None:
    """Entry point for each ``dramatiq`` worker process that ``milepost worker`` starts.

    It reads the same environment as every ``milepost`` command; ``milepost worker`` passes the resolved
    ``APP_DATABASE_URL`` down, so the children never start a database of their own.
    """
    from milepost.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    if not settings.broker_url:
        raise SystemExit("worker processes need BROKER_URL")
    if not settings.app_database_url:
        raise SystemExit("worker processes need APP_DATABASE_URL (milepost worker sets it)")
    install(create_broker(settings.broker_url, settings))
    configure_workers(settings, settings.app_database_url)
