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
import json
import math
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.core.auth import Principal, Role
from server.core.db import Database
from server.core.errors import AlreadyExists, InvalidArgument, NotFound
from server.core.names import require_id
from server.core.pagination import decode_page_token, encode_page_token
from server.core.users import ensure_user
from server.transcripts import repository
from server.transcripts.courses import (
    claim_or_require_teacher,
    require_instructor_role,
    require_teacher,
    require_writable,
)
from server.transcripts.models import IngestJob, Transcript
from server.transcripts.parsing import ParsedTranscript, TranscriptFormat, parse_transcript
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


@dataclass(frozen=True)
class JobView:
    job_id: str
    request_id: str
    video_id: str
    course_id: str
    state: str
    stage: str
    completed_units: int
    total_units: int
    error_message: str
    unchanged: bool
    create_time: datetime | None
    update_time: datetime | None
    warnings: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.state in repository.TERMINAL_STATES

    def progress_key(self) -> tuple[Any, ...]:
        return (self.state, self.stage, self.completed_units, self.total_units, self.error_message, self.unchanged)


@dataclass(frozen=True)
class CueView:
    index: int
    start_seconds: float
    end_seconds: float
    text: str
    speaker: str
    confidence: float | None = None


@dataclass(frozen=True)
class TranscriptView:
    video_id: str
    course_id: str
    title: str
    language: str
    source: str
    timing_estimated: bool
    duration_seconds: float
    cue_count: int
    chunk_count: int
    content_hash: str
    embedding_model: str
    create_time: datetime | None
    update_time: datetime | None
    cues: list[CueView] = field(default_factory=list)


def job_view(row: IngestJob) -> JobView:
    return JobView(
        job_id=row.id,
        request_id=row.request_id,
        video_id=row.video_id,
        course_id=row.course_id,
        state=row.state,
        stage=row.stage,
        completed_units=int(row.completed_units),
        total_units=int(row.total_units),
        error_message=row.error_message,
        unchanged=row.unchanged,
        create_time=row.create_time,
        update_time=row.update_time,
        warnings=tuple(row.warnings or ()),
    )


def transcript_view(row: Transcript, *, with_cues: bool = False) -> TranscriptView:
    cues = (
        [
            CueView(
                index,
                float(cue["start"]),
                float(cue["end"]),
                str(cue["text"]),
                str(cue.get("speaker") or ""),
                None if cue.get("confidence") is None else float(cue["confidence"]),
            )
            for index, cue in enumerate(row.cues)
        ]
        if with_cues
        else []
    )
    return TranscriptView(
        video_id=row.video_id,
        course_id=row.course_id,
        title=row.title,
        language=row.language,
        source=row.source,
        timing_estimated=row.timing_estimated,
        duration_seconds=float(row.duration_seconds),
        cue_count=row.cue_count,
        chunk_count=row.chunk_count,
        content_hash=row.content_hash,
        embedding_model=row.embedding_model,
        create_time=row.create_time,
        update_time=row.update_time,
        cues=cues,
    )


def cue_records(parsed: ParsedTranscript) -> list[dict[str, Any]]:
    """The cues as stored; `confidence` only where there is one (speech-to-text cues)."""
    records: list[dict[str, Any]] = []
    for cue in parsed.cues:
        record: dict[str, Any] = {"start": cue.start, "end": cue.end, "text": cue.text, "speaker": cue.speaker or ""}
        if cue.confidence is not None:
            record["confidence"] = cue.confidence
        records.append(record)
    return records


def content_hash(parsed: ParsedTranscript) -> str:
    """SHA-256 of the normalised transcript: the cues' timings, text and speakers (format-independent, so
    the same captions as WebVTT or SRT hash alike)."""
    payload = json.dumps(
        [[round(cue.start, 3), round(cue.end, 3), cue.text, cue.speaker or ""] for cue in parsed.cues],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ParsedHandoff:
    """Transcripts parsed while validating an ingest call, kept for a worker of the same process so the job
    does not parse the content a second time.

    Bounded by the length of the content they came from (oldest dropped first); a job that finds nothing here, e.g.
    in a separate worker process or after a restart, parses its content itself. Entries are keyed by the
    job id, which is unique and whose content never changes, so an entry is always the job's own transcript.
    """

    def __init__(self, max_content_chars: int) -> None:
        self._max_chars = max_content_chars
        self._entries: OrderedDict[str, tuple[ParsedTranscript, int]] = OrderedDict()
        self._chars = 0
        # Written by the event loop, read by jobs of any worker loop of the process.
        self._lock = threading.Lock()

    def put(self, job_id: str, parsed: ParsedTranscript, content_chars: int) -> None:
        if content_chars > self._max_chars:
            return
        with self._lock:
            self._entries[job_id] = (parsed, content_chars)
            self._chars += content_chars
            while self._chars > self._max_chars:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._chars -= dropped

    def take(self, job_id: str) -> ParsedTranscript | None:
        with self._lock:
            entry = self._entries.pop(job_id, None)
            if entry is None:
                return None
            self._chars -= entry[1]
            return entry[0]


# Enough for a burst of large uploads waiting in the queue; beyond it jobs parse for themselves.
PARSED_HANDOFF = ParsedHandoff(max_content_chars=64 * 1024 * 1024)


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
            existing = await repository.find_job_by_request(session, principal.user_id, request.request_id)
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
            await repository.lock_video(session, request.video_id)
            stored = await repository.get_transcript(session, request.video_id)
            await claim_or_require_teacher(session, principal, request.course_id, action)
            if stored is not None and stored.course_id != request.course_id:
                await require_teacher(session, principal, stored.course_id, action)
            unchanged = (
                stored is not None
                and stored.content_hash == digest
                and stored.embedding_model == self._search.embedding_model
                and not await repository.has_active_job(session, request.video_id)
            )
            if unchanged:
                values |= {"state": "succeeded", "stage": "done", "unchanged": True, "content": None}
            else:
                values |= {"state": "queued", "content": request.content}
            if not await repository.insert_job(session, values):
                # A concurrent call with the same request id won the insert.
                raced = await repository.find_job_by_request(session, principal.user_id, request.request_id)
                if raced is None:
                    raise RuntimeError("ingest job vanished after a conflicting insert")
                return self._same_request(raced, request_hash)
            if unchanged and stored is not None:
                title = request.title or stored.title
                language = request.language or stored.language
                if (stored.course_id, stored.title, stored.language) != (request.course_id, title, language):
                    await repository.update_transcript_metadata(
                        session, request.video_id, course_id=request.course_id, title=title, language=language
                    )
            else:
                # Handed over before the commit: a worker may start the job the moment it is visible.
                PARSED_HANDOFF.put(job_id, parsed, len(request.content))
                try:
                    queue_job_id = await self._jobs.defer(
                        INGEST_TASK, session=session, lock=f"video:{request.video_id}", job_id=job_id
                    )
                    await repository.update_job(session, job_id, queue_job_id=queue_job_id)
                except BaseException:
                    PARSED_HANDOFF.take(job_id)
                    raise
            row = await repository.get_job(session, job_id)
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
            row = await repository.get_job(session, job_id)
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
            row = await repository.get_transcript(session, video_id, with_cues=full)
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
            rows = await repository.list_transcripts(session, course_id=course_id or None, after=after, limit=size + 1)
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
            await repository.lock_video(session, video_id)
            stored = await repository.get_transcript(session, video_id)
            if stored is None:
                raise NotFound(f"videos/{video_id}/transcript not found")
            await require_teacher(session, principal, stored.course_id, action)
            await repository.delete_transcript(session, video_id)

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
