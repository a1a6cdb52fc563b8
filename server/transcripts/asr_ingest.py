"""Speech-to-text jobs: an ingest job of format `media` gets its transcript from speech recognition, which
then takes the same chunk → embed → index path (and the same WatchIngestJob progress) as captions. The RPC
side is server.transcripts.asr_service.

Decisions
- Stages: FETCHING (URL downloads, in bytes), DECODING (probe), TRANSCRIBING (seconds of media recognised
  of its duration), then the caption path's CHUNKING, EMBEDDING, INDEXING, DONE.
- Media with no speech (silence, music) fails the job with "no speech detected": storing an empty
  transcript would replace a video's existing transcript with nothing, and answer no question.
- A transient failure to download fails the attempt (the job is retried); a refusal by the media server,
  undecodable media or a refusal by a hosted recogniser fails the job with that reason.
- Uploaded media stays in ASR_UPLOAD_DIR until its job ends, so a retried job can read it again; worker
  processes must see the same directory (as they must see ASR_MEDIA_DIR). A maintenance sweep removes the
  files of ended jobs and uploads abandoned mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from server.asr.base import AsrProvider
from server.asr.factory import build_asr_provider
from server.asr.fetch import MediaFetcher, resolve_media_path
from server.asr.media import probe_media
from server.asr.pipeline import transcribe_media
from server.config import Settings
from server.core.db import Database
from server.core.errors import FailedPrecondition, Unavailable
from server.jobs.queue import JobQueue
from server.transcripts.jobs import JobProgress, TranscriptJobs
from server.transcripts.models import IngestJob
from server.transcripts.parsing import Cue, ParsedTranscript, TranscriptFormat
from server.transcripts.repository import jobs as jobs_repo

logger = logging.getLogger(__name__)

MEDIA_FORMAT = "media"
UPLOADED_SUFFIX = ".media"
FETCHED_SUFFIX = ".fetched"
INCOMING_PREFIX = "incoming-"
# An upload file whose job is no longer active is removed after this (covers the moment between the RPC
# naming the file after its job and committing the job).
ENDED_JOB_GRACE_SECONDS = 60.0
# An incoming upload nobody has written to for this long was abandoned.
ABANDONED_UPLOAD_SECONDS = 3600.0


class MediaFetchFailed(Exception):
    """A download that may succeed later: the job attempt fails and is retried."""


@dataclass(frozen=True)
class MediaSpec:
    """Where a job's media is: stored as the job's content."""

    kind: str  # "url" | "path" | "upload"
    location: str  # the URL, the path inside the media directory, or the upload's file name
    size: int = 0
    sha256: str = ""
    filename: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, content: str) -> MediaSpec:
        return cls(**json.loads(content))


def upload_dir(settings: Settings) -> Path:
    return settings.asr_upload_dir or settings.data_dir / "uploads"


class MediaTranscriber:
    """The job side: the transcript source for `media` jobs, and the sweep that removes ended jobs' files."""

    def __init__(self, database: Database, provider: AsrProvider, settings: Settings) -> None:
        self._db = database
        self._provider = provider
        self._settings = settings

    async def _media_file(self, job: IngestJob, spec: MediaSpec, progress: JobProgress) -> Path:
        settings = self._settings
        if spec.kind == "path":
            return resolve_media_path(settings.asr_media_dir, spec.location)
        directory = upload_dir(settings)
        if spec.kind == "upload":
            path = directory / spec.location
            if not path.exists():
                raise FailedPrecondition(
                    "the uploaded media is not on this worker (ASR_UPLOAD_DIR must be shared with workers)"
                )
            return path
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        fetcher = MediaFetcher(
            settings.asr_allowed_url_origins,
            max_bytes=settings.asr_max_media_bytes,
            timeout_seconds=settings.asr_fetch_timeout_seconds,
        )
        last_write = 0.0

        async def on_bytes(done: int, total: int) -> None:
            nonlocal last_write
            if time.monotonic() - last_write >= 0.5:
                last_write = time.monotonic()
                await progress(stage="fetching", completed_units=done, total_units=total)

        try:
            fetched = await fetcher.download(
                spec.location, directory / f"{job.id}{FETCHED_SUFFIX}", on_progress=on_bytes
            )
        except Unavailable as error:
            raise MediaFetchFailed(error.message) from None
        await progress(stage="fetching", completed_units=fetched.size, total_units=fetched.size)
        return fetched.path

    async def __call__(self, job: IngestJob, progress: JobProgress) -> tuple[ParsedTranscript, str]:
        if job.content is None:
            raise FailedPrecondition("the job has no media")
        spec = MediaSpec.from_json(job.content)
        await progress(stage="fetching")
        path = await self._media_file(job, spec, progress)
        await progress(stage="decoding")
        max_seconds = self._settings.asr_max_media_seconds
        info = await asyncio.to_thread(probe_media, path, max_seconds=max_seconds)
        total = math.ceil(info.duration_seconds or 0.0)
        await progress(stage="transcribing", completed_units=0, total_units=total)

        async def on_seconds(done: float) -> None:
            await progress(stage="transcribing", completed_units=int(done), total_units=max(total, math.ceil(done)))

        result = await transcribe_media(
            path,
            self._provider,
            language=job.language or None,
            window_seconds=self._settings.asr_window_seconds,
            max_seconds=max_seconds,
            on_progress=on_seconds,
        )
        done = max(total, math.ceil(result.duration_seconds))
        await progress(stage="transcribing", completed_units=done, total_units=done)
        if not result.segments:
            raise FailedPrecondition(
                f"no speech detected in {result.duration_seconds:.1f} s of media", reason="NO_SPEECH_DETECTED"
            )
        cues = [
            Cue(index, segment.start, segment.end, segment.text, confidence=segment.confidence)
            for index, segment in enumerate(result.segments)
        ]
        duration = max(result.duration_seconds, cues[-1].end)
        logger.info(
            "media job %s: %d segments from %.1f s (%d of %d windows with speech, language %s)",
            job.id,
            len(cues),
            duration,
            result.speech_windows,
            result.windows,
            result.language,
        )
        parsed = ParsedTranscript(
            format=TranscriptFormat.JSON_SEGMENTS, cues=cues, duration_seconds=duration, language=result.language
        )
        return parsed, f"asr:{self._provider.model_id}"

    async def remove_finished_uploads(self) -> None:
        """Delete media files of jobs that are no longer active, and uploads abandoned mid-stream."""
        directory = upload_dir(self._settings)
        files = await asyncio.to_thread(_list_files, directory)
        now = time.time()
        by_job: dict[str, list[Path]] = {}
        for path, modified in files:
            if path.name.startswith(INCOMING_PREFIX):
                if now - modified > ABANDONED_UPLOAD_SECONDS:
                    await asyncio.to_thread(path.unlink, missing_ok=True)
            elif path.suffix in (UPLOADED_SUFFIX, FETCHED_SUFFIX) and now - modified > ENDED_JOB_GRACE_SECONDS:
                by_job.setdefault(path.stem, []).append(path)
        if not by_job:
            return
        async with self._db.session() as session:
            active = await jobs_repo.active_job_ids(session, list(by_job))
        for job_id, paths in by_job.items():
            if job_id not in active:
                for path in paths:
                    await asyncio.to_thread(path.unlink, missing_ok=True)


def _list_files(directory: Path) -> list[tuple[Path, float]]:
    if not directory.is_dir():
        return []
    listed: list[tuple[Path, float]] = []
    for path in directory.iterdir():
        try:
            if path.is_file():
                listed.append((path, path.stat().st_mtime))
        except FileNotFoundError:
            continue
    return listed


def register_media_transcription(
    transcript_jobs: TranscriptJobs, queue: JobQueue, database: Database, settings: Settings
) -> MediaTranscriber:
    """Make `media` jobs transcribable in this process (server or worker): the configured provider (its model
    loads on the first job), the transcript source, and the upload sweep."""
    transcriber = MediaTranscriber(database, build_asr_provider(settings), settings)
    transcript_jobs.add_source(MEDIA_FORMAT, transcriber)
    queue.add_maintenance("transcripts.remove_finished_uploads", transcriber.remove_finished_uploads)
    return transcriber
