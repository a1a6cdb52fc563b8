"""GenerateLearningPath: every recommended item exists in the course, with its real title, time range and
duration; struggles are given or derived from mastery and hints; a model only ranks retrieved candidates."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.demo import load_demo_course
from tests.agents.conftest import COURSE_ID, answer_key, generate_quiz, interactions_of, learning_context
from tests.conftest import RunningServer
from tests.support.clients import Client, error_details
from tests.support.fake_openai import Behavior, FakeOpenAI

DIFFICULTY_NAMES = {common_pb2.DIFFICULTY_EASY, common_pb2.DIFFICULTY_MEDIUM, common_pb2.DIFFICULTY_HARD}


async def _path(client: Client, **fields: object) -> pb.GenerateLearningPathResponse:
    return await client.agents.GenerateLearningPath(pb.GenerateLearningPathRequest(course_id=COURSE_ID, **fields))  # type: ignore[arg-type]


async def _chunks(running: RunningServer) -> set[tuple[str, float, float]]:
    async with running.server.database.session() as session:
        rows = await session.execute(
            text("SELECT video_id, start_seconds, end_seconds FROM transcript_chunks WHERE course_id = :course"),
            {"course": COURSE_ID},
        )
        return {(row.video_id, row.start_seconds, row.end_seconds) for row in rows}


async def _assert_items_exist(running: RunningServer, response: pb.GenerateLearningPathResponse) -> None:
    titles = {video.video_id: video.title for video in load_demo_course().videos}
    chunks = await _chunks(running)
    assert response.recommendations
    for priority, item in enumerate(response.recommendations, start=1):
        assert (item.video_id, item.range.start_seconds, item.range.end_seconds) in chunks
        assert item.title == titles[item.video_id]
        minutes = (item.range.end_seconds - item.range.start_seconds) / 60
        assert item.estimated_minutes == pytest.approx(minutes, abs=0.051)
        assert item.priority == priority
        assert item.why and item.concept
        assert item.difficulty in DIFFICULTY_NAMES


async def test_given_struggles_lead_to_content_that_exists_in_the_course(offline_server: RunningServer) -> None:
    client = offline_server.client("planner")
    response = await _path(
        client,
        struggling_concepts=["event loop", "dependency array"],
        completed_concepts=["flexbox"],
        goals=["cache API responses"],
    )
    assert response.model == "offline-extractive"
    await _assert_items_exist(offline_server, response)
    concepts = [item.concept for item in response.recommendations]
    assert concepts[:3] == ["event loop", "dependency array", "cache API responses"]
    by_concept = {item.concept: item for item in response.recommendations}
    assert by_concept["event loop"].video_id == "async-javascript"
    assert by_concept["dependency array"].video_id == "react-state-effects"
    assert by_concept["cache API responses"].video_id == "http-caching"
    assert list(response.detected_issues) == [
        "You named “event loop” as hard.",
        "You named “dependency array” as hard.",
    ]
    assert response.next_steps and "Skip what you already know: flexbox." in response.next_steps
    (row,) = await interactions_of(offline_server, "planner")
    assert row["agent_type"] == "learning_path" and 0 < row["confidence"] <= 1


async def test_struggles_are_derived_from_mastery_and_hints(offline_server: RunningServer) -> None:
    client = offline_server.client("derived")
    quiz = (await generate_quiz(client, "react-state-effects", 160, 320, count=2)).quiz
    key = await answer_key(offline_server, quiz.quiz_id)
    question = quiz.questions[0]
    wrong = (key[question.question_id]["correct_index"] + 1) % 4
    await client.agents.SubmitQuizAnswer(
        pb.SubmitQuizAnswerRequest(
            quiz=quiz.name, question_id=question.question_id, selected_index=wrong, attempt_id="d1"
        )
    )
    for position in (100.0, 105.0):
        await client.agents.GetHint(pb.GetHintRequest(learning_context=learning_context("http-caching", position)))

    response = await _path(client)
    await _assert_items_exist(offline_server, response)
    concept = question.concepts[0]
    assert any(issue.startswith(f"Low mastery of “{concept}”") for issue in response.detected_issues)
    assert "You asked for 2 hints around 01:42 in “HTTP Caching Basics”." in response.detected_issues
    assert response.recommendations[0].concept == concept
    assert {item.video_id for item in response.recommendations} >= {"react-state-effects", "http-caching"}


async def test_a_student_without_struggles_starts_at_the_beginning(offline_server: RunningServer) -> None:
    response = await _path(offline_server.client("newcomer"))
    await _assert_items_exist(offline_server, response)
    assert [item.video_id for item in response.recommendations] == [
        "flexbox-layout",
        "async-javascript",
        "react-state-effects",
    ]
    assert all(item.range.start_seconds < 5 for item in response.recommendations)
    assert list(response.detected_issues) == [
        "Nothing recorded for you in this course yet: answer a few quiz questions or ask for hints, and the path "
        "adapts."
    ]


async def test_a_model_only_ranks_and_explains_the_candidates(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    client = online_server.client("ranked")
    invented = {
        "detected_issues": ["Struggles with the event loop."],
        "recommendations": [{"candidate": "k99", "why": "A made-up lecture."}],
        "next_steps": ["Watch it."],
    }
    chosen = {
        "detected_issues": ["Struggles with the event loop."],
        "recommendations": [{"candidate": "k2", "why": "Second best, explained."}, {"candidate": "k1", "why": "Best."}],
        "next_steps": ["Watch k2 first."],
    }
    fake_openai.enqueue_chat(Behavior(json_content=invented), Behavior(json_content=chosen))
    response = await _path(client, struggling_concepts=["event loop"])
    assert response.model == "gpt-4o-mini"
    assert "not one of the candidates" in fake_openai.chat_requests[1].body["messages"][-1]["content"]
    await _assert_items_exist(online_server, response)
    assert [item.why for item in response.recommendations] == ["Second best, explained.", "Best."]
    assert list(response.detected_issues) == ["Struggles with the event loop."]
    offline = await _path(online_server.client("ranked-offline"), struggling_concepts=["event loop"])
    assert offline.model == "offline-extractive"  # the fake's default reply is not a plan
    assert [item.video_id for item in response.recommendations] == [
        offline.recommendations[1].video_id,
        offline.recommendations[0].video_id,
    ]
    assert response.usage.total_tokens > 0


async def test_an_unknown_course_is_a_failed_precondition(offline_server: RunningServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await offline_server.client().agents.GenerateLearningPath(pb.GenerateLearningPathRequest(course_id="nope-101"))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(error.value)["ErrorInfo"].reason == "COURSE_NOT_FOUND"
