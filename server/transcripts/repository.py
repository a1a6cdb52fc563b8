"""SQL of the transcripts domain. Functions take a session and flush; the caller owns the transaction."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, inspect, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from server.core.db import Database
from server.nlp.analysis import TranscriptAnalysis
from server.transcripts.models import IngestJob, Transcript, TranscriptChunk, TranscriptPhrase, TranscriptSentence
from server.transcripts.search_sql import sql_model_literal

ACTIVE_STATES = ("queued", "running")
TERMINAL_STATES = ("succeeded", "failed")
# HNSW indexes hold at most 2000 dimensions of `vector`.
MAX_INDEXED_DIMENSION = 2000


def vector_index_name(model_id: str) -> str:
    """`ix_transcript_chunks_hnsw_<model slug>` (a hash replaces the tail of very long slugs)."""
    slug = re.sub(r"[^a-z0-9]+", "_", model_id.lower()).strip("_")
    name = f"ix_transcript_chunks_hnsw_{slug}"
    if len(name) > 63:
        digest = hashlib.sha256(model_id.encode()).hexdigest()[:10]
        name = f"{name[:52]}_{digest}"
    return name


async def ensure_vector_index(database: Database, model_id: str, dimension: int) -> bool:
    """Create the model's partial HNSW index unless a valid one exists; True when it was created now.

    The built-in models' indexes come with the migrations; this covers any other configured model. The
    index is built CONCURRENTLY, so ingest keeps writing meanwhile; a build that failed half way (an invalid
    index) is dropped and started again. Replicas starting together: the first builds, the others find the
    name taken and go on (their searches use the exact path until the index is ready).
    """
    if dimension > MAX_INDEXED_DIMENSION:
        return False
    name = vector_index_name(model_id)
    async with database.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        valid = (
            await autocommit.execute(
                text(
                    "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                    "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace"
                ),
                {"name": name},
            )
        ).scalar_one_or_none()
        if valid:
            return False
        if valid is False:
            await autocommit.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
        await autocommit.execute(
            text(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON transcript_chunks USING hnsw "
                f"((embedding::vector({int(dimension)})) vector_cosine_ops) "
                f"WHERE embedding_model = {sql_model_literal(model_id)}"
            )
        )
    return True


# --- ingest jobs -----------------------------------------------------------------------------------


async def get_job(session: AsyncSession, job_id: str, *, with_content: bool = False) -> IngestJob | None:
    statement = select(IngestJob).where(IngestJob.id == job_id)
    if with_content:
        statement = statement.options(undefer(IngestJob.content))
    return (await session.execute(statement)).scalar_one_or_none()


async def find_job_by_request(session: AsyncSession, requested_by: str, request_id: str) -> IngestJob | None:
    statement = select(IngestJob).where(IngestJob.requested_by == requested_by, IngestJob.request_id == request_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_job(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert unless (requested_by, request_id) exists; True when this call inserted it."""
    statement = (
        pg_insert(IngestJob)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_ingest_jobs_requested_by")
        .returning(IngestJob.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def update_job(session: AsyncSession, job_id: str, **values: Any) -> None:
    await session.execute(update(IngestJob).where(IngestJob.id == job_id).values(**values, update_time=func.now()))


async def start_job(session: AsyncSession, job_id: str, *, stage: str) -> IngestJob | None:
    """Mark a job RUNNING at `stage` and count the attempt, in one statement; the job with its content, or
    None when it has ended (or kept no content to work on)."""
    columns = list(inspect(IngestJob).columns)
    row = (
        await session.execute(
            update(IngestJob)
            .where(IngestJob.id == job_id, IngestJob.state.in_(ACTIVE_STATES), IngestJob.content.is_not(None))
            .values(
                state="running",
                stage=stage,
                completed_units=0,
                total_units=0,
                attempts=IngestJob.attempts + 1,
                update_time=func.now(),
            )
            .returning(*columns)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    return IngestJob(**{column.key: value for column, value in zip(columns, row, strict=True)})


async def finish_job(session: AsyncSession, job_id: str, *, total_units: int, warnings: Sequence[str] = ()) -> bool:
    """Mark an active job SUCCEEDED with what it repaired or left out (and drop its content); False when it
    had already ended."""
    result = await session.execute(
        update(IngestJob)
        .where(IngestJob.id == job_id, IngestJob.state.in_(ACTIVE_STATES))
        .values(
            state="succeeded",
            stage="done",
            completed_units=total_units,
            total_units=total_units,
            error_message="",
            warnings=list(warnings),
            content=None,
            update_time=func.now(),
        )
        .returning(IngestJob.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def has_active_job(session: AsyncSession, video_id: str, *, other_than: str | None = None) -> bool:
    statement = select(func.count()).where(IngestJob.video_id == video_id, IngestJob.state.in_(ACTIVE_STATES))
    if other_than is not None:
        statement = statement.where(IngestJob.id != other_than)
    return bool((await session.execute(statement)).scalar_one())


async def lost_jobs(session: AsyncSession, older_than_seconds: float) -> list[tuple[str, str, int, int | None]]:
    """Active jobs whose queue entry is gone or finished: (id, video_id, attempts, queue job id)."""
    rows = await session.execute(
        text(
            "SELECT j.id, j.video_id, j.attempts, j.queue_job_id FROM ingest_jobs j "
            "LEFT JOIN procrastinate_jobs q ON q.id = j.queue_job_id "
            "WHERE j.state IN ('queued', 'running') "
            "AND j.update_time < now() - make_interval(secs => :older_than) "
            "AND (q.id IS NULL OR q.status IN ('succeeded', 'failed', 'aborted', 'cancelled')) "
            "ORDER BY j.create_time LIMIT 100"
        ),
        {"older_than": older_than_seconds},
    )
    return [(row.id, row.video_id, int(row.attempts), row.queue_job_id) for row in rows]


# --- transcripts -----------------------------------------------------------------------------------


async def get_transcript(session: AsyncSession, video_id: str, *, with_cues: bool = False) -> Transcript | None:
    statement = select(Transcript).where(Transcript.video_id == video_id)
    if with_cues:
        statement = statement.options(undefer(Transcript.cues))
    return (await session.execute(statement)).scalar_one_or_none()


async def lock_video(session: AsyncSession, video_id: str) -> None:
    """Serialise writers of one video's transcript until the transaction ends."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('transcripts'), hashtext(:video_id))"), {"video_id": video_id}
    )


async def list_transcripts(
    session: AsyncSession, *, course_id: str | None, after: tuple[str, str] | None, limit: int
) -> list[Transcript]:
    statement = select(Transcript).order_by(Transcript.course_id, Transcript.video_id).limit(limit)
    if course_id is not None:
        statement = statement.where(Transcript.course_id == course_id)
    if after is not None:
        statement = statement.where(func.row(Transcript.course_id, Transcript.video_id) > func.row(after[0], after[1]))
    return list((await session.execute(statement)).scalars())


async def delete_transcript(session: AsyncSession, video_id: str) -> bool:
    """Delete the transcript and (by cascade) its chunks; False when there was none."""
    result = await session.execute(
        delete(Transcript).where(Transcript.video_id == video_id).returning(Transcript.video_id)
    )
    return result.scalar_one_or_none() is not None


async def update_transcript_metadata(
    session: AsyncSession, video_id: str, *, course_id: str, title: str, language: str
) -> None:
    await session.execute(
        update(Transcript)
        .where(Transcript.video_id == video_id)
        .values(course_id=course_id, title=title, language=language, update_time=func.now())
    )
    for table in (TranscriptChunk, TranscriptSentence, TranscriptPhrase):
        await session.execute(update(table).where(table.video_id == video_id).values(course_id=course_id))


def analysis_rows(
    video_id: str,
    course_id: str,
    analysis: TranscriptAnalysis,
    model_id: str,
    sentence_vectors: Sequence[list[float]],
    phrase_vectors: Sequence[list[float]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The sentence and phrase rows of an analysed transcript, each with its vector of `model_id`."""
    sentences = [
        {
            "video_id": video_id,
            "sentence_index": sentence.index,
            "course_id": course_id,
            "start_seconds": sentence.start_seconds,
            "end_seconds": sentence.end_seconds,
            "text": sentence.text,
            "lemmas": list(sentence.lemmas),
            "kinds": sorted(sentence.kinds),
            "mentions": [[mention.key, mention.start, mention.end] for mention in sentence.mentions],
            "frames": [frame.to_json() for frame in sentence.frames],
            "complete": sentence.complete,
            "embedding_model": model_id,
            "embedding": vector,
        }
        for sentence, vector in zip(analysis.sentences, sentence_vectors, strict=True)
    ]
    phrases = [
        {
            "video_id": video_id,
            "key": phrase.key,
            "course_id": course_id,
            "surface": phrase.surface,
            "kind": phrase.kind,
            "mentions": phrase.mentions,
            "sentences": phrase.sentences,
            "embedding_model": model_id,
            "embedding": vector,
        }
        for phrase, vector in zip(analysis.phrases, phrase_vectors, strict=True)
    ]
    return sentences, phrases


async def replace_analysis(
    session: AsyncSession,
    video_id: str,
    *,
    sentences: Sequence[dict[str, Any]],
    phrases: Sequence[dict[str, Any]],
    version: str,
) -> None:
    """Swap a video's sentences and phrases and record which analysis made them, in the caller's transaction."""
    await session.execute(delete(TranscriptSentence).where(TranscriptSentence.video_id == video_id))
    await session.execute(delete(TranscriptPhrase).where(TranscriptPhrase.video_id == video_id))
    if sentences:
        await session.execute(insert(TranscriptSentence), list(sentences))
    if phrases:
        await session.execute(insert(TranscriptPhrase), list(phrases))
    await session.execute(update(Transcript).where(Transcript.video_id == video_id).values(analysis_version=version))


async def replace_transcript(
    session: AsyncSession,
    *,
    transcript: dict[str, Any],
    chunks: Sequence[dict[str, Any]],
    first_ingested: datetime,
) -> None:
    """Upsert the transcript row and swap its chunks: old ones deleted, new ones inserted, in the caller's
    transaction (readers see either set, never both or neither)."""
    video_id = transcript["video_id"]
    statement = pg_insert(Transcript).values(**transcript, create_time=first_ingested)
    updated = {key: statement.excluded[key] for key in transcript if key != "video_id"}
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Transcript.video_id], set_={**updated, "update_time": func.now()}
        )
    )
    await session.execute(delete(TranscriptChunk).where(TranscriptChunk.video_id == video_id))
    if chunks:
        await session.execute(insert(TranscriptChunk), list(chunks))


async def set_chunk_embeddings(
    session: AsyncSession, model_id: str, embeddings: Sequence[tuple[str, list[float], str]]
) -> int:
    """Store new vectors for chunks whose model is still `previous` (id, vector, previous model); returns how
    many rows changed (a chunk replaced meanwhile by a re-ingest is skipped)."""
    changed = 0
    for chunk_id, vector, previous in embeddings:
        result = await session.execute(
            update(TranscriptChunk)
            .where(TranscriptChunk.id == chunk_id, TranscriptChunk.embedding_model == previous)
            .values(embedding=vector, embedding_model=model_id)
        )
        changed += getattr(result, "rowcount", 0) or 0
    return changed
