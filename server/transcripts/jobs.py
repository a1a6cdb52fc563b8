"""Background work of the transcripts domain: ingest jobs, recovery of lost jobs, and the registration and
scheduling of the upkeep jobs (re-embedding, analysis backfill: `upkeep.py`).

An ingest job marks itself RUNNING and reads its content from `ingest_jobs` in one statement, takes the
transcript the ingest call already parsed (when that call ran in this process; otherwise it parses the
content), chunks and embeds it, reporting progress in the job row, then swaps the video's chunks in one
transaction together with marking the job SUCCEEDED. Every step before the swap is side-effect free, so a
job interrupted anywhere (worker killed, shutdown, crash) is simply run again from the start by the next
worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from server.config import Settings
from server.core import tracing
from server.core.db import Database
from server.core.errors import DomainError
from server.embeddings.base import Embedder
from server.jobs.queue import AlreadyEnqueued, JobQueue
from server.nlp.addressed import addressed_to_model
from server.nlp.analysis import ANALYSIS_VERSION, TranscriptAnalysis, analyse
from server.transcripts.chunking import Chunk, chunk_cues
from server.transcripts.handoff import PARSED_HANDOFF, content_hash, cue_records
from server.transcripts.models import IngestJob
from server.transcripts.parsing import ParsedTranscript, format_timestamp, parse_transcript
from server.transcripts.repository import jobs as jobs_repo
from server.transcripts.repository import search as search_repo
from server.transcripts.repository import transcripts as transcripts_repo
from server.transcripts.repository import upkeep as upkeep_repo
from server.transcripts.service import INGEST_TASK
from server.transcripts.upkeep import TranscriptUpkeep

logger = logging.getLogger(__name__)

QUEUE = "transcripts"
REEMBED_TASK = "transcripts.reembed"
ANALYSE_TASK = "transcripts.analyse"
# Progress writes at most this often while embedding (the last batch is left to the indexing stage write).
PROGRESS_INTERVAL_SECONDS = 0.2
# An IngestJob reports at most this many warnings.
MAX_JOB_WARNINGS = 20


class JobProgress(Protocol):
    """Writes a running job's stage and units (what WatchIngestJob shows)."""

    async def __call__(self, *, stage: str, completed_units: int = 0, total_units: int = 0) -> None: ...


# Produces the transcript of a job whose `format` is not a caption format (e.g. media for speech to text),
# reporting its own stages; returns the transcript and its `source` label. Chunking, embedding and the swap
# are then the same as for captions.
TranscriptSource = Callable[[IngestJob, JobProgress], Awaitable[tuple[ParsedTranscript, str]]]


def prepare_transcript(parsed: ParsedTranscript) -> tuple[list[Chunk], list[dict[str, Any]], TranscriptAnalysis]:
    """The CPU-bound preparation of a transcript, in one step (one hop to a worker thread): its chunks, its
    cues as stored, and its sentences and key phrases (server.nlp)."""
    return chunk_cues(parsed.cues), cue_records(parsed), analyse(parsed.cues)


def embedding_texts(chunks: Sequence[Chunk], analysis: TranscriptAnalysis) -> list[str]:
    """What an ingest job embeds in its one pass, in this order: the chunks, their sentences, the video's key
    phrases."""
    texts = [chunk.text for chunk in chunks]
    texts += [sentence.text for sentence in analysis.sentences]
    texts += [phrase.surface for phrase in analysis.phrases]
    return texts


class TranscriptJobs:
    """The task bodies, bound to this process's database and embedder."""

    def __init__(self, database: Database, embedder: Embedder, queue: JobQueue, settings: Settings) -> None:
        self._db = database
        self._embedder = embedder
        self._queue = queue
        self._settings = settings
        self._sources: dict[str, TranscriptSource] = {}
        self._upkeep = TranscriptUpkeep(database, embedder)

    def add_source(self, job_format: str, source: TranscriptSource) -> None:
        """Jobs of `job_format` get their transcript from `source` instead of parsing their content."""
        self._sources[job_format] = source

    def _progress(self, job_id: str) -> JobProgress:
        async def report(*, stage: str, completed_units: int = 0, total_units: int = 0) -> None:
            await self._update(job_id, stage=stage, completed_units=completed_units, total_units=total_units)

        return report

    def register(self) -> None:
        self._queue.register(INGEST_TASK, self.run_ingest, queue=QUEUE)
        self._queue.register(REEMBED_TASK, self._upkeep.run_reembed, queue=QUEUE)
        self._queue.register(ANALYSE_TASK, self._upkeep.run_analysis_backfill, queue=QUEUE)
        self._queue.add_maintenance("transcripts.requeue_lost_jobs", self.requeue_lost_jobs)

    async def prepare(self) -> None:
        """Make the active model searchable: its HNSW index exists, and chunks embedded by another model
        get converted by a re-embed job."""
        model = self._embedder.model_id
        if await search_repo.ensure_vector_index(self._db, model, self._embedder.dimension):
            logger.info("created the HNSW index for embedding model %s", model)
        async with self._db.session() as session:
            stale = await upkeep_repo.has_other_model_chunks(session, model)
            stale_analysis = await upkeep_repo.has_other_model_analysis(session, model)
            unanalysed = await upkeep_repo.has_unanalysed(session, ANALYSIS_VERSION)
        if stale or stale_analysis:
            await self.schedule_reembed()
        if unanalysed:
            await self._schedule(ANALYSE_TASK, "transcripts without the current sentence analysis will get it")

    async def schedule_reembed(self) -> None:
        await self._schedule(REEMBED_TASK, f"vectors of other models will move to {self._embedder.model_id}")

    async def _schedule(self, task: str, why: str) -> None:
        try:
            await self._queue.defer(task, queueing_lock=task)
        except AlreadyEnqueued:
            return
        logger.info("%s job queued: %s", task, why)

    # --- ingest ------------------------------------------------------------------------------------

    async def run_ingest(self, job_id: str) -> None:
        with tracing.span("ingest.job", job_id=job_id):
            await self._ingest(job_id)

    async def _ingest(self, job_id: str) -> None:
        handed_over = PARSED_HANDOFF.take(job_id)
        async with self._db.transaction() as session:
            job = await jobs_repo.start_job(session, job_id, stage="parsing" if handed_over is None else "chunking")
        if job is None:
            return
        external = self._sources.get(job.format)
        try:
            if external is not None:
                parsed, source = await external(job, self._progress(job_id))
                digest = content_hash(parsed)
            else:
                if handed_over is None:
                    handed_over = await asyncio.to_thread(
                        parse_transcript, job.content or "", job.format, duration_seconds=job.duration_seconds
                    )
                # The call that queued the job hashed this very content.
                parsed, source, digest = handed_over, "upload", job.content_hash
            with tracing.span("ingest.prepare", video_id=job.video_id):
                chunks, cues, analysis = await asyncio.to_thread(prepare_transcript, parsed)
            total = len(chunks)
            warnings = list(parsed.warnings)
            addressed = [s for s in analysis.sentences if addressed_to_model(s.text, s.lemmas)]
            if addressed:
                said = ", ".join(format_timestamp(s.start_seconds) for s in addressed[:5])
                warnings.append(
                    f"{len(addressed)} sentence(s) read as instructions to a model, never quoted by the tutor "
                    f"(at {said})"
                )
                logger.warning("ingest job %s: %s of %s: %s", job_id, job.video_id, job.course_id, warnings[-1])
            # One embedding pass for the chunks, their sentences and the video's key phrases; its progress
            # counts all of them, the stages after it count chunks.
            texts = embedding_texts(chunks, analysis)
            await self._update(job_id, stage="embedding", completed_units=0, total_units=len(texts))
            last_write = time.monotonic()

            async def on_progress(done: int, of: int) -> None:
                # The last batch is not written: the indexing stage follows at once.
                nonlocal last_write
                now = time.monotonic()
                if done < of and now - last_write >= PROGRESS_INTERVAL_SECONDS:
                    last_write = now
                    await self._update(job_id, completed_units=done)

            with tracing.span("ingest.embed", texts=len(texts)):
                vectors = await self._embedder.embed(texts, on_progress=on_progress)
            if len(vectors) != len(texts):
                raise RuntimeError(f"the embedder returned {len(vectors)} vectors for {len(texts)} texts")
            await self._update(job_id, stage="indexing", completed_units=0, total_units=total)
            model = self._embedder.model_id
            sentence_rows, phrase_rows = transcripts_repo.analysis_rows(
                job.video_id,
                job.course_id,
                analysis,
                model,
                vectors[total : total + len(analysis.sentences)],
                vectors[total + len(analysis.sentences) :],
            )
            transcript = {
                "video_id": job.video_id,
                "course_id": job.course_id,
                "title": job.title,
                "language": job.language or parsed.language or "",
                "source": source,
                "format": job.format,
                "timing_estimated": parsed.timing_estimated,
                "duration_seconds": parsed.duration_seconds,
                "cue_count": len(parsed.cues),
                "chunk_count": total,
                "content_hash": digest,
                "embedding_model": model,
                "cues": cues,
                "ingest_job_id": job_id,
            }
            rows = [
                {
                    "id": uuid.uuid4().hex,
                    "video_id": job.video_id,
                    "course_id": job.course_id,
                    "chunk_index": chunk.index,
                    "start_seconds": chunk.start,
                    "end_seconds": chunk.end,
                    "text": chunk.text,
                    "token_count": chunk.token_count,
                    "embedding_model": model,
                    "embedding": vector,
                }
                for chunk, vector in zip(chunks, vectors[:total], strict=True)
            ]
            with tracing.span("ingest.store", chunks=total):
                async with self._db.transaction() as session:
                    await transcripts_repo.lock_video(session, job.video_id)
                    # Marked done first: a job that ended meanwhile (failed by the sweep) leaves nothing behind.
                    done = await jobs_repo.finish_job(
                        session, job_id, total_units=total, warnings=warnings[:MAX_JOB_WARNINGS]
                    )
                    if not done:
                        return
                    await transcripts_repo.replace_transcript(
                        session, transcript=transcript, chunks=rows, first_ingested=job.create_time
                    )
                    await transcripts_repo.replace_analysis(
                        session, job.video_id, sentences=sentence_rows, phrases=phrase_rows, version=analysis.version
                    )
            logger.info("ingest job %s: %s indexed (%d chunks, %s)", job_id, job.video_id, total, model)
        except DomainError as error:
            logger.warning("ingest job %s failed: %s", job_id, error.reason)
            await self._fail(job_id, error.message)
        except Exception as error:
            if job.attempts < self._settings.job_max_attempts:
                logger.exception("ingest job %s: attempt %d failed; it will be retried", job_id, job.attempts)
                raise
            logger.exception("ingest job %s failed", job_id)
            await self._fail(job_id, f"internal error ({type(error).__name__}) after {job.attempts} attempts")

    async def _update(self, job_id: str, **values: Any) -> None:
        async with self._db.transaction() as session:
            await jobs_repo.update_job(session, job_id, **values)

    async def _fail(self, job_id: str, reason: str) -> None:
        async with self._db.transaction() as session:
            await jobs_repo.update_job(
                session, job_id, state="failed", error_message=reason[:2000] or "failed", content=None
            )

    async def requeue_lost_jobs(self) -> None:
        """Jobs whose queue entry ended or vanished while the job row is still active (e.g. aborted more
        often than the queue retries) are queued again, until JOB_MAX_ATTEMPTS; then they fail."""
        grace = max(2 * self._settings.job_sweep_seconds, 5.0)
        async with self._db.session() as session:
            lost = await jobs_repo.lost_jobs(session, grace)
        for job_id, video_id, attempts, queue_job_id in lost:
            async with self._db.transaction() as session:
                if not await jobs_repo.claim_lost_job(session, job_id, queue_job_id):
                    continue
                if attempts >= self._settings.job_max_attempts:
                    await jobs_repo.update_job(
                        session,
                        job_id,
                        state="failed",
                        error_message=f"the job was interrupted {attempts} times; giving up",
                        content=None,
                    )
                    logger.error("ingest job %s given up after %d interrupted attempts", job_id, attempts)
                    continue
                new_queue_job = await self._queue.defer(
                    INGEST_TASK, session=session, lock=f"video:{video_id}", job_id=job_id
                )
                await jobs_repo.update_job(session, job_id, queue_job_id=new_queue_job)
                logger.warning("ingest job %s had lost its queue entry; queued again", job_id)


def register_transcript_jobs(
    queue: JobQueue, database: Database, embedder: Embedder, settings: Settings
) -> TranscriptJobs:
    jobs = TranscriptJobs(database, embedder, queue, settings)
    jobs.register()
    return jobs
