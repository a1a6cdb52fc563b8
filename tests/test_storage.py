"""Storage foundation against a real embedded PostgreSQL: migrations, restarts, several processes."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from server.agents.models import Preference  # also registers `preferences` on Base.metadata
from server.config import Settings
from server.core.db import (
    Database,
    alembic_config,
    current_revision,
    downgrade_migrations,
    head_revision,
    libpq_conninfo,
    migrate_main,
    normalize_database_url,
    run_migrations,
)
from server.core.embedded_pg import EmbeddedPostgres
from server.core.models import Base, User
from tests.support.postgres import (
    create_fresh_database,
    create_migrated_database,
    drop_database,
    start_embedded_for_tests,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
FOUNDATION_TABLES = {"users", "preferences"}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = start_embedded_for_tests(tmp_path_factory.mktemp("storage"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def migrated_url(embedded: EmbeddedPostgres) -> Iterator[str]:
    url = create_migrated_database(embedded.admin_url, "storage")
    yield url
    drop_database(embedded.admin_url, url)


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    database = Database(migrated_url, pool_size=2)
    yield database
    await database.dispose()


def run_python(code: str) -> str:
    """Run `code` in a fresh interpreter (another process) and return its stdout."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def server_accepts_connections(url: str) -> bool:
    try:
        with psycopg.connect(libpq_conninfo(url), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5433/app", "postgresql+psycopg://u:p@db:5433/app"),
        ("postgresql://u@db/app?sslmode=require", "postgresql+psycopg://u@db/app?sslmode=require"),
        ("postgresql+psycopg://u@/app?host=/run/pg", "postgresql+psycopg://u@/app?host=/run/pg"),
        ("postgresql://u:p%40ss@db/app", "postgresql+psycopg://u:p%40ss@db/app"),
    ],
)
def test_database_urls_are_normalized_to_psycopg(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_other_drivers_are_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        normalize_database_url("mysql://u@db/app")


def test_conninfo_keeps_socket_host_and_password() -> None:
    conninfo = libpq_conninfo("postgresql://u:p%40ss@/app?host=/run/pg dir&port=5433")
    assert "host='/run/pg dir'" in conninfo
    assert "port=5433" in conninfo
    assert "password=p@ss" in conninfo
    assert "dbname=app" in conninfo


# --- migrations ----------------------------------------------------------------------------------


def test_migration_history_is_one_numbered_chain() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    revisions = list(reversed(list(scripts.walk_revisions())))  # walk_revisions goes head → base
    assert revisions[0].revision == "0001"
    assert revisions[0].down_revision is None
    for previous, current in itertools.pairwise(revisions):
        assert current.down_revision == previous.revision
    for revision in revisions:
        assert revision.path is not None
        assert re.fullmatch(rf"{revision.revision}_[a-z0-9_]+\.py", Path(revision.path).name)
    assert head_revision() == revisions[-1].revision


async def test_migrations_create_tables_and_vector_support(db: Database, migrated_url: str) -> None:
    async with db.session() as session:
        tables = set(
            (
                await session.execute(
                    text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
                )
            ).scalars()
        )
        extensions = set((await session.execute(text("SELECT extname FROM pg_extension"))).scalars())
        distance = (await session.execute(text("SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector"))).scalar_one()

    assert tables >= FOUNDATION_TABLES
    assert "vector" in extensions
    assert 0 < distance < 0.01
    assert await db.current_revision() == head_revision()
    assert current_revision(migrated_url) == head_revision()


def test_models_match_the_migrations(migrated_url: str) -> None:
    engine = create_engine(normalize_database_url(migrated_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    relevant = [diff for diff in differences if FOUNDATION_TABLES & set(_tables_named_in(diff))]
    assert relevant == []


def _tables_named_in(diff: object) -> list[str]:
    """Names in an autogenerate diff: its strings plus the table of any schema object in it."""
    if isinstance(diff, list | tuple):
        return [name for item in diff for name in _tables_named_in(item)]
    table = getattr(diff, "table", None)
    name = getattr(diff, "name", None) if table is None else getattr(table, "name", None)
    if isinstance(name, str):
        return [name]
    return [diff] if isinstance(diff, str) else []


def test_downgrade_to_base_and_upgrade_again(embedded: EmbeddedPostgres) -> None:
    url = create_fresh_database(embedded.admin_url, "roundtrip")
    try:
        run_migrations(url)
        downgrade_migrations(url, "base")
        assert current_revision(url) is None
        with psycopg.connect(libpq_conninfo(url)) as conn:
            leftover = conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_name <> 'alembic_version'"
            ).fetchall()
        assert leftover == []
        run_migrations(url)
        assert current_revision(url) == head_revision()
    finally:
        drop_database(embedded.admin_url, url)


def test_courses_ingested_before_ownership_belong_to_their_first_instructor(embedded: EmbeddedPostgres) -> None:
    url = create_fresh_database(embedded.admin_url, "ownership")
    try:
        run_migrations(url, "0010")
        with psycopg.connect(libpq_conninfo(url)) as conn:
            conn.execute(
                "INSERT INTO users (id, role) VALUES ('first', 'instructor'), ('second', 'instructor'), "
                "('seeder', 'service')"
            )
            jobs = [
                ("j1", "second", "algebra", "2026-01-02"),
                ("j2", "first", "algebra", "2026-01-01"),
                ("j3", "seeder", "demo", "2026-01-01"),
                ("j4", "second", "geometry", "2026-01-03"),
            ]
            for job_id, user, course, day in jobs:
                conn.execute(
                    "INSERT INTO ingest_jobs (id, request_id, requested_by, request_hash, video_id, course_id, "
                    "format, content_hash, create_time) VALUES (%s, %s, %s, '', 'v', %s, 'webvtt', '', %s)",
                    (job_id, job_id, user, course, day),
                )
        run_migrations(url)
        with psycopg.connect(libpq_conninfo(url)) as conn:
            owners = conn.execute(
                "SELECT course_id, user_id, role, granted_by FROM course_instructors ORDER BY course_id"
            ).fetchall()
        assert owners == [("algebra", "first", "owner", "first"), ("geometry", "second", "owner", "second")]
    finally:
        drop_database(embedded.admin_url, url)


async def test_preferences_defaults_and_cascade(db: Database) -> None:
    async with db.transaction() as session:
        session.add(User(id="student-defaults", role="student", tier="free"))
        await session.flush()
        session.add(Preference(user_id="student-defaults"))

    async with db.session() as session:
        preference = await session.get(Preference, "student-defaults")
        user = await session.get(User, "student-defaults")
    assert preference is not None and user is not None
    assert (preference.personality, preference.response_length, preference.quiz_frequency) == (
        "friendly",
        "medium",
        "medium",
    )
    assert preference.auto_hints_enabled and preference.reflection_prompts_enabled
    assert user.create_time.tzinfo is not None

    async with db.transaction() as session:
        await session.execute(delete(User).where(User.id == "student-defaults"))
    async with db.session() as session:
        assert await session.get(Preference, "student-defaults") is None


async def test_failed_transaction_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            session.add(User(id="rolled-back", role="student", tier="free"))
            await session.flush()
            raise RuntimeError("abort")
    async with db.session() as session:
        assert await session.get(User, "rolled-back") is None


# --- several engines and processes ---------------------------------------------------------------


async def test_two_databases_and_another_process_share_the_server(db: Database, migrated_url: str) -> None:
    other = Database(migrated_url, pool_size=1)
    try:
        async with db.transaction() as session:
            session.add(User(id="shared-a", role="student", tier="free"))
        async with other.session() as session:
            seen = await session.get(User, "shared-a")
        assert seen is not None and seen.tier == "free"

        output = run_python(
            f"""
            from sqlalchemy import create_engine, text
            engine = create_engine({migrated_url!r})
            with engine.begin() as conn:
                role = conn.execute(text("SELECT role FROM users WHERE id = 'shared-a'")).scalar_one()
                conn.execute(text("INSERT INTO users (id, role) VALUES ('shared-b', 'instructor')"))
            print(role)
            """
        )
        assert output == "student"

        async with db.session() as session:
            written = await session.get(User, "shared-b")
        assert written is not None and written.role == "instructor"
    finally:
        await other.dispose()


def test_a_second_owner_process_attaches_and_leaves_the_server_running(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = tmp_path_factory.mktemp("shared") / "pg"
    owner = EmbeddedPostgres(data_dir)
    url = owner.start()
    try:
        with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (body text)")
            conn.execute("INSERT INTO notes VALUES ('from the first process')")

        output = run_python(
            f"""
            import json, psycopg
            from server.core.db import libpq_conninfo
            from server.core.embedded_pg import EmbeddedPostgres
            embedded = EmbeddedPostgres({str(data_dir)!r})
            url = embedded.start()
            with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
                body = conn.execute("SELECT body FROM notes").fetchone()[0]
                conn.execute("INSERT INTO notes VALUES ('from the second process')")
            owners = embedded.owner_pids()
            embedded.stop()
            print(json.dumps({{"url": url, "body": body, "owners": len(owners)}}))
            """
        )
        reported = json.loads(output)
        assert reported == {"url": url, "body": "from the first process", "owners": 2}

        # The second process released its handle; the server is still ours and still up.
        with psycopg.connect(libpq_conninfo(url)) as conn:
            bodies = {row[0] for row in conn.execute("SELECT body FROM notes")}
        assert bodies == {"from the first process", "from the second process"}
        assert owner.owner_pids() == [os.getpid()]
    finally:
        owner.stop()
    assert not server_accepts_connections(url)
    assert owner.owner_pids() == []


def test_owners_that_died_do_not_keep_the_server_alive(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("crashed") / "pg"
    # A process that attaches and then dies without releasing (os._exit skips atexit).
    run_python(
        f"""
        import os
        from server.core.embedded_pg import EmbeddedPostgres
        EmbeddedPostgres({str(data_dir)!r}).start()
        os._exit(0)
        """
    )
    survivor = EmbeddedPostgres(data_dir)
    url = survivor.start()  # attaches to the postmaster the dead process left running
    assert server_accepts_connections(url)
    survivor.stop()
    assert not server_accepts_connections(url)


# --- restarts and settings -----------------------------------------------------------------------


def test_restart_keeps_data(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("restart") / "pg"
    first = EmbeddedPostgres(data_dir)
    url = first.start()
    with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (value int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    first.stop()
    assert not first.is_started
    assert not server_accepts_connections(url)

    second = EmbeddedPostgres(data_dir)
    try:
        assert second.start() == url
        with psycopg.connect(libpq_conninfo(url)) as conn:
            row = conn.execute("SELECT value FROM kept").fetchone()
        assert row == (42,)
    finally:
        second.stop()


async def test_settings_without_database_url_use_the_embedded_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = Settings(data_dir=tmp_path_factory.mktemp("settings"), database_url=None, db_pool_size=2)
    assert migrate_main(settings) == head_revision()

    db = await Database.from_settings(settings)
    try:
        assert db.embedded is not None
        assert make_url(db.url).query["host"] == str(settings.data_dir.resolve() / "pg")
        assert await db.ping()
        async with db.session() as session:
            count = (await session.execute(select(User))).scalars().all()
        assert count == []
    finally:
        await db.dispose()
    assert not server_accepts_connections(db.url)


async def test_ping_reports_an_unreachable_database(tmp_path: Path) -> None:
    db = Database(f"postgresql://postgres@/nowhere?host={tmp_path}", pool_size=1)
    try:
        assert not await db.ping(within_seconds=2.0)
    finally:
        await db.dispose()


# --- pooled connections ----------------------------------------------------------------------------


async def _own_backend(database: Database) -> int:
    async with database.reader() as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(db: Database, pid: int) -> None:
    async with db.reader() as session:
        assert (await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()


async def test_an_idle_pooled_connection_found_closed_is_replaced(db: Database, migrated_url: str) -> None:
    pooled = Database(migrated_url, pool_size=1, max_overflow=0, ping_after_idle_seconds=0.0)
    try:
        closed = await _own_backend(pooled)
        await _terminate(db, closed)
        assert await _own_backend(pooled) != closed
    finally:
        await pooled.dispose()


async def test_a_connection_returned_a_moment_ago_is_not_pinged(db: Database, migrated_url: str) -> None:
    # Without the ping the closed connection is only found by the caller's own statement: what the idle
    # threshold saves is a round trip on every checkout of a busy pool.
    pooled = Database(migrated_url, pool_size=1, max_overflow=0, ping_after_idle_seconds=3600.0)
    try:
        closed = await _own_backend(pooled)
        await _terminate(db, closed)
        with pytest.raises(OperationalError):
            await _own_backend(pooled)
        assert await _own_backend(pooled) != closed
    finally:
        await pooled.dispose()
