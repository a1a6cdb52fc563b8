"""GenerateReflection: topics derived from what the student watched (or given), three guiding questions, an
expected length from the preferences, and the reflection_prompts_enabled switch."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import analytics_service_pb2 as analytics_pb
from tutorstream.v1 import common_pb2

from server.llm.moderation import SUPPORTIVE_MODEL, SUPPORTIVE_REPLY
from tests.agents.conftest import answer_key, generate_quiz, interactions_of, learning_context
from tests.conftest import RunningServer
from tests.support.clients import Client, error_details
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.metrics import counter_value


async def _reflect(
    client: Client, video: str, position: float, topics: tuple[str, ...] = ()
) -> pb.GenerateReflectionResponse:
    return await client.agents.GenerateReflection(
        pb.GenerateReflectionRequest(learning_context=learning_context(video, position), completed_topics=list(topics))
    )


async def _set_preferences(client: Client, **values: object) -> None:
    await client.agents.UpdatePreferences(
        pb.UpdatePreferencesRequest(
            preferences=pb.Preferences(name="users/me/preferences", **values),  # type: ignore[arg-type]
            update_mask=field_mask_pb2.FieldMask(paths=list(values)),
        )
    )


async def test_topics_come_from_what_the_student_watched(offline_server: RunningServer) -> None:
    client = offline_server.client("reflective")
    response = await _reflect(client, "async-javascript", 200)
    assert response.model == "offline-extractive"
    assert response.prompt and "“JavaScript Promises and async/await” up to 03:20" in response.prompt
    assert len(response.guiding_questions) == 3
    assert len(set(response.guiding_questions)) == 3
    assert all(question.endswith("?") for question in response.guiding_questions)
    assert response.expected_length_words == 150
    assert 1 <= len(response.topics) <= 4
    watched = await offline_server.server.runtime.search.chunks_in_range("async-javascript", 0, 200)
    watched_text = " ".join(hit.text for hit in watched).casefold()
    for topic in response.topics:
        assert topic.casefold() in watched_text
    assert response.citations
    assert all(c.video_id == "async-javascript" and c.start_seconds <= 200 for c in response.citations)
    (row,) = await interactions_of(offline_server, "reflective")
    assert row["agent_type"] == "reflection" and row["id"] == response.interaction_id


async def test_given_topics_preferences_and_weak_concepts_shape_the_reflection(offline_server: RunningServer) -> None:
    client = offline_server.client("shaped")
    await _set_preferences(
        client, response_length=common_pb2.RESPONSE_LENGTH_SHORT, personality=common_pb2.PERSONALITY_PEER
    )
    quiz = (await generate_quiz(client, "flexbox-layout", 0, 300, count=3)).quiz
    key = await answer_key(offline_server, quiz.quiz_id)
    question = quiz.questions[0]
    wrong = (key[question.question_id]["correct_index"] + 1) % 4
    await client.agents.SubmitQuizAnswer(
        pb.SubmitQuizAnswerRequest(
            quiz=quiz.name, question_id=question.question_id, selected_index=wrong, attempt_id="w1"
        )
    )
    response = await _reflect(client, "flexbox-layout", 0, ("centering with flexbox", "the flex shorthand"))
    assert list(response.topics) == ["centering with flexbox", "the flex shorthand"]
    assert response.expected_length_words == 80
    assert response.prompt.startswith("Okay, quick check-in:")
    assert f"“{question.concepts[0]}”" in response.guiding_questions[2]


async def test_reflection_prompts_can_be_turned_off(offline_server: RunningServer) -> None:
    client = offline_server.client("no-reflection")
    await _set_preferences(client, reflection_prompts_enabled=False)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await _reflect(client, "http-caching", 100)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "reflection_prompts_enabled" in (error.value.details() or "")
    assert error_details(error.value)["ErrorInfo"].reason == "REFLECTION_PROMPTS_DISABLED"


async def test_a_model_writes_it_when_its_output_is_valid(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    questions = ["What is fresh?", "What is stale?", "When does the browser revalidate?"]
    fake_openai.enqueue_chat(
        Behavior(
            json_content={
                "prompt": "Reflect on caching.",
                "guiding_questions": questions[:2],
                "expected_length_words": 9,
            }
        ),
        Behavior(
            json_content={"prompt": "Reflect on caching.", "guiding_questions": questions, "expected_length_words": 120}
        ),
    )
    client = online_server.client("modelled")
    response = await _reflect(client, "http-caching", 150)
    assert response.model == "gpt-4o-mini"
    assert list(response.guiding_questions) == questions
    assert response.expected_length_words == 120
    assert "exactly three guiding questions" in fake_openai.chat_requests[1].body["messages"][-1]["content"]

    fake_openai.enqueue_chat(Behavior(content="{not json"), Behavior(content="{not json"))
    fallback = await _reflect(client, "http-caching", 150)
    assert fallback.model == "offline-extractive" and len(fallback.guiding_questions) == 3


async def test_what_the_student_wrote_and_what_the_model_wrote_are_moderated(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    """With a key the moderation endpoint decides: a self-harm statement among the topics gets the supportive
    reply (no model call), a harassing one is flagged for the instructors, and a model's reflection that the
    endpoint flags is never shown — the offline reflection answers."""
    client = online_server.client("moderated-reflector")
    before = counter_value("tutorstream_moderation_flags", surface="reflection_output", category="harassment")
    requests = len(fake_openai.chat_requests)
    supportive = await _reflect(client, "http-caching", 150, ("freshness", "I want to hurt myself"))
    assert (supportive.prompt, supportive.model) == (SUPPORTIVE_REPLY, SUPPORTIVE_MODEL)
    assert list(supportive.guiding_questions) == [] and len(fake_openai.chat_requests) == requests

    questions = ["What is fresh?", "What is stale?", "When does the browser revalidate?"]
    fake_openai.enqueue_chat(
        Behavior(
            json_content={
                "prompt": "Reflect on caching, you useless idiot.",
                "guiding_questions": questions,
                "expected_length_words": 120,
            }
        )
    )
    replaced = await _reflect(client, "http-caching", 150, ("freshness",))
    assert replaced.model == "offline-extractive" and "idiot" not in replaced.prompt
    assert len(replaced.guiding_questions) == 3
    assert counter_value("tutorstream_moderation_flags", surface="reflection_output", category="harassment") == (
        before + 1
    )

    fake_openai.enqueue_chat(
        Behavior(
            json_content={"prompt": "Reflect on caching.", "guiding_questions": questions, "expected_length_words": 90}
        )
    )
    flagged = await _reflect(client, "http-caching", 150, ("caching, you useless idiot",))
    assert flagged.model == "gpt-4o-mini"

    teacher = online_server.client("reflection-teacher", role="instructor", courses=["webdev-101"])
    listed = await teacher.analytics.ListFlaggedInteractions(
        analytics_pb.ListFlaggedInteractionsRequest(parent="courses/webdev-101")
    )
    mine = [item for item in listed.flagged_interactions if item.user_id == "moderated-reflector"]
    assert sorted((item.surface, item.category) for item in mine) == [
        ("reflection", "harassment"),
        ("reflection", "self_harm"),
    ]
