"""Real PostgreSQL for tests: one embedded server per session, a fresh database per need.

Typical session setup::

    embedded = start_embedded_for_tests(tmp_path_factory.mktemp("postgres"))
    url = create_migrated_database(embedded.admin_url, "tutorstream_test")
    ...
    drop_database(embedded.admin_url, url)
    embedded.stop()

Databases are cheap (~0.1 s to create); `template=` clones an already migrated database, which is
faster than migrating again when many tests each want their own.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from server.core.db import libpq_conninfo, normalize_database_url, run_migrations
from server.core.embedded_pg import EmbeddedPostgres

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


def start_embedded_for_tests(base_dir: Path) -> EmbeddedPostgres:
    """Start an embedded server with its cluster in `base_dir/pg`; the caller stops it."""
    embedded = EmbeddedPostgres(base_dir / "pg", database="postgres")
    embedded.start()
    return embedded


def database_name(url: str) -> str:
    """The database a SQLAlchemy URL names (to pass as another database's `template=`)."""
    name = make_url(url).database
    if not name:
        raise ValueError("the URL names no database")
    return name


def create_fresh_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """CREATE DATABASE `<name>_<random>` (optionally from `template`) and return its SQLAlchemy URL."""
    if not _NAME.match(name):
        raise ValueError(f"database name prefix must be a short lowercase identifier, got {name!r}")
    database = f"{name}_{uuid.uuid4().hex[:10]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database))
    if template is not None:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    with psycopg.connect(libpq_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(statement)
    return database_url(admin_url, database)


def create_migrated_database(admin_url: str, name: str) -> str:
    """A fresh database with every migration applied."""
    url = create_fresh_database(admin_url, name)
    run_migrations(url)
    return url


def database_url(admin_url: str, database: str) -> str:
    """`admin_url` pointed at another database on the same server."""
    return make_url(normalize_database_url(admin_url)).set(database=database).render_as_string(hide_password=False)


def drop_database(admin_url: str, url_or_name: str) -> None:
    """DROP DATABASE (by URL or name), disconnecting whoever is still connected to it."""
    name = make_url(url_or_name).database if "://" in url_or_name else url_or_name
    if not name:
        raise ValueError(f"no database name in {url_or_name!r}")
    with psycopg.connect(libpq_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
