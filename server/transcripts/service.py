"""Transcripts domain logic: ingest (validate now, process in a background job), jobs, reads, deletes, search.

Decisions
- Only instructors and services write (ingest, delete) or read jobs; everyone authenticated reads transcripts
  and searches. Authorization is checked before anything in the request is looked at.
- `request_id` is scoped to the caller. The same id with the same request returns the same job; the same id
  with a different request (other video, content, format, title, ...) is ALREADY_EXISTS (reason
  REQUEST_ID_REUSED): the id names a job that already exists, and silently returning it would hide the
  mismatch.
- The transcript is parsed during the call, so bad input is INVALID_ARGUMENT on the call itself (naming the
  line/cue); chunking, embedding and the swap run in the job. Content identical to the stored transcript
  (same hash of the normalised cues, same embedding model, no other ingest of the video in flight) succeeds
  at once with `unchanged`; differing title/course/language are updated in place.
- Instructors see their own jobs; another instructor's job answers NOT_FOUND (AIP-211). Services see all.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.core.auth import Principal, Role
from server.core.db import Database
from server.core.errors import AlreadyExists, InvalidArgument, NotFound
from server.core.names import require_id
from server.core.pagination import decode_page_token, encode_page_token
from server.core.users import ensure_user
from server.transcripts.courses import (
    claim_or_require_teacher,
    require_instructor_role,
    require_teacher,
    require_writable,
)
from server.transcripts.domain import JobView, TranscriptView, job_view, transcript_view
from server.transcripts.handoff import PARSED_HANDOFF, content_hash
from server.transcripts.models import IngestJob
from server.transcripts.parsing import TranscriptFormat, parse_transcript
from server.transcripts.repository import jobs as jobs_repo
from server.transcripts.repository import transcripts as transcripts_repo
from server.transcripts.search import MAX_LIMIT, SearchOutcome, TranscriptSearch

INGEST_TASK = "transcripts.ingest"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{8,128}$")
MAX_TITLE_CHARS = 500
MAX_LANGUAGE_CHARS = 35
MAX_QUERY_CHARS = 1000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
DEFAULT_SEARCH_LIMIT = 5


class JobDeferrer(Protocol):
    async def defer(
        self,
        name: str,
        *,
        session: AsyncSession | None = None,
        lock: str | None = None,
        queueing_lock: str | None = None,
        **kwargs: Any,
    ) -> int: ...


@dataclass(frozen=True)
class IngestRequest:
    request_id: str
    video_id: str
    course_id: str
    title: str
    format: str
    content: str
    language: str = ""
    duration_seconds: float = 0.0


def _request_hash(request: IngestRequest) -> str:
    digest = hashlib.sha256()
    for part in (
        request.video_id,
        request.course_id,
        request.title,
        request.language,
        request.format,
        repr(float(request.duration_seconds)),
        hashlib.sha256(request.content.encode()).hexdigest(),
    ):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class TranscriptService:
    def __init__(self, database: Database, search: TranscriptSearch, jobs: JobDeferrer, settings: Settings) -> None:
        self._db = database
        self._search = search
        self._jobs = jobs
        self._settings = settings

    # --- ingest ------------------------------------------------------------------------------------

    def _validate(self, request: IngestRequest) -> TranscriptFormat:
        size = len(request.content.encode())
        if size > self._settings.max_transcript_bytes:
            raise InvalidArgument.field(
                "content",
                f"is {size} bytes; the limit is {self._settings.max_transcript_bytes} bytes",
                reason="TRANSCRIPT_TOO_LARGE",
            )
        if not REQUEST_ID_PATTERN.match(request.request_id):
            raise InvalidArgument.field("request_id", "must be 8 to 128 characters of [A-Za-z0-9_.:-]")
        require_id(request.video_id, "video_id")
        require_id(request.course_id, "course_id")
        if len(request.title) > MAX_TITLE_CHARS:
            raise InvalidArgument.field("title", f"must be at most {MAX_TITLE_CHARS} characters")
        if len(request.language) > MAX_LANGUAGE_CHARS:
            raise InvalidArgument.field("language", f"must be at most {MAX_LANGUAGE_CHARS} characters")
        if not math.isfinite(request.duration_seconds) or request.duration_seconds < 0:
            raise InvalidArgument.field("duration_seconds", "must be a non-negative number of seconds")
        try:
            fmt = TranscriptFormat(request.format)
        except ValueError:
            raise InvalidArgument.field("format", "is required: WEBVTT, SRT, JSON_SEGMENTS or PLAIN_TEXT") from None
        if not request.content.strip():
            raise InvalidArgument.field("content", "transcript is empty")
        return fmt

    async def ingest(self, principal: Principal, request: IngestRequest) -> JobView:
        action = "ingest transcripts"
        require_instructor_role(principal, action)
        fmt = self._validate(request)
        request_hash = _request_hash(request)
        async with self._db.session() as session:
            existing = await jobs_repo.find_job_by_request(session, principal.user_id, request.request_id)
            if existing is None:
                await require_writable(session, principal, request.course_id, action)
        if existing is not None:
            return self._same_request(existing, request_hash)

        duration = request.duration_seconds or None
        parsed = await asyncio.to_thread(parse_transcript, request.content, fmt, duration_seconds=duration)
        digest = content_hash(parsed)
        job_id = uuid.uuid4().hex
        values: dict[str, Any] = {
            "id": job_id,
            "request_id": request.request_id,
            "requested_by": principal.user_id,
            "request_hash": request_hash,
            "video_id": request.video_id,
            "course_id": request.course_id,
            "title": request.title,
            "language": request.language or parsed.language or "",
            "format": fmt.value,
            "duration_seconds": duration,
            "content_hash": digest,
        }
        async with self._db.transaction() as session:
            await ensure_user(session, principal)
            await transcripts_repo.lock_video(session, request.video_id)
            stored = await transcripts_repo.get_transcript(session, request.video_id)
            await claim_or_require_teacher(session, principal, request.course_id, action)
            if stored is not None and stored.course_id != request.course_id:
                await require_teacher(session, principal, stored.course_id, action)
            unchanged = (
                stored is not None
                and stored.content_hash == digest
                and stored.embedding_model == self._search.embedding_model
                and not await jobs_repo.has_active_job(session, request.video_id)
            )
            if unchanged:
                values |= {"state": "succeeded", "stage": "done", "unchanged": True, "content": None}
            else:
                values |= {"state": "queued", "content": request.content}
            if not await jobs_repo.insert_job(session, values):
                # A concurrent call with the same request id won the insert.
                raced = await jobs_repo.find_job_by_request(session, principal.user_id, request.request_id)
                if raced is None:
                    raise RuntimeError("ingest job vanished after a conflicting insert")
                return self._same_request(raced, request_hash)
            if unchanged and stored is not None:
                title = request.title or stored.title
                language = request.language or stored.language
                if (stored.course_id, stored.title, stored.language) != (request.course_id, title, language):
                    await transcripts_repo.update_transcript_metadata(
                        session, request.video_id, course_id=request.course_id, title=title, language=language
                    )
            else:
                # Handed over before the commit: a worker may start the job the moment it is visible.
                PARSED_HANDOFF.put(job_id, parsed, len(request.content))
                try:
                    queue_job_id = await self._jobs.defer(
                        INGEST_TASK, session=session, lock=f"video:{request.video_id}", job_id=job_id
                    )
                    await jobs_repo.update_job(session, job_id, queue_job_id=queue_job_id)
                except BaseException:
                    PARSED_HANDOFF.take(job_id)
                    raise
            row = await jobs_repo.get_job(session, job_id)
            if row is None:
                raise RuntimeError("ingest job vanished inside its own transaction")
            return job_view(row)

    @staticmethod
    def _same_request(existing: IngestJob, request_hash: str) -> JobView:
        if existing.request_hash != request_hash:
            raise AlreadyExists(
                f"request_id {existing.request_id!r} was already used for a different ingest request",
                reason="REQUEST_ID_REUSED",
                metadata={"job": f"ingestJobs/{existing.id}"},
            )
        return job_view(existing)

    # --- jobs --------------------------------------------------------------------------------------

    async def get_job(self, principal: Principal, job_id: str) -> JobView:
        require_instructor_role(principal, "read ingest jobs")
        async with self._db.session() as session:
            row = await jobs_repo.get_job(session, job_id)
        if row is None or (principal.role is not Role.SERVICE and row.requested_by != principal.user_id):
            raise NotFound(f"ingestJobs/{job_id} not found")
        return job_view(row)

    async def watch_job(self, principal: Principal, job_id: str) -> AsyncGenerator[JobView, None]:
        """The job now, then every change, until it succeeds or fails. Stopping the watch (the client going
        away) never affects the job."""
        last: tuple[Any, ...] | None = None
        while True:
            view = await self.get_job(principal, job_id)
            if view.progress_key() != last:
                last = view.progress_key()
                yield view
            if view.done:
                return
            await asyncio.sleep(self._settings.ingest_watch_poll_seconds)

    # --- transcripts -------------------------------------------------------------------------------

    async def get_transcript(self, principal: Principal, video_id: str, *, full: bool) -> TranscriptView:
        async with self._db.session() as session:
            row = await transcripts_repo.get_transcript(session, video_id, with_cues=full)
        if row is None:
            raise NotFound(f"videos/{video_id}/transcript not found")
        return transcript_view(row, with_cues=full)

    async def list_transcripts(
        self, principal: Principal, *, course_id: str, page_size: int, page_token: str
    ) -> tuple[list[TranscriptView], str]:
        if course_id:
            require_id(course_id, "course_id")
        if page_size < 0:
            raise InvalidArgument.field("page_size", "must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = decode_page_token(page_token, f"transcripts:{course_id}", (str, str))
        async with self._db.session() as session:
            rows = await transcripts_repo.list_transcripts(
                session, course_id=course_id or None, after=after, limit=size + 1
            )
        views = [transcript_view(row) for row in rows[:size]]
        next_token = ""
        if len(rows) > size:
            next_token = encode_page_token(f"transcripts:{course_id}", [views[-1].course_id, views[-1].video_id])
        return views, next_token

    async def delete_transcript(self, principal: Principal, video_id: str) -> None:
        """Deletes the transcript and its chunks. An ingest of the video still in flight will store its
        transcript when it finishes (it is a newer request than this delete)."""
        action = "delete transcripts"
        require_instructor_role(principal, action)
        async with self._db.transaction() as session:
            await transcripts_repo.lock_video(session, video_id)
            stored = await transcripts_repo.get_transcript(session, video_id)
            if stored is None:
                raise NotFound(f"videos/{video_id}/transcript not found")
            await require_teacher(session, principal, stored.course_id, action)
            await transcripts_repo.delete_transcript(session, video_id)

    # --- search ------------------------------------------------------------------------------------

    async def search(
        self,
        principal: Principal,
        *,
        query: str,
        video_id: str,
        course_id: str,
        time_window: tuple[float, float] | None,
        limit: int,
    ) -> SearchOutcome:
        if not query.strip():
            raise InvalidArgument.field("query", "is required")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidArgument.field("query", f"must be at most {MAX_QUERY_CHARS} characters")
        if bool(video_id) == bool(course_id):
            raise InvalidArgument.field("video_id", "set exactly one of video_id and course_id")
        if video_id:
            require_id(video_id, "video_id")
        else:
            require_id(course_id, "course_id")
        if limit == 0:
            limit = DEFAULT_SEARCH_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument.field("limit", f"must be between 1 and {MAX_LIMIT}")
        if time_window is not None:
            start, end = time_window
            if not video_id:
                raise InvalidArgument.field("time_window", "needs video_id")
            if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
                raise InvalidArgument.field("time_window", "needs 0 <= start_seconds < end_seconds")
        if video_id and await self._search.video_info(video_id) is None:
            raise NotFound(f"videos/{video_id}/transcript not found")
        return await self._search.search_with_model(
            query,
            video_id=video_id or None,
            course_id=course_id or None,
            time_window=time_window,
            limit=limit,
        )
