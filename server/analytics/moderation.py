"""Flagged interactions: what moderation flagged in what students wrote, kept for the course's instructors, and
the audit trail of who read them (instructors reading students' words is itself recorded).

`ListFlaggedInteractions` is for instructors of the course and services; every call that returns student text
writes one `audit_reads` row (reader, what, how many items)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.analytics import repository as repo
from server.analytics.domain import FlagView
from server.core import metrics
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import NotFound
from server.core.names import require_id
from server.core.pagination import decode_page_token, encode_page_token, page_size
from server.llm.moderation import Verdict
from server.transcripts.courses import require_instructor_role, teaches

MAX_EXCERPT = 500
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class FlagPlace:
    """Who wrote the flagged text, where (`chat`, `hint`) and which message or interaction it was."""

    user_id: str
    course_id: str
    video_id: str
    surface: str
    message: str


async def record_flag(database: Database, place: FlagPlace, verdict: Verdict, excerpt: str) -> None:
    """Store a flag in its own transaction and count it. `excerpt` is the text with personal data redacted."""
    if len(excerpt) > MAX_EXCERPT:
        excerpt = excerpt[: MAX_EXCERPT - 1] + "…"
    async with database.transaction() as session:
        await repo.add_flag(
            session,
            user_id=place.user_id,
            course_id=place.course_id,
            video_id=place.video_id,
            surface=place.surface,
            message=place.message,
            category=verdict.category,
            score=verdict.score,
            detector=verdict.detector,
            excerpt=excerpt,
        )
    metrics.count_moderation_flag(place.surface, verdict.category)


class FlagService:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def list(self, principal: Principal, course_id: str, *, size: int, token: str) -> tuple[list[FlagView], str]:
        require_instructor_role(principal, "read flagged interactions")
        require_id(course_id, "parent")
        limit = page_size(size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        scope = f"courses/{course_id}/flaggedInteractions"
        after = decode_page_token(token, scope, (datetime, str))
        async with self._db.transaction() as session:
            if not await teaches(session, principal, course_id):
                raise NotFound(f"courses/{course_id} not found")
            rows = await repo.list_flags(session, course_id, after=after, limit=limit + 1)
            shown = rows[:limit]
            await repo.record_audit_read(session, principal.user_id, scope, len(shown))
        views = [
            FlagView(
                row.id,
                row.user_id,
                row.course_id,
                row.video_id,
                row.surface,
                row.message,
                row.category,
                row.score,
                row.detector,
                row.excerpt,
                row.create_time,
            )
            for row in shown
        ]
        next_token = encode_page_token(scope, [shown[-1].create_time, shown[-1].id]) if len(rows) > limit else ""
        return views, next_token
