"""Moderation of what students write, through real clients: a statement of self-harm gets the supportive reply
and no model call, profanity is answered and flagged, the course's instructors list the flags (each read
audited), and with a key the moderation endpoint decides on the redacted text."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import analytics_service_pb2 as analytics_pb
from tutorstream.v1 import chat_service_pb2 as pb

from server.llm.moderation import SUPPORTIVE_MODEL, SUPPORTIVE_REPLY
from server.llm.offline import OFFLINE_MODEL
from tests.chat.conftest import (
    COURSE_ID,
    ChatServerFactory,
    answer_text,
    ask,
    learning_context,
    messages_of,
    new_session,
)
from tests.conftest import RunningServer
from tests.support.clients import Client
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.metrics import counter_value
from tests.support.waiting import wait_until
from tests.transcripts.test_service_ingest import rpc_error

VIDEO = "flexbox-layout"


async def flags(client: Client) -> list[analytics_pb.FlaggedInteraction]:
    response = await client.analytics.ListFlaggedInteractions(
        analytics_pb.ListFlaggedInteractionsRequest(parent=f"courses/{COURSE_ID}")
    )
    return list(response.flagged_interactions)


def flag_count(category: str) -> float:
    return counter_value("tutorstream_moderation_flags", surface="chat", category=category)


async def audit_rows(server: RunningServer, reader: str) -> list[tuple[str, int]]:
    async with server.server.database.session() as session:
        rows = await session.execute(
            text("SELECT resource, items FROM audit_reads WHERE reader = :reader ORDER BY create_time"),
            {"reader": reader},
        )
        return [(row.resource, row.items) for row in rows]


async def test_offline_moderation_supports_flags_and_lists(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(online=False, database_url=course_database_url)
    counted_before = flag_count("self_harm")
    student = server.client("moderated-student")
    session = await new_session(student, learning_context(VIDEO, 100.0))

    deltas, final = await ask(student, session, "I want to kill myself, mail me at sam@example.com")
    assert answer_text(deltas) == SUPPORTIVE_REPLY
    assert (final.model, list(final.citations), final.finish_reason) == (SUPPORTIVE_MODEL, [], pb.FINISH_REASON_STOP)

    assert flag_count("self_harm") == counted_before + 1
    deltas, final = await ask(student, session, "this fucking flexbox, what does justify-content control?")
    assert final.model == OFFLINE_MODEL and "justify-content" in answer_text(deltas)
    _, final = await ask(student, session, "What does flex: 1 mean?")
    assert final.model == OFFLINE_MODEL
    # Asking about the topic is not a statement of it.
    _, final = await ask(student, session, "What is self-harm, and why is suicide prevention taught in schools?")
    assert final.model == OFFLINE_MODEL
    assert fake_openai.chat_requests == [] and fake_openai.moderation_requests == []

    # A hint asked for with a struggle that states self-harm gets the same reply instead of a hint.
    hint = await student.agents.GetHint(
        agent_pb.GetHintRequest(
            learning_context=learning_context(VIDEO, 100.0), struggle="I keep failing, I want to hurt myself"
        )
    )
    assert (hint.hint, hint.model) == (SUPPORTIVE_REPLY, SUPPORTIVE_MODEL)

    teacher = server.client("moderation-teacher", role="instructor", courses=[COURSE_ID])
    listed = await flags(teacher)
    assert [(flag.category, flag.detector, flag.surface) for flag in listed] == [
        ("self_harm", "offline-heuristic", "hint"),
        ("profanity", "offline-heuristic", "chat"),
        ("self_harm", "offline-heuristic", "chat"),
    ]
    assert listed[0].message.startswith("interactions/")
    self_harm = listed[2]
    assert self_harm.user_id == "moderated-student" and self_harm.video_id == VIDEO
    assert self_harm.excerpt == "I want to kill myself, mail me at [EMAIL]"
    assert self_harm.message.startswith(f"{session}/messages/")
    assert 0.9 <= listed[1].score <= 1.0
    assert await audit_rows(server, "moderation-teacher") == [(f"courses/{COURSE_ID}/flaggedInteractions", 3)]

    outsider = server.client("moderation-outsider", role="instructor")
    assert (await rpc_error(flags(outsider))).code() == grpc.StatusCode.NOT_FOUND
    assert (await rpc_error(flags(student))).code() == grpc.StatusCode.PERMISSION_DENIED
    assert await audit_rows(server, "moderation-outsider") == []


async def test_with_a_key_the_endpoint_moderates_the_redacted_text(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(online=True, database_url=course_database_url)
    student = server.client("endpoint-student")
    session = await new_session(student, learning_context(VIDEO, 100.0))
    deltas, final = await ask(student, session, "Sometimes I hurt myself when I fail, I'm at 42 Elm Street")
    assert (answer_text(deltas), final.model) == (SUPPORTIVE_REPLY, SUPPORTIVE_MODEL)
    assert fake_openai.chat_requests == []
    (moderated,) = fake_openai.moderation_requests
    assert moderated.body["model"] == "omni-moderation-latest"
    assert "42 Elm Street" not in moderated.body["input"] and "[LOCATION]" in moderated.body["input"]

    _, final = await ask(student, session, "What does justify-content control?")
    assert final.model != SUPPORTIVE_MODEL and len(fake_openai.chat_requests) == 1

    teacher = server.client("endpoint-teacher", role="instructor", courses=[COURSE_ID])
    (flag,) = [flag for flag in await flags(teacher) if flag.user_id == "endpoint-student"]
    assert (flag.category, flag.detector, flag.score) == ("self_harm", "omni-moderation-latest", 0.97)

    # The endpoint failing leaves the decision to the offline heuristic.
    fake_openai.moderation_error_status = 503
    deltas, _ = await ask(student, session, "honestly I just want to end my life")
    assert answer_text(deltas) == SUPPORTIVE_REPLY
    latest = next(flag for flag in await flags(teacher) if flag.user_id == "endpoint-student")
    assert (latest.category, latest.detector) == ("self_harm", "offline-heuristic")


async def test_the_model_answers_while_the_question_is_moderated_and_nothing_shows_before_the_verdict(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(online=True, database_url=course_database_url, moderate_streamed_answers=False)
    student = server.client("overlap-student")
    session = await new_session(student, learning_context(VIDEO, 100.0))
    fake_openai.moderation_delay, fake_openai.moderation_delay_marker = 5.0, "slowly"
    fake_openai.enqueue_chat(Behavior(content="It distributes free space along the main axis [c1]."))
    received: list[pb.StreamChatResponse] = []

    async def stream() -> None:
        request = pb.StreamChatRequest(session=session, message="slowly now: what does justify-content do?")
        async for chunk in student.chat.StreamChat(request):
            received.append(chunk)

    async def model_asked() -> bool:
        return len(fake_openai.chat_requests) == 1

    streaming = asyncio.ensure_future(stream())
    try:
        # The model is asked while the moderation endpoint still holds its verdict back ...
        assert await wait_until(model_asked, within=4.0)
        assert len(fake_openai.moderation_requests) == 1 and not streaming.done()
        # ... and nothing of its answer reaches the student before the verdict.
        assert received == []
        await streaming
    finally:
        streaming.cancel()
    assert answer_text(received[:-1]) == "It distributes free space along the main axis [c1]."
    assert received[-1].model == "gpt-4o-mini"


async def test_self_harm_only_the_endpoint_reads_closes_the_begun_answer_unshown(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(online=True, database_url=course_database_url)
    student = server.client("endpoint-only-student")
    context = learning_context(VIDEO, 100.0)
    question = "everything feels pointless lately, what does flex-grow do?"
    fake_openai.moderation_flags["feels pointless"] = "self-harm/intent"
    fake_openai.enqueue_chat(Behavior(content="flex-grow shares out the free space [c1]. It is a ratio."))
    deltas, final = await ask(student, await new_session(student, context), question)
    # The phrases do not read it, so the model had begun; the endpoint does, so the student gets the support.
    assert len(fake_openai.chat_requests) == 1
    assert (answer_text(deltas), final.model, final.usage.total_tokens) == (SUPPORTIVE_REPLY, SUPPORTIVE_MODEL, 0)
    assert not final.cached
    teacher = server.client("endpoint-only-teacher", role="instructor", courses=[COURSE_ID])
    (flag,) = [flag for flag in await flags(teacher) if flag.user_id == "endpoint-only-student"]
    assert (flag.category, flag.detector) == ("self_harm", "omni-moderation-latest")
    runtime = server.server.runtime
    usage = await runtime.budget.usage_by_model(student.user_id, since=datetime.now(UTC) - timedelta(hours=1))
    assert sum(entry.total_tokens for entry in usage) == 0

    # The supportive reply was not cached as the model's answer to that prompt.
    del fake_openai.moderation_flags["feels pointless"]
    fake_openai.enqueue_chat(Behavior(content="flex-grow shares out the free space [c1]. It is a ratio."))
    deltas, final = await ask(student, await new_session(student, context), question)
    assert (answer_text(deltas), final.model, final.cached) == (
        "flex-grow shares out the free space [c1]. It is a ratio.",
        "gpt-4o-mini",
        False,
    )
    assert len(fake_openai.chat_requests) == 2

    # Read as self-harm again, the model's answer now in the cache is not replayed either.
    fake_openai.moderation_flags["feels pointless"] = "self-harm/intent"
    deltas, final = await ask(student, await new_session(student, context), question)
    assert (answer_text(deltas), final.model, final.cached) == (SUPPORTIVE_REPLY, SUPPORTIVE_MODEL, False)
    assert len(fake_openai.chat_requests) == 2


async def test_a_model_answer_reaches_the_student_a_checked_sentence_at_a_time(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory()
    client = server.client()
    session = await new_session(client)
    answer = "Flexbox lays items out in one direction. The parent gets display: flex, e.g. a nav bar. That is all."
    fake_openai.enqueue_chat(Behavior(content=answer, tokens_per_second=50))
    deltas, final = await ask(client, session, "What is flexbox?")
    assert [delta.text for delta in deltas] == [
        "Flexbox lays items out in one direction. ",
        "The parent gets display: flex, e.g. a nav bar. ",
        "That is all.",
    ]
    assert final.finish_reason == pb.FINISH_REASON_STOP
    # Each piece went to the moderation endpoint before the student saw it.
    checked = [request.body["input"] for request in fake_openai.moderation_requests]
    assert [delta.text for delta in deltas] == checked[-3:]


async def test_a_flagged_sentence_of_a_streamed_answer_ends_it_unshown(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory()
    client = server.client()
    session = await new_session(client)
    before = counter_value("tutorstream_moderation_flags", surface="chat_output", category="harassment")
    answer = "Grid has two axes. Read the docs, you useless idiot. " + " ".join(f"More{i}." for i in range(40))
    fake_openai.enqueue_chat(Behavior(content=answer, tokens_per_second=20))
    disconnects = fake_openai.stream_disconnects
    deltas, final = await ask(client, session, "What is grid?")

    assert answer_text(deltas) == "Grid has two axes. "
    assert final.finish_reason == pb.FINISH_REASON_CONTENT_FILTER
    assert counter_value("tutorstream_moderation_flags", surface="chat_output", category="harassment") == before + 1
    # The model was stopped mid-answer, and only what the student saw is stored.
    assert await fake_openai.wait_for_async(lambda: fake_openai.stream_disconnects > disconnects, timeout=10)
    stored = (await messages_of(client, session))[-1]
    assert stored.content == "Grid has two axes. "
    assert stored.finish_reason == pb.FINISH_REASON_CONTENT_FILTER

    # Not cached: asking again goes to the model again.
    fake_openai.enqueue_chat(Behavior(content="Grid has rows and columns."))
    requests = len(fake_openai.chat_requests)
    deltas, final = await ask(client, session, "What is grid?")
    assert len(fake_openai.chat_requests) == requests + 1 and not final.cached


async def test_a_cancel_while_a_broken_streams_held_text_is_moderated_still_stores_the_turn(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    """The model breaks off mid-sentence, so the held text is moderated before the partial answer goes out; the
    client cancelling meanwhile still leaves the turn recorded (nothing of the held text was shown)."""
    server = await chat_server_factory()
    client = server.client()
    session = await new_session(client)
    fake_openai.moderation_delay, fake_openai.moderation_delay_marker = 30.0, "held words"
    fake_openai.enqueue_chat(Behavior(content="Some held words that trail off without an end", drop_after_tokens=4))
    call = client.chat.StreamChat(pb.StreamChatRequest(session=session, message="What is grid?"))
    reading = asyncio.ensure_future(call.read())

    def held_text_checked() -> bool:
        return any("held words" in str(request.body.get("input")) for request in fake_openai.moderation_requests)

    assert await fake_openai.wait_for_async(held_text_checked, timeout=15)
    assert fake_openai.dropped_streams >= 1
    call.cancel()
    with pytest.raises((grpc.aio.AioRpcError, asyncio.CancelledError)):
        await reading

    async def answer_stored() -> bool:
        return len(await messages_of(client, session)) == 2

    assert await wait_until(answer_stored)
    answer = (await messages_of(client, session))[1]
    assert answer.incomplete and answer.content == ""
    assert answer.finish_reason == pb.FINISH_REASON_CANCELLED
