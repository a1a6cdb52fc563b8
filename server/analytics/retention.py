"""Retention: AI interactions older than INTERACTION_RETENTION_DAYS and expired generated content go away;
DeleteUserData removes every row that names a user (the statements: `repository.USER_DELETIONS`).

Expired generated quizzes are deleted only when no student's quiz refers to them any more: a student's quiz
(and the answers and mastery evidence hanging off it) is part of their learning record, kept until the
student's data is deleted, after which the shared copy goes on the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from server.analytics import repository as repo
from server.core.db import Database

log = logging.getLogger("tutorstream.analytics")

BATCH = 5_000


async def delete_user_data(database: Database, user_id: str) -> dict[str, int]:
    """Delete everything about `user_id` in one transaction; rows deleted by kind."""
    async with database.transaction() as session:
        counts = await repo.delete_user_rows(session, user_id)
    log.info("deleted the data of a user: %s", ", ".join(f"{k}={v}" for k, v in counts.items() if v))
    return counts


async def _delete_in_batches(database: Database, delete_batch: Callable[[AsyncSession], Awaitable[int]]) -> int:
    total = 0
    while True:
        async with database.transaction() as session:
            deleted = await delete_batch(session)
        total += deleted
        if deleted < BATCH:
            return total


async def run_retention(database: Database, retention_days: int) -> dict[str, int]:
    """One retention pass (idempotent; batches keep each transaction short)."""
    interactions = await _delete_in_batches(
        database, lambda session: repo.delete_old_interactions(session, retention_days, BATCH)
    )
    quizzes = await _delete_in_batches(database, lambda session: repo.delete_expired_generated_quizzes(session, BATCH))
    if interactions or quizzes:
        log.info("retention: deleted %d interactions and %d expired generated quizzes", interactions, quizzes)
    return {"interactions": interactions, "generated_quizzes": quizzes}
