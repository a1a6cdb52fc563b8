"""Stored transcripts brought up to date with this process: vectors of another embedding model re-embedded
with the active one, and transcripts stored before the current sentence analysis analysed. Both run as jobs
of the transcripts queue (`jobs.py` registers and schedules them), a batch or a video per transaction, and
leave alone whatever a re-ingest replaced meanwhile."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from server.core.db import Database
from server.embeddings.base import Embedder
from server.nlp.analysis import ANALYSIS_VERSION, analyse
from server.transcripts.models import TranscriptPhrase, TranscriptSentence
from server.transcripts.repository import transcripts as transcripts_repo
from server.transcripts.repository import upkeep as upkeep_repo

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
                batch = await upkeep_repo.chunks_to_reembed(session, model, REEMBED_BATCH)
            if not batch:
                break
            vectors = await self._embedder.embed([row.text for row in batch])
            async with self._db.transaction() as session:
                converted += await upkeep_repo.set_chunk_embeddings(
                    session,
                    model,
                    [(row.id, vector, row.embedding_model) for row, vector in zip(batch, vectors, strict=True)],
                )
                await upkeep_repo.mark_transcripts_embedded(session, model)
        logger.info("re-embed job: %d chunks now use %s", converted, model)

    async def _reembed_rows(self, table: upkeep_repo.AnalysisTable, text_column: Any, model: str) -> int:
        converted = 0
        while True:
            async with self._db.session() as session:
                batch = await upkeep_repo.analysis_to_reembed(session, table, text_column, model, REEMBED_BATCH)
            if not batch:
                return converted
            vectors = await self._embedder.embed([row.text for row in batch])
            async with self._db.transaction() as session:
                converted += await upkeep_repo.set_analysis_embeddings(
                    session, table, model, list(zip(batch, vectors, strict=True))
                )

    # --- sentence analysis of transcripts stored before it existed --------------------------------------

    async def run_analysis_backfill(self) -> None:
        """Analyse, one video at a time, every transcript without the current analysis (stored before it
        existed, or by an older version). Each video commits on its own; one re-ingested or deleted meanwhile
        is left alone (its ingest wrote a fresh analysis)."""
        model = self._embedder.model_id
        done: set[str] = set()
        while True:
            async with self._db.session() as session:
                row = await upkeep_repo.next_unanalysed(session, ANALYSIS_VERSION, skip=done)
            if row is None:
                break
            done.add(row.video_id)
            cues = [StoredCue(float(cue["start"]), float(cue["end"]), str(cue["text"])) for cue in row.cues]
            analysis = await asyncio.to_thread(analyse, cues)
            vectors = await self._embedder.embed(
                [sentence.text for sentence in analysis.sentences] + [phrase.surface for phrase in analysis.phrases]
            )
            async with self._db.transaction() as session:
                await transcripts_repo.lock_video(session, row.video_id)
                current = await upkeep_repo.analysis_state(session, row.video_id)
                if current is None or current.content_hash != row.content_hash:
                    continue
                sentences, phrases = transcripts_repo.analysis_rows(
                    row.video_id,
                    current.course_id,
                    analysis,
                    model,
                    vectors[: len(analysis.sentences)],
                    vectors[len(analysis.sentences) :],
                )
                await transcripts_repo.replace_analysis(
                    session, row.video_id, sentences=sentences, phrases=phrases, version=analysis.version
                )
            logger.info("analysis backfill: %s has %d sentences", row.video_id, len(analysis.sentences))
