"""The ORM models of the progress and analytics tables match what the migration creates."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

import server.analytics.models
import server.progress.models
from server.core.db import normalize_database_url
from server.core.models import Base

TABLES = {"watch_sessions", "video_events", "interventions", "intervention_acks", "insights"}


def _names(diff: object) -> set[str]:
    if isinstance(diff, list | tuple):
        return {name for item in diff for name in _names(item)}
    table = getattr(diff, "table", None)
    name = getattr(diff, "name", None) if table is None else getattr(table, "name", None)
    if isinstance(name, str):
        return {name}
    return {diff} if isinstance(diff, str) else set()


def test_models_match_the_migration(module_database_url: str) -> None:
    assert server.analytics.models.Insight.__tablename__ in TABLES
    engine = create_engine(normalize_database_url(module_database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert [diff for diff in differences if TABLES & _names(diff)] == []
