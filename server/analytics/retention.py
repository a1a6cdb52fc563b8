"""Retention: AI interactions older than INTERACTION_RETENTION_DAYS and expired generated content go away;
DeleteUserData removes every row that names a user.

Expired generated quizzes are deleted only when no student's quiz refers to them any more: a student's quiz
(and the answers and mastery evidence hanging off it) is part of their learning record, kept until the
student's data is deleted, after which the shared copy goes on the next run.
"""

from __future__ import annotations

import logging

from sqlalchemy import text

from server.core.db import Database

log = logging.getLogger("tutorstream.analytics")

BATCH = 5_000

# Every table that names a user, children before parents, as (kind reported, statement). Keep in step with
# the migrations: tests/analytics/test_retention.py fails when a table with a user column is missing here.
USER_DELETIONS: tuple[tuple[str, str], ...] = (
    (
        "messages",
        "DELETE FROM chat_messages m USING chat_sessions s WHERE m.session_id = s.id AND s.user_id = :user",
    ),
    (
        "references",
        "DELETE FROM chat_references r USING chat_sessions s WHERE r.session_id = s.id AND s.user_id = :user",
    ),
    ("sessions", "DELETE FROM chat_sessions WHERE user_id = :user"),
    ("acknowledgements", "DELETE FROM intervention_acks WHERE user_id = :user"),
    ("interventions", "DELETE FROM interventions WHERE user_id = :user"),
    ("events", "DELETE FROM video_events WHERE user_id = :user"),
    ("watch_sessions", "DELETE FROM watch_sessions WHERE user_id = :user"),
    ("quiz_attempts", "DELETE FROM quiz_attempts WHERE user_id = :user"),
    ("quizzes", "DELETE FROM quizzes WHERE user_id = :user"),
    ("mastery", "DELETE FROM concept_mastery WHERE user_id = :user"),
    ("preferences", "DELETE FROM preferences WHERE user_id = :user"),
    ("insights", "DELETE FROM insights WHERE user_id = :user"),
    ("interactions", "DELETE FROM ai_interactions WHERE user_id = :user"),
    ("usage", "DELETE FROM usage_records WHERE user_id = :user"),
    ("token_budgets", "DELETE FROM token_budgets WHERE user_id = :user"),
    ("token_reservations", "DELETE FROM token_reservations WHERE user_id = :user"),
    # Their roles in courses go (a course whose last owner leaves has none until a service grants one); roles
    # they granted stay, without their id.
    ("course_roles", "DELETE FROM course_instructors WHERE user_id = :user"),
    ("course_grants", "UPDATE course_instructors SET granted_by = '' WHERE granted_by = :user"),
    ("experiment_exposures", "DELETE FROM experiment_exposures WHERE user_id = :user"),
    ("flagged_interactions", "DELETE FROM flagged_interactions WHERE user_id = :user"),
    ("experiments_created", "UPDATE experiments SET created_by = '' WHERE created_by = :user"),
    # Finished ingest requests keep the uploaded text under the requester's id; a running one is course
    # content in the making and finishes (its row then goes with the next deletion request).
    ("ingest_jobs", "DELETE FROM ingest_jobs WHERE requested_by = :user AND state NOT IN ('queued', 'running')"),
    # Background jobs queued or run for the user carry the id in their arguments.
    ("jobs", "DELETE FROM procrastinate_jobs WHERE args ->> 'user_id' = :user AND status <> 'doing'"),
    ("users", "DELETE FROM users WHERE id = :user"),
)


async def delete_user_data(database: Database, user_id: str) -> dict[str, int]:
    """Delete everything about `user_id` in one transaction; rows deleted by kind."""
    counts: dict[str, int] = {}
    async with database.transaction() as session:
        for kind, statement in USER_DELETIONS:
            result = await session.execute(text(statement), {"user": user_id})
            counts[kind] = int(getattr(result, "rowcount", 0) or 0)
    log.info("deleted the data of a user: %s", ", ".join(f"{k}={v}" for k, v in counts.items() if v))
    return counts


async def _delete_in_batches(database: Database, statement: str, params: dict[str, object]) -> int:
    total = 0
    while True:
        async with database.transaction() as session:
            result = await session.execute(text(statement), {**params, "batch": BATCH})
            deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < BATCH:
            return total


async def run_retention(database: Database, retention_days: int) -> dict[str, int]:
    """One retention pass (idempotent; batches keep each transaction short)."""
    interactions = await _delete_in_batches(
        database,
        "DELETE FROM ai_interactions WHERE id IN (SELECT id FROM ai_interactions "
        "WHERE create_time < now() - make_interval(days => :days) LIMIT :batch)",
        {"days": max(0, retention_days)},
    )
    quizzes = await _delete_in_batches(
        database,
        "DELETE FROM generated_quizzes WHERE id IN (SELECT g.id FROM generated_quizzes g "
        "WHERE g.expire_time < now() AND NOT EXISTS (SELECT 1 FROM quizzes q WHERE q.generated_quiz_id = g.id) "
        "LIMIT :batch)",
        {},
    )
    if interactions or quizzes:
        log.info("retention: deleted %d interactions and %d expired generated quizzes", interactions, quizzes)
    return {"interactions": interactions, "generated_quizzes": quizzes}
