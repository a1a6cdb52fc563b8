"""SQL reading the sentence analysis stored at ingest (`transcript_sentences`, `transcript_phrases`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Float, Text

_SENTENCE_COLUMNS = (
    "s.video_id, s.sentence_index, s.start_seconds, s.end_seconds, s.text, s.lemmas, s.kinds, s.mentions, "
    "s.frames, s.complete"
)


async def in_ranges(
    session: AsyncSession,
    ranges: Sequence[tuple[str, float, float]],
    *,
    query_vector: str | None,
    model_id: str,
) -> Sequence[Row[Any]]:
    """The sentences overlapping any of the (video, start, end) ranges, once each, by video and index; with
    `query_vector` (a vector literal of `model_id`), each with its `similarity` to it (else NULL)."""
    similarity = (
        "CASE WHEN s.embedding_model = :model_id "
        "THEN 1 - (s.embedding <=> CAST(:query_vector AS halfvec)) END AS similarity"
        if query_vector is not None
        else "NULL AS similarity"
    )
    statement = text(
        f"SELECT DISTINCT ON (s.video_id, s.sentence_index) {_SENTENCE_COLUMNS}, {similarity} "
        "FROM transcript_sentences s "
        "JOIN unnest(:videos, :starts, :ends) AS r(video_id, range_start, range_end) "
        "ON s.video_id = r.video_id AND s.start_seconds < r.range_end AND s.end_seconds > r.range_start "
        "ORDER BY s.video_id, s.sentence_index"
    ).bindparams(
        bindparam("videos", type_=ARRAY(Text())),
        bindparam("starts", type_=ARRAY(Float())),
        bindparam("ends", type_=ARRAY(Float())),
    )
    params: dict[str, Any] = {
        "videos": [video for video, _, _ in ranges],
        "starts": [float(start) for _, start, _ in ranges],
        "ends": [float(end) if end > start else float(start) + 0.001 for _, start, end in ranges],
    }
    if query_vector is not None:
        params |= {"query_vector": query_vector, "model_id": model_id}
    return (await session.execute(statement, params)).all()


async def vocabulary(session: AsyncSession, course_id: str) -> frozenset[str]:
    """Every lemma the course's sentences say."""
    statement = text("SELECT DISTINCT unnest(lemmas) FROM transcript_sentences WHERE course_id = :course_id")
    return frozenset((await session.execute(statement, {"course_id": course_id})).scalars())


async def versions(session: AsyncSession, course_id: str) -> tuple[tuple[str, str], ...]:
    """(video id, version) of the course's transcripts, the version changing with the transcript or its
    analysis."""
    statement = text(
        "SELECT video_id, analysis_version || ':' || chunk_count || ':' || update_time AS version "
        "FROM transcripts WHERE course_id = :course_id ORDER BY video_id"
    )
    result = await session.execute(statement, {"course_id": course_id})
    return tuple((row.video_id, row.version) for row in result)


async def nearest(
    session: AsyncSession,
    query_vector: str,
    model_id: str,
    *,
    video_id: str | None,
    course_id: str | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """The sentences of the video (or, without one, of the course) closest to the query vector, closest
    first, each with its `similarity`: an exact scan."""
    scope, params = ("s.video_id = :scope", video_id) if video_id else ("s.course_id = :scope", course_id)
    statement = text(
        f"SELECT {_SENTENCE_COLUMNS}, 1 - (s.embedding <=> CAST(:query_vector AS halfvec)) AS similarity "
        f"FROM transcript_sentences s WHERE {scope} AND s.embedding_model = :model_id "
        "ORDER BY s.embedding <=> CAST(:query_vector AS halfvec) LIMIT :limit"
    )
    return (
        await session.execute(
            statement, {"scope": params, "query_vector": query_vector, "model_id": model_id, "limit": limit}
        )
    ).all()


async def phrases_said(session: AsyncSession, video_id: str, start: float, end: float) -> Sequence[Row[Any]]:
    """The video's key phrases said between `start` and `end`: key, surface, kind, mentions there (`here`),
    sentences of the video saying it (`spread`) and the video's sentence count (`total`)."""
    statement = text(
        "WITH said AS (SELECT m->>0 AS key FROM transcript_sentences s, jsonb_array_elements(s.mentions) m "
        "WHERE s.video_id = :video_id AND s.start_seconds < :end AND s.end_seconds > :start) "
        "SELECT p.key, p.surface, p.kind, count(*) AS here, cardinality(p.sentences) AS spread, "
        "(SELECT count(*) FROM transcript_sentences t WHERE t.video_id = :video_id) AS total "
        "FROM said JOIN transcript_phrases p ON p.video_id = :video_id AND p.key = said.key "
        "GROUP BY p.key, p.surface, p.kind, p.sentences"
    )
    return (await session.execute(statement, {"video_id": video_id, "start": start, "end": end})).all()


async def analysed(session: AsyncSession, video_ids: Sequence[str]) -> set[str]:
    """Which of the videos have their sentences stored."""
    statement = text(
        "SELECT video_id FROM transcripts WHERE video_id = ANY(:videos) AND analysis_version <> ''"
    ).bindparams(bindparam("videos", type_=ARRAY(Text())))
    return set((await session.execute(statement, {"videos": list(video_ids)})).scalars())


async def course_phrases(session: AsyncSession, course_id: str, model_id: str) -> Sequence[Row[Any]]:
    """The key phrases of each of the course's videos with their vectors of `model_id` (as text), by key."""
    statement = text(
        "SELECT p.video_id, p.key, p.surface, p.kind, p.mentions, p.sentences, p.embedding::text AS vector "
        "FROM transcript_phrases p WHERE p.course_id = :course_id AND p.embedding_model = :model_id "
        "ORDER BY p.key, p.video_id"
    )
    return (await session.execute(statement, {"course_id": course_id, "model_id": model_id})).all()


async def sentence_count(session: AsyncSession, course_id: str) -> int:
    count_statement = text("SELECT count(*) FROM transcript_sentences WHERE course_id = :course_id")
    return int((await session.execute(count_statement, {"course_id": course_id})).scalar_one())
