"""Fixtures for the limits tests: a Database on a fresh migrated database, settings and budgets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.config import Settings
from server.core.db import Database
from server.limits.budget import TokenBudget
from server.limits.policy import LimitPolicy
from server.limits.windows import Clock, utc_now
from tests.conftest import make_settings


@pytest.fixture
async def database(fresh_database_url: str) -> AsyncIterator[Database]:
    db = Database(fresh_database_url, pool_size=5, max_overflow=20)
    yield db
    await db.dispose()


def limits_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    return make_settings(tmp_path, database_url, **overrides)


def budget_for(database: Database, settings: Settings, *, clock: Clock = utc_now) -> TokenBudget:
    return TokenBudget(
        database,
        LimitPolicy(settings),
        reservation_ttl_seconds=settings.budget_reservation_ttl_seconds,
        clock=clock,
    )
