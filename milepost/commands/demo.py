"""`milepost demo` (what `make run` starts) and `milepost worker`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from types import FrameType

import click
from sqlalchemy.engine import URL

from milepost.logs import configure_logging
from milepost.settings import Settings

WORKER_NEEDS_BROKER = (
    "milepost worker needs BROKER_URL; without one, `milepost serve`/`demo` run workers in-process"
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Seed two demo tenants (once) and run the API with a simulated carrier feed."""
    from milepost import demo as demo_data
    from milepost.cli import load_settings, refuse_credentials_errors  # milepost.cli imports this module
    from milepost.database import create_engine, session_factory
    from milepost.runtime import BackgroundTask, prepare, serve

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    runtime = prepare(settings)

    async def seed() -> list[demo_data.SeededTenant]:
        engine = create_engine(runtime.database.app_url, settings)
        try:
            return await demo_data.seed(session_factory(engine))
        finally:
            await engine.dispose()

    # until serve() takes over, stopping the embedded database is ours to do
    try:
        seeded = asyncio.run(seed())
        credentials = demo_data.remember_credentials(settings.data_dir, seeded)
    except KeyboardInterrupt:
        runtime.database.stop()
        raise SystemExit(130) from None
    except BaseException:
        runtime.database.stop()
        raise

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - display only
    shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host
    text = demo_data.banner(
        seeded,
        credentials,
        base_url=f"http://{shown_host}:{port}",
        feed_interval_seconds=settings.demo_feed_interval_seconds,
        workers="in-process" if settings.broker_url is None else "`milepost worker` processes on BROKER_URL",
    )

    async def on_ready(_state: object) -> None:
        click.echo(text)

    # the feed stops first (nothing new is enqueued), then the in-process worker finishes what it holds
    background: list[BackgroundTask] = [demo_data.run_feed]
    with contextlib.suppress(KeyboardInterrupt), refuse_credentials_errors():  # serve stops what it started
        asyncio.run(serve(runtime, host, port, background=background, on_ready=on_ready))


@click.command()
@click.option("--processes", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--queues", "-Q", multiple=True, help="Only these queues (repeatable); default: all.")
def worker(processes: int, threads: int, queues: tuple[str, ...]) -> None:
    """Run Dramatiq worker processes against BROKER_URL, and this command's one outbox dispatcher."""
    from milepost.cli import load_settings

    settings = load_settings()
    if not settings.broker_url:
        click.echo(WORKER_NEEDS_BROKER, err=True)
        raise SystemExit(2)
    configure_logging(settings.log_level, settings.log_format)

    from milepost.database import libpq_url
    from milepost.runtime import prepare
    from workers.broker import ACTOR_MODULES

    runtime = prepare(settings)  # an embedded database is started (or joined) here, not in each child
    env = {**os.environ, "APP_DATABASE_URL": libpq_url(runtime.database.app_url)}
    command = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.broker:configure_from_environment",
        *ACTOR_MODULES,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--skip-logging",
    ]
    if queues:
        command += ["--queues", *queues]
    code = 1
    try:
        process = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and arguments
        code = asyncio.run(_supervise(settings, runtime.database.app_url, process))
    finally:
        runtime.database.stop()
    raise SystemExit(code)


async def _supervise(settings: Settings, app_url: URL, process: subprocess.Popen[bytes]) -> int:
    """Run the background loop (outbox dispatcher, periodic jobs) here, once for all the worker
    processes, until they exit; a SIGINT/SIGTERM goes to them and stops the loop."""
    from milepost.database import create_engine, session_factory
    from workers.background import run_background
    from workers.broker import create_broker, install

    install(create_broker(settings.broker_url, settings))
    engine = create_engine(app_url, settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def forward(signum: int, _frame: FrameType | None) -> None:
        # dramatiq stops gracefully on either; from a terminal it may get a SIGINT twice, which is fine
        process.send_signal(signum)
        loop.call_soon_threadsafe(stopping.set)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    background = asyncio.create_task(run_background(engine, session_factory(engine), settings, stopping))
    try:
        code = await asyncio.to_thread(process.wait)
    finally:
        stopping.set()
        await background
        await engine.dispose()
    return code


COMMANDS: list[click.Command] = [demo, worker]
