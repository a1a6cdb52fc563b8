"""The agents' ORM classes describe exactly the tables their migration creates."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

import server.agents.models  # noqa: F401  (registers the agents' tables on Base.metadata)
from server.core.db import normalize_database_url
from server.core.models import Base
from tests.support.postgres import database_url

AGENT_TABLES = {"generated_quizzes", "quiz_items", "quizzes", "quiz_attempts", "concept_mastery"}


def _tables_named_in(diff: object) -> set[str]:
    if isinstance(diff, list | tuple):
        return {name for item in diff for name in _tables_named_in(item)}
    table = getattr(diff, "table", None)
    name = getattr(diff, "name", None) if table is None else getattr(table, "name", None)
    return {name} if isinstance(name, str) else ({diff} if isinstance(diff, str) else set())


def test_agent_models_match_the_migration(embedded_pg: object, template_database: str) -> None:
    admin_url = embedded_pg.admin_url  # type: ignore[attr-defined]
    engine = create_engine(normalize_database_url(database_url(admin_url, template_database)))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    tables = {table for table in Base.metadata.tables if table in AGENT_TABLES}
    assert tables == AGENT_TABLES
    assert [diff for diff in differences if AGENT_TABLES & _tables_named_in(diff)] == []
