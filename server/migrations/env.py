"""Alembic environment for tutorstream.

Migrations are hand-written (no autogenerate), so nothing model-specific is imported here and
each domain can add its revision without touching this file. The database URL comes from
`server.core.db.alembic_config(url)`, or from `sqlalchemy.url` / `DATABASE_URL` when Alembic is
driven by other means. Online runs use a synchronous psycopg 3 engine and hold a PostgreSQL
advisory lock, so replicas that start at the same time migrate one after another.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool, text

from server.core.db import MIGRATION_LOCK_KEY, normalize_database_url


def _database_url() -> str:
    config = context.config
    url = (
        config.attributes.get("database_url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("DATABASE_URL")
    )
    if not url:
        raise RuntimeError("no database URL: use server.core.db.alembic_config(url) or set DATABASE_URL")
    return normalize_database_url(str(url))


def run_offline() -> None:
    context.configure(url=_database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                context.configure(connection=connection, target_metadata=None)
                with context.begin_transaction():
                    context.run_migrations()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
