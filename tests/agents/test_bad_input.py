"""Bad input to the agents: clear INVALID_ARGUMENT / FAILED_PRECONDITION answers, never INTERNAL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2
from tutorstream.v1 import transcript_service_pb2 as transcript_pb

from tests.agents.conftest import COURSE_ID, AgentServerFactory, generate_quiz, learning_context, time_range
from tests.conftest import RunningServer
from tests.support.clients import Client, error_details


async def _fails(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value


def _quiz(**fields: Any) -> pb.GenerateQuizRequest:
    values: dict[str, Any] = {"video_id": "flexbox-layout", "question_count": 3, **fields}
    return pb.GenerateQuizRequest(**values)


PRECONDITIONS: list[tuple[str, Callable[[Client], Awaitable[Any]], str, str]] = [
    (
        "quiz range past the end",
        lambda c: c.agents.GenerateQuiz(_quiz(range=time_range(400, 600))),
        "RANGE_OUTSIDE_VIDEO",
        "which is 494s long",
    ),
    (
        "quiz range starting after the end",
        lambda c: c.agents.GenerateQuiz(_quiz(range=time_range(500, 520))),
        "RANGE_OUTSIDE_VIDEO",
        "outside video 'flexbox-layout'",
    ),
    (
        "quiz on an unknown video",
        lambda c: c.agents.GenerateQuiz(_quiz(video_id="no-such-video")),
        "TRANSCRIPT_NOT_FOUND",
        "has no transcript yet",
    ),
    (
        "quiz on chunks of another video",
        lambda c: c.agents.GenerateQuiz(_quiz(chunk_ids=["0123456789abcdef"])),
        "CHUNKS_NOT_FOUND",
        "not a transcript chunk of video",
    ),
    (
        "hint on an unknown video",
        lambda c: c.agents.GetHint(pb.GetHintRequest(learning_context=learning_context("ghost-video", 3))),
        "TRANSCRIPT_NOT_FOUND",
        "IngestTranscript",
    ),
    (
        "hint past the end of the video",
        lambda c: c.agents.GetHint(pb.GetHintRequest(learning_context=learning_context("http-caching", 999))),
        "POSITION_OUTSIDE_VIDEO",
        "past the end",
    ),
    (
        "hint with a selection outside the video",
        lambda c: c.agents.GetHint(
            pb.GetHintRequest(learning_context=learning_context("http-caching", 10, (300, 900)))
        ),
        "RANGE_OUTSIDE_VIDEO",
        "learning_context.selected_range",
    ),
    (
        "reflection on an unknown video",
        lambda c: c.agents.GenerateReflection(
            pb.GenerateReflectionRequest(learning_context=learning_context("ghost-video", 3))
        ),
        "TRANSCRIPT_NOT_FOUND",
        "ghost-video",
    ),
]

INVALID: list[tuple[str, Callable[[Client], Awaitable[Any]], str]] = [
    ("no questions", lambda c: c.agents.GenerateQuiz(_quiz(question_count=0)), "question_count"),
    ("eleven questions", lambda c: c.agents.GenerateQuiz(_quiz(question_count=11)), "question_count"),
    ("no video", lambda c: c.agents.GenerateQuiz(_quiz(video_id="")), "video_id"),
    ("reversed range", lambda c: c.agents.GenerateQuiz(_quiz(range=time_range(90, 30))), "range"),
    ("negative range", lambda c: c.agents.GenerateQuiz(_quiz(range=time_range(-5, 30))), "range"),
    (
        "range and chunks",
        lambda c: c.agents.GenerateQuiz(_quiz(range=time_range(0, 30), chunk_ids=["abc"])),
        "chunk_ids",
    ),
    ("unknown difficulty", lambda c: c.agents.GenerateQuiz(_quiz(difficulty=7)), "difficulty"),
    (
        "hint without a video",
        lambda c: c.agents.GetHint(pb.GetHintRequest(learning_context=common_pb2.LearningContext(course_id=COURSE_ID))),
        "learning_context.video_id",
    ),
    (
        "negative position",
        lambda c: c.agents.GetHint(pb.GetHintRequest(learning_context=learning_context("http-caching", -1))),
        "learning_context.position_seconds",
    ),
    (
        "struggle too long",
        lambda c: c.agents.GetHint(
            pb.GetHintRequest(learning_context=learning_context("http-caching", 10), struggle="x" * 1001)
        ),
        "struggle",
    ),
    ("path without a course", lambda c: c.agents.GenerateLearningPath(pb.GenerateLearningPathRequest()), "course_id"),
    (
        "too many goals",
        lambda c: c.agents.GenerateLearningPath(
            pb.GenerateLearningPathRequest(course_id=COURSE_ID, goals=[f"goal {i}" for i in range(11)])
        ),
        "goals",
    ),
]


@pytest.mark.parametrize(("name", "call", "reason", "says"), PRECONDITIONS, ids=[p[0] for p in PRECONDITIONS])
async def test_failed_preconditions_say_what_is_wrong(
    offline_server: RunningServer, name: str, call: Callable[[Client], Awaitable[Any]], reason: str, says: str
) -> None:
    error = await _fails(call(offline_server.client()))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, name
    assert error_details(error)["ErrorInfo"].reason == reason
    assert says in (error.details() or "")


@pytest.mark.parametrize(("name", "call", "field"), INVALID, ids=[i[0] for i in INVALID])
async def test_invalid_arguments_name_the_field(
    offline_server: RunningServer, name: str, call: Callable[[Client], Awaitable[Any]], field: str
) -> None:
    error = await _fails(call(offline_server.client()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
    violations = error_details(error)["BadRequest"].field_violations
    assert [violation.field for violation in violations] == [field]


async def test_a_transcript_still_being_ingested_is_not_ready(agents_server_factory: AgentServerFactory) -> None:
    running = await agents_server_factory(run_workers_in_process=False)  # the ingest job stays queued
    instructor = running.client("teacher", role="instructor", courses=[COURSE_ID])
    await instructor.transcripts.IngestTranscript(
        transcript_pb.IngestTranscriptRequest(
            request_id="agents-not-ready-1",
            video_id="fresh-video",
            course_id=COURSE_ID,
            title="Fresh",
            format=transcript_pb.TRANSCRIPT_FORMAT_WEBVTT,
            content="WEBVTT\n\n00:00:01.000 --> 00:00:05.000\nA brand new lecture about caching headers.\n",
            duration_seconds=5,
        )
    )
    error = await _fails(generate_quiz(running.client(), "fresh-video", 0, 5, count=1))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(error)["ErrorInfo"].reason == "TRANSCRIPT_NOT_READY"
    assert "still being ingested" in (error.details() or "")
