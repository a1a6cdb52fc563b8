"""Database access: URL resolution, the async engine and sessions, Alembic migrations, health.

`Database.from_settings()` uses `DATABASE_URL` when it is set and otherwise starts (or attaches
to) the embedded PostgreSQL in `DATA_DIR/pg`. Sessions follow the unit-of-work split of the
domain packages: repositories flush, services own the transaction (`async with db.transaction()`).
Reads use `db.reader()`: its statements run in autocommit, so a read is one round trip instead of
BEGIN + query + ROLLBACK. Under PostgreSQL's default READ COMMITTED each statement of a transaction
takes its own snapshot anyway, so reads see exactly what they would inside a transaction.

A pooled connection is pinged on checkout only when it sat idle for `PING_AFTER_IDLE_SECONDS`: one that was
in use a moment ago is alive, and a ping on every checkout (SQLAlchemy's `pool_pre_ping`) would add a round
trip to every request; one found dead is replaced before the caller sees it.

Migrations are hand-written Alembic scripts in `server/migrations/versions`; Alembic is configured
in code (no ini file) and runs with a synchronous psycopg 3 engine in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg.conninfo import make_conninfo
from sqlalchemy import create_engine, event, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from server.core.embedded_pg import EmbeddedPostgres

if TYPE_CHECKING:
    from server.config import Settings

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Session-level advisory lock held while migrating, so replicas that start together take turns.
MIGRATION_LOCK_KEY = 7_366_126_021_843_812_161

# A connection returned to the pool longer ago than this is pinged before it is handed out again.
PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED_AT = "tutorstream_returned_at"

_DRIVER = "postgresql+psycopg"
_ACCEPTED_SCHEMES = frozenset({"postgres", "postgresql", _DRIVER})


# --- URLs ----------------------------------------------------------------------------------------


def normalize_database_url(url: str) -> str:
    """Return `url` with the psycopg 3 driver: accepts postgres://, postgresql://, postgresql+psycopg://."""
    parsed = make_url(url)
    if parsed.drivername == _DRIVER:
        return url
    if parsed.drivername not in _ACCEPTED_SCHEMES:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; expected postgresql://")
    return parsed.set(drivername=_DRIVER).render_as_string(hide_password=False)


def libpq_conninfo(url: str) -> str:
    """A libpq `key=value` connection string for `url`, for psycopg.connect() and psql."""
    parsed = make_url(normalize_database_url(url))
    params: dict[str, str | int | None] = {
        "host": parsed.host,
        "port": parsed.port,
        "dbname": parsed.database,
        "user": parsed.username,
        "password": parsed.password,
    }
    for key, value in parsed.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    return make_conninfo("", **{key: value for key, value in params.items() if value is not None})


# --- migrations ----------------------------------------------------------------------------------


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config for server/migrations; `url` is what env.py migrates."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        # Passed as an attribute, not `sqlalchemy.url`, so '%' in passwords needs no escaping.
        config.attributes["database_url"] = normalize_database_url(url)
    return config


def run_migrations(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (blocking)."""
    command.upgrade(alembic_config(url), revision)


def downgrade_migrations(url: str, revision: str) -> None:
    """Downgrade the database at `url` to `revision` (blocking; "base" removes everything)."""
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest revision in server/migrations (raises if the history has several heads)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, or None before the first migration."""
    engine = create_engine(normalize_database_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def migrate_main(settings: Settings) -> str | None:
    """`tutorstream-server migrate`: bring the configured database to head; returns its revision."""
    embedded: EmbeddedPostgres | None = None
    if settings.database_url:
        url = settings.database_url
    else:
        embedded = EmbeddedPostgres.for_settings(settings)
        url = embedded.start()
    try:
        run_migrations(url)
        revision = current_revision(url)
    finally:
        if embedded is not None:
            embedded.stop()
    logger.info("database migrated: revision=%s", revision)
    return revision


# --- the async engine ----------------------------------------------------------------------------


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout when it was returned more than `idle_seconds` ago; a dead one is
    reported as a disconnect, which makes the pool discard it and check out another."""
    sync_engine = engine.sync_engine

    def _note_time(dbapi_connection: Any, entry: ConnectionPoolEntry) -> None:
        entry.info[_RETURNED_AT] = time.monotonic()

    # A new connection counts as just returned: it was opened a moment ago.
    event.listen(sync_engine, "connect", _note_time)
    event.listen(sync_engine, "checkin", _note_time)

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, entry: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        if time.monotonic() - entry.info.get(_RETURNED_AT, 0.0) <= idle_seconds:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("a pooled connection was found closed") from error


class Database:
    """The async engine and session factory for one database, plus the embedded server it may own."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        embedded: EmbeddedPostgres | None = None,
        echo: bool = False,
        ping_after_idle_seconds: float = PING_AFTER_IDLE_SECONDS,
    ) -> None:
        self._url = normalize_database_url(url)
        self._embedded = embedded
        self._engine: AsyncEngine = create_async_engine(
            self._url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            echo=echo,
        )
        _ping_when_idle(self._engine, ping_after_idle_seconds)
        self._sessionmaker = async_sessionmaker(self._engine, expire_on_commit=False)
        # Shares the pool; psycopg switches autocommit on checkout and back on return without a round trip.
        self._autocommit_engine = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._readers = async_sessionmaker(self._autocommit_engine, expire_on_commit=False)
        self._disposed = False

    @classmethod
    async def from_settings(cls, settings: Settings) -> Database:
        """Connect to `DATABASE_URL`, or start the embedded server in `DATA_DIR/pg` and use it."""
        if settings.database_url:
            return cls(settings.database_url, pool_size=settings.db_pool_size)
        embedded = EmbeddedPostgres.for_settings(settings)
        url = await embedded.start_async()
        try:
            return cls(url, pool_size=settings.db_pool_size, embedded=embedded)
        except BaseException:
            await embedded.stop_async()
            raise

    @property
    def url(self) -> str:
        return self._url

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self._sessionmaker

    @property
    def embedded(self) -> EmbeddedPostgres | None:
        """The embedded server this object started, if it did."""
        return self._embedded

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session without an open transaction; anything not committed is rolled back on exit."""
        async with self._sessionmaker() as session:
            yield session

    @contextlib.asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: every statement runs on its own, with no BEGIN and no ROLLBACK.
        Do not write through it; a write here would commit at once, statement by statement."""
        async with self._readers() as session:
            yield session

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose statements each commit on their own: for a write that is one statement
        (a CTE can hold several changes), which then costs one round trip."""
        async with self._autocommit_engine.connect() as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction: commits when the block succeeds, rolls back when it raises."""
        async with self._sessionmaker() as session, session.begin():
            yield session

    async def ping(self, within_seconds: float = 2.0) -> bool:
        """True when a round trip to the database succeeds within `within_seconds`."""
        try:
            async with asyncio.timeout(within_seconds), self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            logger.warning("database ping failed: %s", type(exc).__name__)
            return False
        return True

    async def run_migrations(self, revision: str = "head") -> None:
        await asyncio.to_thread(run_migrations, self._url, revision)

    async def current_revision(self) -> str | None:
        return await asyncio.to_thread(current_revision, self._url)

    async def dispose(self) -> None:
        """Close pooled connections and release the embedded server (idempotent)."""
        if self._disposed:
            return
        self._disposed = True
        await self._engine.dispose()
        if self._embedded is not None:
            await self._embedded.stop_async()
