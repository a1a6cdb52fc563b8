"""Retrieval over transcript chunks: hybrid search (vectors + full text, fused by reciprocal rank) and
time-range reads for grounding.

One search is one SQL statement, so it reads one snapshot: while a re-ingest swaps a video's chunks, a search
sees the old chunks or the new ones, never a mix. Only vectors of the active embedding model take part in the
vector half; full text covers every chunk. The statements are built and run in `repository/search.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.core.db import Database
from server.core.errors import DomainError
from server.core.values import SearchHit, VideoInfo
from server.embeddings.base import Embedder
from server.transcripts.repository import search as search_repo
from server.transcripts.repository.search_sql import RRF_K, vector_literal

logger = logging.getLogger(__name__)

MAX_LIMIT = 50
QUERY_VECTOR_CACHE_SIZE = 512
# The highest score a hybrid hit can have (first in both the vector and the full-text ranking): agents read a
# hit's score against it as a confidence.
BEST_FUSED_SCORE = 2.0 / (RRF_K + 1)


@dataclass(frozen=True)
class SearchOutcome:
    """Hits plus the embedding model whose vectors were used ("" when the vector half was skipped)."""

    hits: list[SearchHit]
    embedding_model: str


def _hit(row: Any) -> SearchHit:
    return SearchHit(
        chunk_id=row.id,
        video_id=row.video_id,
        course_id=row.course_id,
        start_seconds=float(row.start_seconds),
        end_seconds=float(row.end_seconds),
        text=row.text,
        score=float(getattr(row, "score", 0.0) or 0.0),
        vector_rank=int(getattr(row, "vector_rank", 0) or 0),
        text_rank=int(getattr(row, "text_rank", 0) or 0),
    )


def _video_info(row: Any) -> VideoInfo:
    return VideoInfo(
        video_id=row.video_id,
        course_id=row.course_id,
        title=row.title,
        duration_seconds=float(row.duration_seconds),
        chunk_count=int(row.chunk_count),
    )


class TranscriptSearch:
    """Read side of the transcripts domain, shared by chat, agents and the SearchTranscripts RPC."""

    def __init__(self, database: Database, embedder: Embedder, *, query_embedding_timeout_seconds: float = 5.0) -> None:
        self._db = database
        self._embedder = embedder
        # A search waits this long for its query vector (an upstream may be retrying a 429), then goes on
        # with full text alone.
        self._query_timeout = query_embedding_timeout_seconds
        # The query's vector as the SQL literal a search sends (formatting 384 floats costs a few hundred us).
        self._query_vectors: OrderedDict[tuple[str, str], str] = OrderedDict()
        # Embeddings being computed, shared by every caller asking for the same text meanwhile.
        self._embedding: dict[tuple[str, str], asyncio.Task[str | None]] = {}

    @property
    def embedding_model(self) -> str:
        return self._embedder.model_id

    async def search(
        self,
        query: str,
        *,
        video_id: str | None = None,
        course_id: str | None = None,
        time_window: tuple[float, float] | None = None,
        limit: int = 5,
    ) -> list[SearchHit]:
        outcome = await self.search_with_model(
            query, video_id=video_id, course_id=course_id, time_window=time_window, limit=limit
        )
        return outcome.hits

    async def search_with_model(
        self,
        query: str,
        *,
        video_id: str | None = None,
        course_id: str | None = None,
        time_window: tuple[float, float] | None = None,
        limit: int = 5,
        exact: bool | None = None,
    ) -> SearchOutcome:
        """Hybrid search, with the embedding model used. `exact=True` forces the exact vector scan and
        `exact=False` lets the planner use the HNSW index; by default a video or a course is ranked exactly
        and a search over every chunk may use the index."""
        query = query.strip()
        if not query:
            return SearchOutcome([], "")
        limit = max(1, min(limit, MAX_LIMIT))
        candidates = max(4 * limit, 40)
        vector = await self.query_vector(query)
        model_id = self._embedder.model_id if vector is not None else None
        use_exact = exact if exact is not None else video_id is not None or course_id is not None
        request = search_repo.HybridQuery(
            query=query,
            query_vector=vector,
            model_id=model_id,
            dimension=self._embedder.dimension if vector is not None else 0,
            video_id=video_id,
            course_id=course_id,
            time_window=time_window,
            candidates=candidates,
            limit=limit,
            exact=use_exact,
        )
        if vector is not None and not use_exact:
            async with self._db.transaction() as session:
                await search_repo.use_iterative_scan(session, candidates)
                rows = await search_repo.hybrid(session, request)
        else:
            # One statement, one snapshot: no transaction around it is needed (and none is paid for).
            async with self._db.engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                rows = await search_repo.hybrid(autocommit, request)
        return SearchOutcome([_hit(row) for row in rows], model_id or "")

    async def nearest_chunks(
        self,
        query_vector: Sequence[float],
        *,
        video_id: str | None = None,
        course_id: str | None = None,
        limit: int = 10,
        exact: bool = False,
    ) -> list[str]:
        """Ids of the `limit` chunks closest to `query_vector` (active model only), by the exact scan or the
        HNSW index: the vector half of `search`, for diagnostics and recall measurements."""
        async with self._db.transaction() as session:
            if not exact:
                await search_repo.use_iterative_scan(session, limit)
            return await search_repo.nearest(
                session,
                vector_literal(query_vector),
                model_id=self._embedder.model_id,
                dimension=self._embedder.dimension,
                video_id=video_id,
                course_id=course_id,
                limit=limit,
                exact=exact,
            )

    async def chunks_around(
        self,
        video_id: str,
        position_seconds: float,
        *,
        before_seconds: float = 60.0,
        after_seconds: float = 30.0,
    ) -> list[SearchHit]:
        start = max(0.0, position_seconds - max(0.0, before_seconds))
        return await self.chunks_in_range(video_id, start, position_seconds + max(0.0, after_seconds))

    async def chunks_in_range(self, video_id: str, start_seconds: float, end_seconds: float) -> list[SearchHit]:
        """Chunks overlapping [start, end] in playback order (a zero-length range means that instant)."""
        async with self._db.session() as session:
            rows = await search_repo.chunks_in_range(session, video_id, start_seconds, end_seconds)
        return [_hit(row) for row in rows]

    async def chunks_at(self, moments: Sequence[tuple[str, float]]) -> list[SearchHit]:
        """For each (video, second), the chunks said at that moment; each chunk once, in playback order."""
        if not moments:
            return []
        async with self._db.session() as session:
            rows = await search_repo.chunks_at(session, moments)
        return [_hit(row) for row in rows]

    async def get_chunks(self, chunk_ids: Sequence[str]) -> list[SearchHit]:
        """The chunks that still exist, in the order asked for."""
        if not chunk_ids:
            return []
        async with self._db.session() as session:
            rows = await search_repo.get_chunks(session, chunk_ids)
        by_id = {row.id: _hit(row) for row in rows}
        return [by_id[chunk_id] for chunk_id in dict.fromkeys(chunk_ids) if chunk_id in by_id]

    async def video_info(self, video_id: str) -> VideoInfo | None:
        async with self._db.session() as session:
            row = await search_repo.get_video(session, video_id)
        return _video_info(row) if row is not None else None

    async def course_videos(self, course_id: str) -> list[VideoInfo]:
        """The course's videos in the order they were first ingested."""
        async with self._db.session() as session:
            rows = await search_repo.course_videos(session, course_id)
        return [_video_info(row) for row in rows]

    def prefetch(self, query: str) -> None:
        """Start embedding `query` now (a turn does it while it stores the question); `query_vector` then
        waits for this computation instead of starting its own."""
        key = (self._embedder.model_id, query)
        if query.strip() and key not in self._query_vectors and key not in self._embedding:
            self._start_embedding(key)

    async def query_vector(self, query: str) -> str | None:
        """The query's embedding as a vector literal, or None when the embedder fails (the search then runs on
        full text). Kept per text: the sentences of a turn are scored with the vector its search computed."""
        key = (self._embedder.model_id, query)
        cached = self._query_vectors.get(key)
        if cached is not None:
            self._query_vectors.move_to_end(key)
            return cached
        running = self._embedding.get(key) or self._start_embedding(key)
        # Shielded: a cancelled caller leaves the computation to the others waiting for it (and the cache).
        return await asyncio.shield(running)

    def _start_embedding(self, key: tuple[str, str]) -> asyncio.Task[str | None]:
        task = asyncio.ensure_future(self._embed_query(key))
        self._embedding[key] = task
        task.add_done_callback(lambda done: self._embedded(key, done))
        return task

    def _embedded(self, key: tuple[str, str], task: asyncio.Task[str | None]) -> None:
        self._embedding.pop(key, None)
        if not task.cancelled():
            task.exception()  # seen here too, so a prefetch nobody waited for does not log it as lost

    async def _embed_query(self, key: tuple[str, str]) -> str | None:
        try:
            async with asyncio.timeout(self._query_timeout):
                (vector,) = await self._embedder.embed([key[1]])
        except DomainError as error:
            logger.warning("query embedding failed, searching full text only: %s", error.reason)
            return None
        except TimeoutError:
            logger.warning("query embedding took over %.1f s, searching full text only", self._query_timeout)
            return None
        literal = vector_literal(vector)
        self._query_vectors[key] = literal
        if len(self._query_vectors) > QUERY_VECTOR_CACHE_SIZE:
            self._query_vectors.popitem(last=False)
        return literal
