"""SQL of stored transcripts: the transcript rows, their chunks, and their sentence analysis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from server.nlp.analysis import TranscriptAnalysis
from server.transcripts.models import Transcript, TranscriptChunk, TranscriptPhrase, TranscriptSentence


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
