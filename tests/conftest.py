"""Test harness: a real PostgreSQL, migrated with Alembic, one database per xdist worker.

The server comes from ``TEST_DATABASE_URL`` (an owner/superuser connection) or, when unset, an embedded
PostgreSQL started once by the controlling process. Each worker creates ``milepost_test_<checkout>_<worker>``
(the checkout's path hashed, so two checkouts can test against one server at once), migrates it as the owner and connects as the application role, exactly as production does.
Tests create their own tenants (random slugs), so committed data of one test never meets another's.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from api.app import create_app
from api.auth.tokens import TokenService
from api.state import AppState
from milepost.credentials import prepare_signing, token_service
from milepost.database import Database, embedded_server, head_revision, libpq_url, migrate, sqlalchemy_url
from milepost.settings import Settings

_EMBEDDED_DIR_ENV = "MILEPOST_TEST_EMBEDDED_DIR"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or os.environ.get("TEST_DATABASE_URL"):
        return
    folder = Path(tempfile.mkdtemp(prefix="milepost-test-pg-"))
    (folder / "pgdata").mkdir()
    server = embedded_server(folder / "pgdata", cleanup_mode="delete")
    config._milepost_embedded = (server, folder)  # type: ignore[attr-defined]
    os.environ["TEST_DATABASE_URL"] = server.get_uri()
    os.environ[_EMBEDDED_DIR_ENV] = str(folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    embedded = getattr(config, "_milepost_embedded", None)
    if embedded is not None:
        server, folder = embedded
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _database_name() -> str:
    checkout = hashlib.sha256(str(Path(__file__).resolve().parent).encode()).hexdigest()[:8]
    return f"milepost_test_{checkout}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return Settings(
        data_dir=data_dir,
        database_url=None,
        log_format="console",
        max_body_bytes=64 * 1024,
    )


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[Database]:
    server_url = sqlalchemy_url(os.environ["TEST_DATABASE_URL"])
    name = _database_name()
    admin = libpq_url(server_url)

    async def recreate() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(recreate())
    owner = server_url.set(database=name)
    migrate(owner, settings)
    yield Database(owner_url=owner, app_url=owner.set(username=settings.app_role, password=None))
    asyncio.run(drop())


@pytest.fixture(scope="session")
async def app_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database.app_url, pool_size=5, max_overflow=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def owner_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database.owner_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(app_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(app_engine, expire_on_commit=False)


@pytest.fixture
async def session(app_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session as the application role inside one transaction that is rolled back after the test."""
    async with app_engine.connect() as conn:
        transaction = await conn.begin()
        async with AsyncSession(bind=conn, join_transaction_mode="create_savepoint") as db:
            yield db
        await transaction.rollback()


@pytest.fixture(scope="session")
async def key_encryption_key(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> bytes:
    """The KEK in the test data folder, with a first signing key in the worker's database."""
    return await prepare_signing(settings, sessions)


@pytest.fixture(scope="session")
async def tokens(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], key_encryption_key: bytes
) -> TokenService:
    """The token service the app uses, loaded as an API process loads it at start-up."""
    return await token_service(settings, sessions, key_encryption_key)


@pytest.fixture(scope="session")
def app_state(
    settings: Settings,
    app_engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    tokens: TokenService,
) -> AppState:
    return AppState(
        settings=settings,
        engine=app_engine,
        sessions=sessions,
        tokens=tokens,
        expected_revision=head_revision(),
    )


@pytest.fixture
def cli_env(database: Database, tmp_path: Path) -> dict[str, str | None]:
    return {
        "DATABASE_URL": libpq_url(database.owner_url),
        "MILEPOST_DATA_DIR": str(tmp_path),
        "APP_DATABASE_URL": None,
        "MILEPOST_USER_PASSWORD": None,
    }


@pytest.fixture
async def client(app_state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(app_state)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
