"""From a stretch of a video to the questions asked about it: the student questions whose answers cited it.

A student sees their own, each with its message. Instructors of the video's course (and services) see every
student's, anonymized: personal data redacted, no user ids or messages, the same question (case, spacing and
final punctuation aside) counted once with how often and by how many students it was asked, most asked first,
over the newest `MAX_SCANNED` citing answers.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from server.chat import repository as repo
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import InvalidArgument, NotFound
from server.core.names import require_id
from server.llm.pii import redact
from server.transcripts.courses import not_taught, require_instructor_role, teaches
from server.transcripts.search import TranscriptSearch

DEFAULT_QUESTIONS = 20
MAX_QUESTIONS = 100
MAX_SCANNED = 1000


class QuestionScope(StrEnum):
    MINE = "mine"
    COURSE = "course"


@dataclass(frozen=True)
class SegmentQuestionView:
    text: str
    count: int
    students: int
    last_asked_time: datetime
    start_seconds: float
    messages: tuple[str, ...] = ()


_TRAILING = re.compile(r"[\s?!.…]+$")
_SPACES = re.compile(r"\s+")


def _key(question: str) -> str:
    return _TRAILING.sub("", _SPACES.sub(" ", question.strip().lower()))


class SegmentQuestions:
    def __init__(self, database: Database, search: TranscriptSearch) -> None:
        self._db = database
        self._search = search

    async def list(
        self,
        principal: Principal,
        video_id: str,
        window: tuple[float, float] | None,
        scope: QuestionScope,
        max_questions: int,
    ) -> list[SegmentQuestionView]:
        require_id(video_id, "video_id")
        if max_questions < 0 or max_questions > MAX_QUESTIONS:
            raise InvalidArgument.field("max_questions", f"must be 0 (default {DEFAULT_QUESTIONS}) to {MAX_QUESTIONS}")
        start, end = window if window is not None else (0.0, math.inf)
        if window is not None and not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            raise InvalidArgument.field("range", "must satisfy 0 <= start_seconds < end_seconds")
        limit = max_questions or DEFAULT_QUESTIONS
        if scope is QuestionScope.COURSE:
            await self._require_course(principal, video_id)
        mine = scope is QuestionScope.MINE
        async with self._db.reader() as session:
            rows = await repo.citing_questions(
                session,
                video_id,
                start,
                end,
                user_id=principal.user_id if mine else None,
                scan=limit if mine else MAX_SCANNED,
            )
        if scope is QuestionScope.MINE:
            return [
                SegmentQuestionView(
                    text=row.content,
                    count=1,
                    students=1,
                    last_asked_time=row.create_time,
                    start_seconds=float(row.start_seconds),
                    messages=(f"sessions/{row.session_id}/messages/{row.id}",),
                )
                for row in rows
            ]
        # Redaction with names runs spaCy (milliseconds per text): each distinct question once, off the loop.
        distinct = list(dict.fromkeys(row.content for row in rows))
        redacted = dict(
            zip(distinct, await asyncio.to_thread(lambda: [redact(item).text for item in distinct]), strict=True)
        )
        return _aggregate(rows, redacted)[:limit]

    async def _require_course(self, principal: Principal, video_id: str) -> None:
        require_instructor_role(principal, "see every student's questions")
        info = await self._search.video_info(video_id)
        if info is None:
            raise NotFound(f"video `{video_id}` not found")
        async with self._db.reader() as session:
            if not await teaches(session, principal, info.course_id):
                raise not_taught(info.course_id)


def _aggregate(rows: Sequence[Any], redactions: dict[str, str]) -> list[SegmentQuestionView]:
    """Newest first in, most asked first out; each group shows its newest wording, redacted."""
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        redacted = redactions[row.content]
        group = groups.setdefault(
            _key(redacted),
            {"text": redacted, "count": 0, "students": set(), "last": row.create_time, "start": math.inf},
        )
        group["count"] += 1
        group["students"].add(row.user_id)
        group["start"] = min(group["start"], float(row.start_seconds))
    ordered = sorted(groups.values(), key=lambda group: (-group["count"], -group["last"].timestamp()))
    return [
        SegmentQuestionView(
            text=group["text"],
            count=group["count"],
            students=len(group["students"]),
            last_asked_time=group["last"],
            start_seconds=group["start"],
        )
        for group in ordered
    ]
