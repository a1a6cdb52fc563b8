"""SQL of transcript retrieval: the hybrid search statement (built in `search_sql.py`) and the nearest-vector
scan, the time-range and id reads of chunks, the videos' summaries, and the per-model HNSW indexes."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import Float, Text

from server.core.db import Database
from server.transcripts.repository.search_sql import (
    CHUNK_COLUMNS,
    code_terms,
    hybrid_sql,
    nearest_sql,
    scope_filter,
    sql_model_literal,
)

# HNSW candidate list per search (bench/bench_search.py, clustered 384-d vectors, m 16, ef_construction 64):
# recall@10 at 100k is 0.96 with pgvector's default 40 and 1.00 with 100; at 1M, 100 gives 0.87, 200 and 300
# give 0.95 and 400 gives 0.98.
HNSW_EF_SEARCH = 400

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


async def use_iterative_scan(session: AsyncSession, candidates: int) -> None:
    """Let the HNSW index scan on past its first candidates, for the rest of the transaction."""
    # One round trip for both settings; `true`: local to the transaction, like SET LOCAL.
    await session.execute(
        text(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', :ef, true)"
        ),
        {"ef": str(max(HNSW_EF_SEARCH, min(candidates, 1000)))},
    )


@dataclass(frozen=True)
class HybridQuery:
    """One hybrid search: without `query_vector` (a vector literal of `model_id`), full text only."""

    query: str
    query_vector: str | None
    model_id: str | None
    dimension: int
    video_id: str | None
    course_id: str | None
    time_window: tuple[float, float] | None
    candidates: int
    limit: int
    exact: bool


@functools.cache
def _hybrid_statement(model_id: str | None, dimension: int, scope: str, exact: bool) -> TextClause:
    """The hybrid statement for this shape of search, built once (SQLAlchemy then reuses its compiled form
    and psycopg prepares it on the server)."""
    sql = hybrid_sql(model_id=model_id, dimension=dimension, scope=scope, exact=exact)
    return text(sql).bindparams(bindparam("code_terms", type_=ARRAY(Text())))


async def hybrid(executor: AsyncSession | AsyncConnection, search: HybridQuery) -> Sequence[Row[Any]]:
    """The search's hits, best first: chunk columns with `score`, `vector_rank` and `text_rank`."""
    statement = _hybrid_statement(
        search.model_id,
        search.dimension,
        scope_filter(search.video_id, search.course_id, search.time_window is not None),
        search.exact,
    )
    params: dict[str, Any] = {
        "query": search.query,
        "code_terms": code_terms(search.query),
        "candidates": search.candidates,
        "limit": search.limit,
    }
    if search.query_vector is not None:
        params["query_vector"] = search.query_vector
    if search.video_id is not None:
        params["video_id"] = search.video_id
    if search.course_id is not None:
        params["course_id"] = search.course_id
    if search.time_window is not None:
        params["window_start"], params["window_end"] = search.time_window
    return (await executor.execute(statement, params)).all()


async def nearest(
    session: AsyncSession,
    query_vector: str,
    *,
    model_id: str,
    dimension: int,
    video_id: str | None,
    course_id: str | None,
    limit: int,
    exact: bool,
) -> list[str]:
    """Ids of the `limit` chunks of `model_id` closest to `query_vector` (a vector literal), closest first."""
    statement = nearest_sql(
        model_id=model_id,
        dimension=dimension,
        scope=scope_filter(video_id, course_id, window=False),
        exact=exact,
    )
    params: dict[str, Any] = {"query_vector": query_vector, "candidates": limit}
    if video_id is not None:
        params["video_id"] = video_id
    if course_id is not None:
        params["course_id"] = course_id
    rows = (await session.execute(text(statement + " ORDER BY rank"), params)).all()
    return [row.id for row in rows]


async def chunks_in_range(
    session: AsyncSession, video_id: str, start_seconds: float, end_seconds: float
) -> Sequence[Row[Any]]:
    """Chunks overlapping [start, end] in playback order (a zero-length range means that instant)."""
    statement = text(
        f"SELECT {CHUNK_COLUMNS} FROM transcript_chunks c "
        "WHERE c.video_id = :video_id AND c.end_seconds >= :start AND c.start_seconds <= :end "
        "ORDER BY c.start_seconds, c.chunk_index"
    )
    return (await session.execute(statement, {"video_id": video_id, "start": start_seconds, "end": end_seconds})).all()


async def chunks_at(session: AsyncSession, moments: Sequence[tuple[str, float]]) -> Sequence[Row[Any]]:
    """For each (video, second), the chunks said at that moment; each chunk once, in playback order."""
    statement = text(
        f"SELECT DISTINCT ON (c.video_id, c.start_seconds, c.id) {CHUNK_COLUMNS} FROM transcript_chunks c "
        "JOIN unnest(:videos, :moments) AS m(video_id, at_seconds) "
        "ON c.video_id = m.video_id AND c.start_seconds <= m.at_seconds AND c.end_seconds >= m.at_seconds "
        "ORDER BY c.video_id, c.start_seconds, c.id"
    ).bindparams(bindparam("videos", type_=ARRAY(Text())), bindparam("moments", type_=ARRAY(Float())))
    params = {"videos": [video for video, _ in moments], "moments": [float(at) for _, at in moments]}
    return (await session.execute(statement, params)).all()


async def get_chunks(session: AsyncSession, chunk_ids: Sequence[str]) -> Sequence[Row[Any]]:
    """The chunks of these ids that exist, in no particular order."""
    statement = text(f"SELECT {CHUNK_COLUMNS} FROM transcript_chunks c WHERE c.id = ANY(:ids)").bindparams(
        bindparam("ids", type_=ARRAY(Text()))
    )
    return (await session.execute(statement, {"ids": list(chunk_ids)})).all()


async def get_video(session: AsyncSession, video_id: str) -> Row[Any] | None:
    """The video's id, course, title, duration and chunk count."""
    statement = text(
        "SELECT video_id, course_id, title, duration_seconds, chunk_count FROM transcripts WHERE video_id = :video_id"
    )
    return (await session.execute(statement, {"video_id": video_id})).first()


async def course_videos(session: AsyncSession, course_id: str) -> Sequence[Row[Any]]:
    """As `get_video`, for the course's videos in the order they were first ingested."""
    statement = text(
        "SELECT video_id, course_id, title, duration_seconds, chunk_count FROM transcripts "
        "WHERE course_id = :course_id ORDER BY create_time, video_id"
    )
    return (await session.execute(statement, {"course_id": course_id})).all()
