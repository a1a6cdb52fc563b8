"""Fixtures for the agents tests.

The demo course is ingested once per test session, through the IngestTranscript RPC and its background jobs
with the local MiniLM model, into a database that then serves as a template: every test gets its own copy
(CREATE DATABASE ... TEMPLATE, a fraction of a second), so quizzes, attempts and mastery never leak between
tests. Servers share one loaded embedding model.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import common_pb2
from tutorstream.v1 import transcript_service_pb2 as transcript_pb

from server.core.embedded_pg import EmbeddedPostgres
from server.demo import load_demo_course
from server.embeddings.local import LocalEmbedder
from tests.conftest import FAST_JOBS as SHARED_FAST_JOBS
from tests.conftest import RunningServer, ServerFactory, launch
from tests.support.clients import Client
from tests.support.fake_openai import FakeOpenAI
from tests.support.postgres import create_fresh_database

COURSE_ID = "webdev-101"
FAST_JOBS: dict[str, Any] = {**SHARED_FAST_JOBS}
# The tests call the agents far more often than a student would.
GENEROUS_LIMITS: dict[str, Any] = {
    "rate_hint_per_minute": 100_000,
    "rate_quiz_per_minute": 100_000,
    "rate_agent_per_minute": 100_000,
    "rate_default_per_minute": 100_000,
}

AgentServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture(scope="session")
def agents_embedder(local_embedder: LocalEmbedder) -> LocalEmbedder:
    return local_embedder


AGENT_SETTINGS: dict[str, Any] = {**FAST_JOBS, **GENEROUS_LIMITS, "embedding_provider": "local"}


async def ingest(client: Client, video_id: str, title: str, vtt: str, duration: float) -> None:
    response = await client.transcripts.IngestTranscript(
        transcript_pb.IngestTranscriptRequest(
            request_id=f"agents-tests-{video_id}-{uuid.uuid4().hex[:8]}",
            video_id=video_id,
            course_id=COURSE_ID,
            title=title,
            format=transcript_pb.TRANSCRIPT_FORMAT_WEBVTT,
            content=vtt,
            language="en",
            duration_seconds=duration,
        )
    )
    last = response.job
    async with asyncio.timeout(180):
        async for update in client.transcripts.WatchIngestJob(transcript_pb.WatchIngestJobRequest(name=last.name)):
            last = update.job
    assert last.state == transcript_pb.INGEST_JOB_STATE_SUCCEEDED, last.error_message


@pytest.fixture(scope="session")
async def demo_template(
    embedded_pg: EmbeddedPostgres,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    agents_embedder: LocalEmbedder,
) -> str:
    """Name of a database holding the demo course, ingested over the real RPCs (clone it, never use it)."""
    url = create_fresh_database(embedded_pg.admin_url, "agdemo", template=template_database)
    running = await launch(tmp_path_factory.mktemp("agents-ingest"), url, embedder=agents_embedder, **AGENT_SETTINGS)
    try:
        client = running.client("agents-tests-ingest", role="service")
        # One after another: the course's video order is the order its transcripts were first stored.
        for video in load_demo_course().videos:
            await ingest(client, video.video_id, video.title, video.vtt, video.duration_seconds)
    finally:
        await running.close_clients()
        await running.server.stop(0)
    name = make_url(url).database
    assert name is not None
    return name


@pytest.fixture
def demo_database_url(embedded_pg: EmbeddedPostgres, demo_template: str) -> str:
    return create_fresh_database(embedded_pg.admin_url, "ag", template=demo_template)


@pytest.fixture
def agents_server_factory(
    start_server: ServerFactory, demo_database_url: str, agents_embedder: LocalEmbedder, fake_openai: FakeOpenAI
) -> AgentServerFactory:
    """`await factory(online=False, **settings)`: a server on this test's copy of the demo course whose
    model is the fake OpenAI server (online) or none (the offline paths)."""

    async def factory(*, online: bool = False, **overrides: Any) -> RunningServer:
        settings = {**AGENT_SETTINGS, "database_url": demo_database_url, **overrides}
        return await start_server(embedder=agents_embedder, model=fake_openai if online else None, **settings)

    return factory


@pytest.fixture
async def offline_server(agents_server_factory: AgentServerFactory) -> RunningServer:
    return await agents_server_factory()


@pytest.fixture
async def online_server(agents_server_factory: AgentServerFactory) -> RunningServer:
    return await agents_server_factory(online=True)


def time_range(start: float, end: float) -> common_pb2.TimeRange:
    return common_pb2.TimeRange(start_seconds=start, end_seconds=end)


def learning_context(
    video_id: str, position: float, selected: tuple[float, float] | None = None, course_id: str = COURSE_ID
) -> common_pb2.LearningContext:
    context = common_pb2.LearningContext(course_id=course_id, video_id=video_id, position_seconds=position)
    if selected is not None:
        context.selected_range.CopyFrom(time_range(*selected))
    return context


async def generate_quiz(
    client: Client,
    video_id: str,
    start: float,
    end: float,
    *,
    count: int = 3,
    difficulty: int = common_pb2.DIFFICULTY_MEDIUM,
) -> agent_pb.GenerateQuizResponse:
    return await client.agents.GenerateQuiz(
        agent_pb.GenerateQuizRequest(
            video_id=video_id, range=time_range(start, end), difficulty=difficulty, question_count=count
        )
    )


async def answer_key(running: RunningServer, quiz_id: str) -> dict[str, dict[str, Any]]:
    """The stored answer key of a student's quiz, read from the database: question id -> item columns."""
    async with running.server.database.session() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT i.question_id, i.options, i.correct_index, i.explanation, i.chunk_id, i.start_seconds, "
                    "i.end_seconds, i.concepts, c.text AS chunk_text "
                    "FROM quizzes q JOIN quiz_items i ON i.generated_quiz_id = q.generated_quiz_id "
                    "LEFT JOIN transcript_chunks c ON c.id = i.chunk_id WHERE q.id = :quiz"
                ),
                {"quiz": quiz_id},
            )
        ).mappings()
        return {row["question_id"]: dict(row) for row in rows}


async def answer_quiz(
    running: RunningServer, student: Client, quiz: agent_pb.Quiz, right: Callable[[int], bool]
) -> list[bool]:
    """Answers every question of the student's `quiz`, question n correctly when `right(n)` (the key is read
    from the database); returns whether each answer was right."""
    key = await answer_key(running, quiz.quiz_id)
    outcomes = []
    for number, question in enumerate(quiz.questions):
        correct_index = int(key[question.question_id]["correct_index"])
        outcomes.append(right(number))
        await student.agents.SubmitQuizAnswer(
            agent_pb.SubmitQuizAnswerRequest(
                quiz=quiz.name,
                question_id=question.question_id,
                selected_index=correct_index if outcomes[-1] else (correct_index + 1) % len(question.options),
                attempt_id=f"{quiz.quiz_id}-{number}",
            )
        )
    return outcomes


async def interactions_of(running: RunningServer, user_id: str) -> list[dict[str, Any]]:
    async with running.server.database.session() as session:
        rows = (
            await session.execute(
                text("SELECT * FROM ai_interactions WHERE user_id = :user ORDER BY create_time"), {"user": user_id}
            )
        ).mappings()
        return [dict(row) for row in rows]


@pytest.fixture(scope="module")
async def module_online_server(
    embedded_pg: EmbeddedPostgres,
    demo_template: str,
    tmp_path_factory: pytest.TempPathFactory,
    agents_embedder: LocalEmbedder,
    fake_openai_server: FakeOpenAI,
) -> AsyncIterator[RunningServer]:
    """One server per module against the fake OpenAI server (tests reset the fake through `fake_openai`)."""
    url = create_fresh_database(embedded_pg.admin_url, "agmod", template=demo_template)
    running = await launch(
        tmp_path_factory.mktemp("agents-online"),
        url,
        embedder=agents_embedder,
        model=fake_openai_server,
        **AGENT_SETTINGS,
    )
    yield running
    await running.close_clients()
    await running.server.stop(0)


# 02:10–02:48 of the flexbox lecture lies inside one chunk (02:04–02:52, the justify-content values), so the
# only excerpt offered to the model is `c1`. The questions below are answerable from that chunk.
FLEX_VIDEO = "flexbox-layout"
FLEX_RANGE = (130.0, 168.0)


def valid_quiz_output() -> dict[str, Any]:
    return {
        "questions": [
            {
                "stem": "Which justify-content value puts the first item at the start, the last item at the end, "
                "and divides the remaining space evenly between them?",
                "options": ["space-around", "space-between", "space-evenly", "center"],
                "correct_index": 1,
                "explanation": "The lecture describes space-between exactly this way.",
                "source": "c1",
                "concepts": ["justify-content", "space-between"],
            },
            {
                "stem": "Which value makes every gap exactly the same, including the edges?",
                "options": ["space-evenly", "space-around", "flex-end", "stretch"],
                "correct_index": 0,
                "explanation": "space-evenly makes every gap the same size, edges included.",
                "source": "c1",
                "concepts": ["space-evenly"],
            },
            {
                "stem": "What is the default value of justify-content?",
                "options": ["center", "flex-end", "space-around", "flex-start"],
                "correct_index": 3,
                "explanation": "The default packs items at the start of the main axis.",
                "source": "c1",
                "concepts": ["justify-content"],
            },
        ]
    }
