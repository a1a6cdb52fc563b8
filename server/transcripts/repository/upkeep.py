"""SQL of bringing stored transcripts up to date: rows whose vectors are of another embedding model, and
transcripts without the current sentence analysis."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Row, select, text, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper

from server.transcripts.models import Transcript, TranscriptChunk, TranscriptPhrase, TranscriptSentence

AnalysisTable = type[TranscriptSentence] | type[TranscriptPhrase]


async def has_other_model_chunks(session: AsyncSession, model_id: str) -> bool:
    statement = select(TranscriptChunk.id).where(TranscriptChunk.embedding_model != model_id).limit(1)
    return (await session.execute(statement)).first() is not None


async def has_other_model_analysis(session: AsyncSession, model_id: str) -> bool:
    """Whether a sentence or a key phrase has a vector of another model than `model_id`."""
    return (
        await session.execute(
            select(TranscriptSentence.video_id).where(TranscriptSentence.embedding_model != model_id).limit(1)
        )
    ).first() is not None or (
        await session.execute(
            select(TranscriptPhrase.video_id).where(TranscriptPhrase.embedding_model != model_id).limit(1)
        )
    ).first() is not None


async def has_unanalysed(session: AsyncSession, version: str) -> bool:
    """Whether a transcript has no sentence analysis of `version`."""
    statement = select(Transcript.video_id).where(Transcript.analysis_version != version).limit(1)
    return (await session.execute(statement)).first() is not None


async def chunks_to_reembed(session: AsyncSession, model_id: str, limit: int) -> Sequence[Row[str, str, str]]:
    """Up to `limit` chunks with a vector of another model: id, text and that model."""
    return (
        await session.execute(
            select(TranscriptChunk.id, TranscriptChunk.text, TranscriptChunk.embedding_model)
            .where(TranscriptChunk.embedding_model != model_id)
            .order_by(TranscriptChunk.video_id, TranscriptChunk.chunk_index)
            .limit(limit)
        )
    ).all()


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


async def mark_transcripts_embedded(session: AsyncSession, model_id: str) -> None:
    """Record `model_id` on the transcripts all of whose chunks now have its vectors."""
    await session.execute(
        text(
            "UPDATE transcripts t SET embedding_model = :model "
            "WHERE t.embedding_model <> :model AND NOT EXISTS (SELECT 1 FROM transcript_chunks c "
            "WHERE c.video_id = t.video_id AND c.embedding_model <> :model)"
        ),
        {"model": model_id},
    )


def _keys(table: AnalysisTable) -> list[Any]:
    mapper: Mapper[Any] = sa_inspect(table)
    return list(mapper.primary_key)


async def analysis_to_reembed(
    session: AsyncSession, table: AnalysisTable, text_column: Any, model_id: str, limit: int
) -> Sequence[Row[*tuple[Any, ...]]]:
    """Up to `limit` rows of `table` with a vector of another model: their keys, `text` and that model."""
    keys = _keys(table)
    return (
        await session.execute(
            select(*keys, text_column.label("text"), table.embedding_model)
            .where(table.embedding_model != model_id)
            .order_by(*keys)
            .limit(limit)
        )
    ).all()


async def set_analysis_embeddings(
    session: AsyncSession,
    table: AnalysisTable,
    model_id: str,
    embeddings: Sequence[tuple[Row[*tuple[Any, ...]], list[float]]],
) -> int:
    """Store new vectors for rows (as `analysis_to_reembed` read them) still of the model they were read with;
    returns how many rows changed (a row replaced meanwhile by a re-ingest is skipped)."""
    keys = _keys(table)
    converted = 0
    for row, vector in embeddings:
        match = [column == row._mapping[column.name] for column in keys]
        result = await session.execute(
            update(table)
            .where(*match, table.embedding_model == row.embedding_model)
            .values(embedding=vector, embedding_model=model_id)
        )
        converted += getattr(result, "rowcount", 0) or 0
    return converted


async def next_unanalysed(session: AsyncSession, version: str, *, skip: Collection[str]) -> Row[Any] | None:
    """The first transcript (by video id, but those in `skip`) without analysis `version`: video id, content
    hash and cues."""
    return (
        await session.execute(
            select(Transcript.video_id, Transcript.content_hash, Transcript.cues)
            .where(Transcript.analysis_version != version, Transcript.video_id.not_in(skip))
            .order_by(Transcript.video_id)
            .limit(1)
        )
    ).first()


async def analysis_state(session: AsyncSession, video_id: str) -> Row[str, str, str] | None:
    """The transcript's course, content hash and analysis version, or None when it is gone."""
    return (
        await session.execute(
            select(Transcript.course_id, Transcript.content_hash, Transcript.analysis_version).where(
                Transcript.video_id == video_id
            )
        )
    ).first()
