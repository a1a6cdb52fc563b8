"""The offline engine end to end on the demo course: no API key, grounded and cited answers."""

from __future__ import annotations

import pytest
from tutorstream.v1 import chat_service_pb2 as pb

from server.demo import load_eval_questions
from server.llm.grounding import format_clock
from server.llm.offline import OFFLINE_MODEL
from tests.chat.conftest import ChatServerFactory, answer_text, ask, learning_context, messages_of, new_session
from tests.support.fake_openai import Behavior, FakeOpenAI

QUESTIONS = {question.question_id: question for question in load_eval_questions()}


@pytest.mark.parametrize("question_id", ["q02", "q10", "q17", "q24"])
async def test_offline_answer_cites_the_right_part_of_the_lecture(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI, question_id: str
) -> None:
    question = QUESTIONS[question_id]
    server = await chat_server_factory(online=False, database_url=course_database_url)
    client = server.client()
    # The playhead is elsewhere in the video: the answer must come from relevance, not position.
    session = await new_session(client, learning_context(question.video_id, 0.0))
    deltas, final = await ask(client, session, question.question)

    assert final.model == OFFLINE_MODEL
    assert not final.fallback and not final.cached
    assert final.finish_reason == pb.FINISH_REASON_STOP
    assert final.usage.total_tokens == 0
    assert any(
        citation.video_id == question.video_id
        and citation.start_seconds <= question.expected_end
        and citation.end_seconds >= question.expected_start
        for citation in final.citations
    ), [(c.start_seconds, c.end_seconds) for c in final.citations]
    text = answer_text(deltas)
    assert len(deltas) > 10  # streamed word by word
    first = final.citations[0]
    assert f"{format_clock(first.start_seconds)}–{format_clock(first.end_seconds)}" in text
    assert any(keyword.lower() in text.lower() for keyword in question.answer_keywords)
    assert fake_openai.chat_requests == []  # nothing left the process

    stored = (await messages_of(client, session))[-1]
    assert stored.model == OFFLINE_MODEL and stored.content == text
    assert list(stored.citations) == list(final.citations)


async def test_offline_engine_is_honest_when_the_lecture_does_not_cover_it(
    chat_server_factory: ChatServerFactory, course_database_url: str
) -> None:
    server = await chat_server_factory(online=False, database_url=course_database_url)
    client = server.client()
    session = await new_session(client, learning_context("flexbox-layout", 30.0))
    deltas, final = await ask(client, session, "Who won the football world cup in 1998?")
    assert "doesn't seem to cover" in answer_text(deltas)
    assert list(final.citations) == []


async def test_a_follow_up_is_answered_in_the_context_of_the_previous_question(
    chat_server_factory: ChatServerFactory, course_database_url: str
) -> None:
    server = await chat_server_factory(online=False, database_url=course_database_url)
    client = server.client()
    session = await new_session(client, learning_context("flexbox-layout", 30.0))
    await ask(client, session, "Why does a flex item with a long URL overflow instead of shrinking?")
    deltas, final = await ask(client, session, "and what is the fix?")
    text = answer_text(deltas)
    assert "min-width: 0" in text, text
    # The fix is said at 07:14–07:22 of the lecture.
    assert any(c.start_seconds < 442 and c.end_seconds > 434 for c in final.citations)


async def test_a_question_in_another_language_gets_an_honest_answer(
    chat_server_factory: ChatServerFactory, course_database_url: str
) -> None:
    server = await chat_server_factory(online=False, database_url=course_database_url)
    client = server.client()
    session = await new_session(client, learning_context("flexbox-layout", 30.0))
    deltas, final = await ask(client, session, "Was macht justify-content in einem Flex-Container genau?")
    assert "in English" in answer_text(deltas)
    assert list(final.citations) == []


async def test_the_offline_engine_taking_over_a_model_turn_answers_as_it_does_offline(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    """A turn a model was to answer skips the question's parse; when the upstream fails and the offline engine
    answers after all, it parses then, and says what it says with no model configured."""
    offline = (await chat_server_factory(online=False, database_url=course_database_url)).client("offline-student")
    online = (
        await chat_server_factory(database_url=course_database_url, breaker_failure_threshold=100, llm_max_retries=0)
    ).client("fallback-student")
    turns = [
        QUESTIONS["q10"].question,
        "Who won the football world cup in 1998?",
        "Was macht justify-content in einem Flex-Container genau?",
        "Why does a flex item with a long URL overflow instead of shrinking?",
        "and what is the fix?",
    ]
    fake_openai.enqueue_chat(*[Behavior(status=503) for _ in turns])
    sessions = [await new_session(client, learning_context("flexbox-layout", 30.0)) for client in (offline, online)]
    for question in turns:
        (expected_deltas, expected), (deltas, final) = [
            await ask(client, session, question) for client, session in zip((offline, online), sessions, strict=True)
        ]
        assert (final.model, final.fallback, expected.fallback) == (OFFLINE_MODEL, True, False)
        assert answer_text(deltas) == answer_text(expected_deltas), question
        assert list(final.citations) == list(expected.citations)
    assert len(fake_openai.chat_requests) == len(turns)
