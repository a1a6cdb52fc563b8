"""Which watch sessions exist and whose they are: create-or-read in one round trip, remembered per process
(a session's owner and video never change), and the duration of each video for the engine's checks."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import text

from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import InvalidArgument, NotFound
from server.progress.domain import WatchTarget
from server.progress.engine import LearnerPreferences
from server.transcripts.search import TranscriptSearch

KNOWN_SESSIONS = 50_000
KNOWN_VIDEOS = 1_024
VIDEO_INFO_TTL_SECONDS = 60.0

# Create-or-read a watch session in one round trip: the user row (FK), the session row (first use wins: the
# INSERT returns nothing when the id exists, then the existing row is read), and the caller's preferences.
OPEN_SESSION = text(
    """
    WITH caller AS (
        INSERT INTO users (id, role, tier) VALUES (:user, :role, :tier)
        ON CONFLICT (id) DO UPDATE SET role = excluded.role, tier = excluded.tier, last_seen_time = now()
        RETURNING id
    ), created AS (
        INSERT INTO watch_sessions (id, user_id, video_id, course_id, duration_seconds)
        SELECT :id, caller.id, :video, :course, CAST(:duration AS float8) FROM caller
        ON CONFLICT (id) DO NOTHING
        RETURNING user_id, video_id, course_id, duration_seconds
    ), found AS (
        SELECT user_id, video_id, course_id, duration_seconds FROM created
        UNION ALL
        SELECT user_id, video_id, course_id, duration_seconds FROM watch_sessions
        WHERE id = :id AND NOT EXISTS (SELECT 1 FROM created)
    )
    SELECT found.*, coalesce(p.auto_hints_enabled, true) AS auto_hints_enabled,
        coalesce(p.quiz_frequency, 'medium') AS quiz_frequency
    FROM found LEFT JOIN preferences p ON p.user_id = :user
    """
)

STORED_WATCHED = text("SELECT watched_seconds FROM watch_sessions WHERE id = :id")


@dataclass(frozen=True, slots=True)
class SessionRecord:
    user_id: str
    video_id: str
    course_id: str
    duration: float | None


class SessionDirectory:
    def __init__(self, database: Database, search: TranscriptSearch | None) -> None:
        self._db = database
        self._search = search
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()
        self._durations: OrderedDict[str, tuple[float | None, float]] = OrderedDict()

    async def authorize(
        self, principal: Principal, target: WatchTarget
    ) -> tuple[SessionRecord, LearnerPreferences | None]:
        """The session's record (created on first use), with the caller's preferences when they were read on
        the way (one round trip). Another user's session answers NOT_FOUND."""
        preferences = None
        record = self._records.get(target.watch_session_id)
        if record is None:
            params = {
                "id": target.watch_session_id,
                "user": principal.user_id,
                "role": principal.role.value,
                "tier": principal.tier.value,
                "video": target.video_id,
                "course": target.course_id,
                "duration": target.duration,
            }
            row = None
            while row is None:
                # None when another request created the session at the same moment: its row was committed
                # after this statement's snapshot was taken, so a second statement sees it.
                async with self._db.transaction() as session:
                    row = (await session.execute(OPEN_SESSION, params)).one_or_none()
            record = SessionRecord(row.user_id, row.video_id, row.course_id, row.duration_seconds)
            preferences = LearnerPreferences(row.auto_hints_enabled, row.quiz_frequency)
            self._records[target.watch_session_id] = record
            if len(self._records) > KNOWN_SESSIONS:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(target.watch_session_id)
        if record.user_id != principal.user_id:
            raise NotFound(f"watch session `{target.watch_session_id}` not found")
        if record.video_id != target.video_id:
            raise InvalidArgument.field(
                "video_id", f"watch session `{target.watch_session_id}` is watching video `{record.video_id}`"
            )
        return record, preferences

    async def watched_seconds(self, watch_session_id: str) -> float:
        """The stored watched total of a session (0 for one not written yet)."""
        async with self._db.reader() as session:
            stored = await session.scalar(STORED_WATCHED, {"id": watch_session_id})
        return float(stored or 0.0)

    def forget_user(self, user_id: str) -> None:
        for watch_session_id, record in list(self._records.items()):
            if record.user_id == user_id:
                del self._records[watch_session_id]

    async def video_duration(self, video_id: str) -> float | None:
        cached = self._durations.get(video_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        info = await self._search.video_info(video_id) if self._search is not None else None
        duration = info.duration_seconds if info is not None and info.duration_seconds > 0 else None
        self._durations[video_id] = (duration, now + VIDEO_INFO_TTL_SECONDS)
        self._durations.move_to_end(video_id)
        if len(self._durations) > KNOWN_VIDEOS:
            self._durations.popitem(last=False)
        return duration
