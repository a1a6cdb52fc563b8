"""Flagged interactions: what moderation flagged in what students wrote, kept for the course's instructors, and
the audit trail of who read them (instructors reading students' words is itself recorded).

`ListFlaggedInteractions` is for instructors of the course and services; every call that returns student text
writes one `audit_reads` row (reader, what, how many items)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Index, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from server.core import metrics
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import NotFound
from server.core.models import Base
from server.core.names import require_id
from server.core.pagination import decode_page_token, encode_page_token, page_size
from server.llm.moderation import Verdict
from server.transcripts.courses import require_instructor_role, teaches

MAX_EXCERPT = 500
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class FlaggedInteraction(Base):
    """One flagged message (migration 0014). `excerpt` is the message with personal data redacted."""

    __tablename__ = "flagged_interactions"
    __table_args__ = (
        Index("ix_flagged_interactions_course_id_create_time", "course_id", "create_time"),
        Index("ix_flagged_interactions_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str]
    course_id: Mapped[str] = mapped_column(server_default="")
    video_id: Mapped[str] = mapped_column(server_default="")
    # Where it was written (`chat`) and the message, `sessions/{session}/messages/{message}`.
    surface: Mapped[str]
    message: Mapped[str] = mapped_column(server_default="")
    category: Mapped[str]
    score: Mapped[float]
    detector: Mapped[str]
    excerpt: Mapped[str]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())


class AuditRead(Base):
    """Someone read students' words: who, which listing, how many items (migration 0014)."""

    __tablename__ = "audit_reads"
    __table_args__ = (Index("ix_audit_reads_reader_create_time", "reader", "create_time"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    reader: Mapped[str]
    resource: Mapped[str]
    items: Mapped[int]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())


@dataclass(frozen=True)
class FlagView:
    flag_id: str
    user_id: str
    course_id: str
    video_id: str
    surface: str
    message: str
    category: str
    score: float
    detector: str
    excerpt: str
    create_time: datetime


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
        await session.execute(
            insert(FlaggedInteraction).values(
                id=uuid.uuid4().hex,
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
        statement = (
            select(FlaggedInteraction)
            .where(FlaggedInteraction.course_id == course_id)
            .order_by(FlaggedInteraction.create_time.desc(), FlaggedInteraction.id.desc())
            .limit(limit + 1)
        )
        if after is not None:
            statement = statement.where(
                func.row(FlaggedInteraction.create_time, FlaggedInteraction.id) < func.row(after[0], after[1])
            )
        async with self._db.transaction() as session:
            if not await teaches(session, principal, course_id):
                raise NotFound(f"courses/{course_id} not found")
            rows = list((await session.execute(statement)).scalars())
            shown = rows[:limit]
            await session.execute(
                insert(AuditRead).values(
                    id=uuid.uuid4().hex, reader=principal.user_id, resource=scope, items=len(shown)
                )
            )
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
