"""Hybrid search on the demo course (ingested through the real ingest jobs with the local MiniLM model), the
Retrieval contract used by chat and agents, and SearchTranscripts validation."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import text
from tutorstream.v1 import common_pb2
from tutorstream.v1 import transcript_service_pb2 as pb

from server.core.values import SearchHit, VideoInfo
from server.demo import load_demo_course, load_eval_questions
from server.transcripts.repository.search_sql import code_terms, nearest_sql, vector_literal
from server.transcripts.search import TranscriptSearch
from tests.conftest import RunningServer
from tests.support.clients import error_details

COURSE = "webdev-101"
# MiniLM is a small model; hybrid retrieval must still put the right passage in the top 3 for nearly all
# labelled questions.
MIN_HIT_RATE_AT_3 = 0.8


def search_of(server: RunningServer) -> TranscriptSearch:
    return server.server.runtime.search


def answers(hit: SearchHit, question_video: str, start: float, end: float) -> bool:
    return hit.video_id == question_video and hit.start_seconds < end and hit.end_seconds > start


@pytest.mark.parametrize("scope", ["course", "video"])
async def test_eval_questions_find_their_passage_in_the_top_3(demo_server: RunningServer, scope: str) -> None:
    search = search_of(demo_server)
    questions = load_eval_questions()
    assert len(questions) >= 10
    misses: list[str] = []
    for question in questions:
        where = {"course_id": COURSE} if scope == "course" else {"video_id": question.video_id}
        hits = await search.search(question.question, limit=3, **where)
        assert 1 <= len(hits) <= 3
        if not any(answers(hit, question.video_id, question.expected_start, question.expected_end) for hit in hits):
            misses.append(question.question_id)
    hit_rate = 1 - len(misses) / len(questions)
    assert hit_rate >= MIN_HIT_RATE_AT_3, f"hit@3 {hit_rate:.2f}, missed {misses}"


@pytest.mark.parametrize(
    ("term", "video_id"),
    [
        ("justify-content", "flexbox-layout"),
        ("min-width: 0", "flexbox-layout"),
        ("useEffect", "react-state-effects"),
        ("AbortController", "react-state-effects"),
        ("Promise.all", "async-javascript"),
        ("Promise.allSettled", "async-javascript"),
        ("stale-while-revalidate", "http-caching"),
        ("If-None-Match", "http-caching"),
        ("s-maxage", "http-caching"),
    ],
)
async def test_exact_code_terms_are_found_by_full_text(demo_server: RunningServer, term: str, video_id: str) -> None:
    hits = await search_of(demo_server).search(term, course_id=COURSE, limit=3)
    best_text_match = next(hit for hit in hits if hit.text_rank == 1)
    assert best_text_match.video_id == video_id
    assert term.lower() in best_text_match.text.lower()


def test_code_terms_are_extracted_from_questions() -> None:
    assert code_terms("How does useEffect cleanup work with Promise.all() and justify-content?") == [
        "useEffect",
        "Promise.all()",
        "justify-content",
    ]
    assert code_terms("plain words only") == []


async def test_hits_carry_timings_scores_and_both_ranks(demo_server: RunningServer) -> None:
    hits = await search_of(demo_server).search("what does the dependency array of useEffect do", course_id=COURSE)
    assert len(hits) == 5
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    for hit in hits:
        assert hit.course_id == COURSE
        assert 0 <= hit.start_seconds < hit.end_seconds
        assert hit.vector_rank > 0 or hit.text_rank > 0
        expected = (1 / (60 + hit.vector_rank) if hit.vector_rank else 0) + (
            1 / (60 + hit.text_rank) if hit.text_rank else 0
        )
        assert hit.score == pytest.approx(expected)
    assert any(hit.vector_rank and hit.text_rank for hit in hits)


async def test_time_window_limits_the_search_to_overlapping_chunks(demo_server: RunningServer) -> None:
    hits = await search_of(demo_server).search(
        "align-items", video_id="flexbox-layout", time_window=(300.0, 400.0), limit=10
    )
    assert hits
    assert all(hit.end_seconds > 300.0 and hit.start_seconds < 400.0 for hit in hits)


async def test_retrieval_contract_reads(demo_server: RunningServer) -> None:
    search = search_of(demo_server)
    course = load_demo_course()
    videos = await search.course_videos(COURSE)
    assert [video.video_id for video in videos] == [video.video_id for video in course.videos]
    info = await search.video_info("flexbox-layout")
    assert isinstance(info, VideoInfo)
    assert info.title == "CSS Flexbox Layout" and info.course_id == COURSE and info.chunk_count > 3
    assert 400 < info.duration_seconds <= course.video("flexbox-layout").duration_seconds + 1
    assert await search.video_info("missing") is None
    assert await search.course_videos("no-such-course") == []

    around = await search.chunks_around("flexbox-layout", 200.0)
    assert around and all(hit.end_seconds >= 140.0 and hit.start_seconds <= 230.0 for hit in around)
    assert [hit.start_seconds for hit in around] == sorted(hit.start_seconds for hit in around)
    inside = await search.chunks_in_range("flexbox-layout", 100.0, 110.0)
    assert inside and all(hit.start_seconds <= 110.0 and hit.end_seconds >= 100.0 for hit in inside)
    everything = await search.chunks_in_range("flexbox-layout", 0.0, 10_000.0)
    assert len(everything) == info.chunk_count

    wanted = [everything[2].chunk_id, "does-not-exist", everything[0].chunk_id]
    fetched = await search.get_chunks(wanted)
    assert [hit.chunk_id for hit in fetched] == [everything[2].chunk_id, everything[0].chunk_id]
    assert fetched[0].text == everything[2].text
    assert await search.get_chunks([]) == []


async def test_search_rpc_returns_results_with_timings(demo_server: RunningServer) -> None:
    client = demo_server.client("learner")
    response = await client.transcripts.SearchTranscripts(
        pb.SearchTranscriptsRequest(query="How do I center an element with flexbox?", course_id=COURSE, limit=3)
    )
    assert response.embedding_model == "local:all-MiniLM-L6-v2"
    assert len(response.results) == 3
    best = response.results[0]
    assert best.video_id == "flexbox-layout" and best.chunk_id and best.text
    assert best.end_seconds > best.start_seconds >= 0
    assert best.score > 0 and (best.vector_rank or best.text_rank)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"query": "", "course_id": COURSE}, "query"),
        ({"query": "   ", "course_id": COURSE}, "query"),
        ({"query": "x" * 1001, "course_id": COURSE}, "query"),
        ({"query": "flex", "course_id": COURSE, "limit": 51}, "limit"),
        ({"query": "flex", "course_id": COURSE, "limit": -1}, "limit"),
        ({"query": "flex"}, "video_id"),
        ({"query": "flex", "course_id": COURSE, "video_id": "flexbox-layout"}, "video_id"),
        ({"query": "flex", "video_id": "bad id"}, "video_id"),
        (
            {"query": "flex", "course_id": COURSE, "time_window": common_pb2.TimeRange(start_seconds=0, end_seconds=5)},
            "time_window",
        ),
        (
            {
                "query": "flex",
                "video_id": "flexbox-layout",
                "time_window": common_pb2.TimeRange(start_seconds=9, end_seconds=5),
            },
            "time_window",
        ),
    ],
)
async def test_bad_search_requests_are_invalid_argument(
    demo_server: RunningServer, request_fields: dict[str, object], field: str
) -> None:
    client = demo_server.client("learner")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.transcripts.SearchTranscripts(pb.SearchTranscriptsRequest(**request_fields))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error_details(caught.value)["BadRequest"].field_violations] == [field]


async def test_searching_an_unknown_video_is_not_found(demo_server: RunningServer) -> None:
    client = demo_server.client("learner")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.transcripts.SearchTranscripts(pb.SearchTranscriptsRequest(query="flex", video_id="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    empty = await client.transcripts.SearchTranscripts(pb.SearchTranscriptsRequest(query="flex", course_id="other"))
    assert list(empty.results) == []


async def test_course_search_on_the_index_path_matches_the_exact_path(demo_server: RunningServer) -> None:
    """Off the exact path (iterative HNSW scan allowed), a filtered course search still returns `limit`
    results and the same nearest chunks."""
    search = search_of(demo_server)
    exact = await search.search_with_model("browser cache headers", course_id=COURSE, limit=10, exact=True)
    indexed = await search.search_with_model("browser cache headers", course_id=COURSE, limit=10, exact=False)
    assert len(indexed.hits) == len(exact.hits) == 10
    assert {hit.chunk_id for hit in indexed.hits if hit.vector_rank} == {
        hit.chunk_id for hit in exact.hits if hit.vector_rank
    }


@pytest.mark.parametrize("exact", [False, True])
async def test_the_partial_hnsw_index_serves_the_vector_query(demo_server: RunningServer, exact: bool) -> None:
    statement = nearest_sql(model_id="local:all-MiniLM-L6-v2", dimension=384, scope="TRUE", exact=exact)
    params = {"query_vector": vector_literal([1.0] + [0.0] * 383), "candidates": 10}
    async with demo_server.server.database.transaction() as session:
        # The table is tiny, so make the planner show whether the index can serve the query at all: only the
        # HNSW index returns rows in distance order without a sort.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        await session.execute(text("SET LOCAL enable_sort = off"))
        plan = "\n".join(row[0] for row in (await session.execute(text("EXPLAIN " + statement), params)).all())
    uses_index = "ix_transcript_chunks_hnsw_local_all_minilm_l6_v2" in plan
    assert uses_index is not exact, plan
