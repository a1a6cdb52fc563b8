"""Stored transcripts brought up to date with this process: vectors of another embedding model re-embedded
with the active one, and transcripts stored before the current sentence analysis analysed. Both run as jobs
of the transcripts queue (`jobs.py` registers and schedules them), a batch or a video per transaction, and
leave alone whatever a re-ingest replaced meanwhile."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, text, update
from sqlalchemy.orm import Mapper

from server.core.db import Database
from server.embeddings.base import Embedder
from server.nlp.analysis import ANALYSIS_VERSION, analyse
from server.transcripts import repository
from server.transcripts.models import Transcript, TranscriptChunk, TranscriptPhrase, TranscriptSentence

logger = logging.getLogger(__name__)

REEMBED_BATCH = 256


@dataclass(frozen=True, slots=True)
class StoredCue:
    """A cue of a stored transcript, as the sentence analysis reads it."""

    start: float
    end: float
    text: str


class TranscriptUpkeep:
    def __init__(self, database: Database, embedder: Embedder) -> None:
        self._db = database
        self._embedder = embedder

    # --- re-embedding ------------------------------------------------------------------------------

    async def run_reembed(self) -> None:
        """Give every chunk, sentence and key phrase a vector of the active model, a batch at a time; each batch
        commits on its own, and a row replaced meanwhile by a re-ingest is left alone."""
        model = self._embedder.model_id
        for table, text_column in (
            (TranscriptSentence, TranscriptSentence.text),
            (TranscriptPhrase, TranscriptPhrase.surface),
        ):
            moved = await self._reembed_rows(table, text_column, model)
            if moved:
                logger.info("re-embed job: %d rows of %s now use %s", moved, table.__tablename__, model)
        converted = 0
        while True:
            async with self._db.session() as session:
                batch = (
                    await session.execute(
                        select(TranscriptChunk.id, TranscriptChunk.text, TranscriptChunk.embedding_model)
                        .where(TranscriptChunk.embedding_model != model)
                        .order_by(TranscriptChunk.video_id, TranscriptChunk.chunk_index)
                        .limit(REEMBED_BATCH)
                    )
                ).all()
            if not batch:
                break
            vectors = await self._embedder.embed([row.text for row in batch])
            async with self._db.transaction() as session:
                converted += await repository.set_chunk_embeddings(
                    session,
                    model,
                    [(row.id, vector, row.embedding_model) for row, vector in zip(batch, vectors, strict=True)],
                )
                await session.execute(
                    text(
                        "UPDATE transcripts t SET embedding_model = :model "
                        "WHERE t.embedding_model <> :model AND NOT EXISTS (SELECT 1 FROM transcript_chunks c "
                        "WHERE c.video_id = t.video_id AND c.embedding_model <> :model)"
                    ),
                    {"model": model},
                )
        logger.info("re-embed job: %d chunks now use %s", converted, model)

    async def _reembed_rows(
        self, table: type[TranscriptSentence] | type[TranscriptPhrase], text_column: Any, model: str
    ) -> int:
        mapper: Mapper[Any] = sa_inspect(table)
        keys = list(mapper.primary_key)
        converted = 0
        while True:
            async with self._db.session() as session:
                batch = (
                    await session.execute(
                        select(*keys, text_column.label("text"), table.embedding_model)
                        .where(table.embedding_model != model)
                        .order_by(*keys)
                        .limit(REEMBED_BATCH)
                    )
                ).all()
            if not batch:
                return converted
            vectors = await self._embedder.embed([row.text for row in batch])
            async with self._db.transaction() as session:
                for row, vector in zip(batch, vectors, strict=True):
                    match = [column == row._mapping[column.name] for column in keys]
                    result = await session.execute(
                        update(table)
                        .where(*match, table.embedding_model == row.embedding_model)
                        .values(embedding=vector, embedding_model=model)
                    )
                    converted += getattr(result, "rowcount", 0) or 0

    # --- sentence analysis of transcripts stored before it existed --------------------------------------

    async def run_analysis_backfill(self) -> None:
        """Analyse, one video at a time, every transcript without the current analysis (stored before it
        existed, or by an older version). Each video commits on its own; one re-ingested or deleted meanwhile
        is left alone (its ingest wrote a fresh analysis)."""
        model = self._embedder.model_id
        done: set[str] = set()
        while True:
            async with self._db.session() as session:
                row = (
                    await session.execute(
                        select(Transcript.video_id, Transcript.content_hash, Transcript.cues)
                        .where(Transcript.analysis_version != ANALYSIS_VERSION, Transcript.video_id.not_in(done))
                        .order_by(Transcript.video_id)
                        .limit(1)
                    )
                ).first()
            if row is None:
                break
            done.add(row.video_id)
            cues = [StoredCue(float(cue["start"]), float(cue["end"]), str(cue["text"])) for cue in row.cues]
            analysis = await asyncio.to_thread(analyse, cues)
            vectors = await self._embedder.embed(
                [sentence.text for sentence in analysis.sentences] + [phrase.surface for phrase in analysis.phrases]
            )
            async with self._db.transaction() as session:
                await repository.lock_video(session, row.video_id)
                current = (
                    await session.execute(
                        select(Transcript.course_id, Transcript.content_hash, Transcript.analysis_version).where(
                            Transcript.video_id == row.video_id
                        )
                    )
                ).first()
                if current is None or current.content_hash != row.content_hash:
                    continue
                sentences, phrases = repository.analysis_rows(
                    row.video_id,
                    current.course_id,
                    analysis,
                    model,
                    vectors[: len(analysis.sentences)],
                    vectors[len(analysis.sentences) :],
                )
                await repository.replace_analysis(
                    session, row.video_id, sentences=sentences, phrases=phrases, version=analysis.version
                )
            logger.info("analysis backfill: %s has %d sentences", row.video_id, len(analysis.sentences))
