"""TranscribeMedia and UploadMedia: validate, check the media, create an ingest job of format `media` (run by
server.transcripts.asr_ingest).

Decisions
- Instructors and services only, checked before anything else. Media locations are checked next: a URL
  whose origin is not allow-listed or a path that resolves outside the media directory (traversal or
  symlinks) is PERMISSION_DENIED.
- What can be checked during the call is: size over the limit, undecodable media (the decoder's reason), no
  audio stream, a stated duration over the limit → INVALID_ARGUMENT before any job exists. Paths and uploads
  are probed by decoding their first second; URLs are only asked for their head (status and size), so a
  URL's media that does not decode fails the job with the decoder's reason.
- `request_id` works as for IngestTranscript: the same id and the same request (same URL, path, or upload
  bytes by SHA-256) returns the same job; a different request under a used id is ALREADY_EXISTS.
- Uploads are spooled to ASR_UPLOAD_DIR as they arrive (never held in memory), checked chunk by chunk
  against the declared size, and handed to the job under the job's id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.asr.fetch import MediaFetcher, check_url, resolve_media_path, spool_upload
from server.asr.languages import whisper_language
from server.asr.media import probe_media
from server.config import Settings
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import AlreadyExists, InvalidArgument
from server.core.names import require_id
from server.core.users import ensure_user
from server.transcripts.asr_ingest import INCOMING_PREFIX, MEDIA_FORMAT, UPLOADED_SUFFIX, MediaSpec, upload_dir
from server.transcripts.courses import (
    claim_or_require_teacher,
    require_instructor_role,
    require_teacher,
    require_writable,
)
from server.transcripts.domain import JobView, job_view
from server.transcripts.repository import jobs as jobs_repo
from server.transcripts.repository import transcripts as transcripts_repo
from server.transcripts.service import INGEST_TASK, MAX_TITLE_CHARS, REQUEST_ID_PATTERN, JobDeferrer

logger = logging.getLogger(__name__)

MAX_FILENAME_CHARS = 255
ACTION = "transcribe media"


@dataclass(frozen=True)
class MediaRequest:
    request_id: str
    video_id: str
    course_id: str
    title: str = ""
    language: str = ""
    media_url: str = ""
    media_path: str = ""


@dataclass(frozen=True)
class UploadRequest:
    request_id: str
    video_id: str
    course_id: str
    total_bytes: int
    title: str = ""
    language: str = ""
    filename: str = ""


def _request_hash(kind: str, *parts: str) -> str:
    digest = hashlib.sha256()
    for part in (kind, *parts):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class MediaTranscriptionService:
    """The RPC side: validate, check the media, create the job."""

    def __init__(self, database: Database, jobs: JobDeferrer, settings: Settings) -> None:
        self._db = database
        self._jobs = jobs
        self._settings = settings

    def _validate(self, request_id: str, video_id: str, course_id: str, title: str, language: str) -> str:
        if not REQUEST_ID_PATTERN.match(request_id):
            raise InvalidArgument.field("request_id", "must be 8 to 128 characters of [A-Za-z0-9_.:-]")
        require_id(video_id, "video_id")
        require_id(course_id, "course_id")
        if len(title) > MAX_TITLE_CHARS:
            raise InvalidArgument.field("title", f"must be at most {MAX_TITLE_CHARS} characters")
        return whisper_language(language) or ""

    async def _existing(self, principal: Principal, request_id: str, request_hash: str) -> JobView | None:
        async with self._db.session() as session:
            existing = await jobs_repo.find_job_by_request(session, principal.user_id, request_id)
        if existing is None:
            return None
        if existing.request_hash != request_hash:
            raise AlreadyExists(
                f"request_id {request_id!r} was already used for a different request",
                reason="REQUEST_ID_REUSED",
                metadata={"job": f"ingestJobs/{existing.id}"},
            )
        return job_view(existing)

    async def _check_course(self, principal: Principal, course_id: str) -> None:
        """Refuses a course the caller may not write before any media is fetched, probed or stored."""
        async with self._db.session() as session:
            await require_writable(session, principal, course_id, ACTION)

    def _check_size(self, size: int, field: str) -> None:
        if size > self._settings.asr_max_media_bytes:
            raise InvalidArgument.field(
                field,
                f"the media is {size} bytes; the limit is {self._settings.asr_max_media_bytes} bytes",
                reason="MEDIA_TOO_LARGE",
            )

    async def _probe(self, path: Path, field: str) -> float | None:
        info = await asyncio.to_thread(probe_media, path, max_seconds=self._settings.asr_max_media_seconds, field=field)
        return info.duration_seconds

    async def transcribe(self, principal: Principal, request: MediaRequest) -> JobView:
        require_instructor_role(principal, ACTION)
        language = self._validate(
            request.request_id, request.video_id, request.course_id, request.title, request.language
        )
        await self._check_course(principal, request.course_id)
        if bool(request.media_url) == bool(request.media_path):
            raise InvalidArgument.field("media", "set exactly one of media_url and media_path")
        settings = self._settings
        resolved: Path | None = None
        if request.media_url:
            url = check_url(request.media_url, settings.asr_allowed_url_origins)
            spec = MediaSpec("url", url)
        else:
            resolved = resolve_media_path(settings.asr_media_dir, request.media_path)
            spec = MediaSpec("path", request.media_path, size=resolved.stat().st_size)
        request_hash = _request_hash(
            spec.kind, spec.location, request.video_id, request.course_id, request.title, language
        )
        if (existing := await self._existing(principal, request.request_id, request_hash)) is not None:
            return existing
        duration: float | None = None
        if resolved is None:
            fetcher = MediaFetcher(
                settings.asr_allowed_url_origins,
                max_bytes=settings.asr_max_media_bytes,
                timeout_seconds=min(settings.asr_fetch_timeout_seconds, 30.0),
            )
            await fetcher.check(spec.location)
        else:
            self._check_size(spec.size, "media_path")
            duration = await self._probe(resolved, "media_path")
        return await self._create_job(
            principal,
            request_id=request.request_id,
            request_hash=request_hash,
            video_id=request.video_id,
            course_id=request.course_id,
            title=request.title,
            language=language,
            spec=spec,
            duration=duration,
        )

    async def upload(self, principal: Principal, request: UploadRequest, chunks: AsyncIterator[bytes]) -> JobView:
        require_instructor_role(principal, ACTION)
        language = self._validate(
            request.request_id, request.video_id, request.course_id, request.title, request.language
        )
        await self._check_course(principal, request.course_id)
        if len(request.filename) > MAX_FILENAME_CHARS:
            raise InvalidArgument.field("filename", f"must be at most {MAX_FILENAME_CHARS} characters")
        if request.total_bytes <= 0:
            raise InvalidArgument.field("total_bytes", "must be the positive size of the media in bytes")
        self._check_size(request.total_bytes, "total_bytes")
        directory = upload_dir(self._settings)
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        incoming = directory / f"{INCOMING_PREFIX}{uuid.uuid4().hex}"
        try:
            spooled = await spool_upload(
                chunks,
                incoming,
                declared_bytes=request.total_bytes,
                max_bytes=self._settings.asr_max_media_bytes,
            )
            request_hash = _request_hash(
                "upload", spooled.sha256, request.video_id, request.course_id, request.title, language
            )
            if (existing := await self._existing(principal, request.request_id, request_hash)) is not None:
                return existing
            duration = await self._probe(incoming, "chunk")
            spec = MediaSpec("upload", "", size=spooled.size, sha256=spooled.sha256, filename=request.filename)
            return await self._create_job(
                principal,
                request_id=request.request_id,
                request_hash=request_hash,
                video_id=request.video_id,
                course_id=request.course_id,
                title=request.title,
                language=language,
                spec=spec,
                duration=duration,
                upload=incoming,
            )
        finally:
            await asyncio.to_thread(incoming.unlink, missing_ok=True)

    async def _create_job(
        self,
        principal: Principal,
        *,
        request_id: str,
        request_hash: str,
        video_id: str,
        course_id: str,
        title: str,
        language: str,
        spec: MediaSpec,
        duration: float | None,
        upload: Path | None = None,
    ) -> JobView:
        job_id = uuid.uuid4().hex
        if upload is not None:
            spec = MediaSpec(spec.kind, f"{job_id}{UPLOADED_SUFFIX}", spec.size, spec.sha256, spec.filename)
        values: dict[str, Any] = {
            "id": job_id,
            "request_id": request_id,
            "requested_by": principal.user_id,
            "request_hash": request_hash,
            "video_id": video_id,
            "course_id": course_id,
            "title": title,
            "language": language,
            "format": MEDIA_FORMAT,
            "duration_seconds": duration,
            "content": spec.to_json(),
            "content_hash": spec.sha256,
            "state": "queued",
        }
        async with self._db.transaction() as session:
            await ensure_user(session, principal)
            await transcripts_repo.lock_video(session, video_id)
            await claim_or_require_teacher(session, principal, course_id, ACTION)
            stored = await transcripts_repo.get_transcript(session, video_id)
            if stored is not None and stored.course_id != course_id:
                await require_teacher(session, principal, stored.course_id, ACTION)
            if not await jobs_repo.insert_job(session, values):
                # A concurrent call with the same request id won the insert.
                raced = await self._existing(principal, request_id, request_hash)
                if raced is None:
                    raise RuntimeError("ingest job vanished after a conflicting insert")
                return raced
            if upload is not None:
                await asyncio.to_thread(upload.rename, upload.parent / spec.location)
            queue_job_id = await self._jobs.defer(INGEST_TASK, session=session, lock=f"video:{video_id}", job_id=job_id)
            await jobs_repo.update_job(session, job_id, queue_job_id=queue_job_id)
            row = await jobs_repo.get_job(session, job_id)
            if row is None:
                raise RuntimeError("ingest job vanished inside its own transaction")
        logger.info("media job %s queued for %s (%s)", job_id, video_id, spec.kind)
        return job_view(row)
