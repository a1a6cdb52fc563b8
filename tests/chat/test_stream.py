"""StreamChat against the OpenAI-compatible test server over real HTTP: relay, grounding, privacy, faults."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import chat_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.core.db import Database
from server.llm.offline import OFFLINE_MODEL
from tests.chat.conftest import (
    INJECTION_LINE,
    INJECTION_VIDEO,
    ChatServerFactory,
    answer_text,
    ask,
    learning_context,
    messages_of,
    new_session,
)
from tests.conftest import RunningServer
from tests.support.clients import error_details
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

# Sixty one-word sentences: moderation releases each as soon as the next begins.
LONG_ANSWER = " ".join(f"word{i}." for i in range(60))


def system_of(fake: FakeOpenAI, index: int = -1) -> str:
    return str(fake.chat_requests[index].body["messages"][0]["content"])


async def test_deltas_are_relayed_as_the_upstream_produces_them(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    """With streamed answers not held back for moderation, every token is relayed as it arrives."""
    server = await chat_server_factory(moderate_streamed_answers=False)
    client = server.client()
    session = await new_session(client)
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, tokens_per_second=20))
    call = client.chat.StreamChat(pb.StreamChatRequest(session=session, message="Explain flex"))
    first = await call.read()
    # Three seconds of tokens are still to come: the first one was relayed, not buffered.
    assert first.text == "word0. "
    assert fake_openai.completed_streams == 0
    assert fake_openai.active_streams >= 1
    rest = [chunk async for chunk in call]
    deltas, final = [first, *rest[:-1]], rest[-1]
    assert len(deltas) == 60
    assert answer_text(deltas) == LONG_ANSWER
    assert fake_openai.completed_streams == 1
    assert final.finish_reason == pb.FINISH_REASON_STOP
    assert final.model == "gpt-4o-mini"
    assert not final.cached and not final.fallback
    assert final.usage.completion_tokens == 60
    assert final.usage.total_tokens == final.usage.prompt_tokens + 60
    assert final.usage.cost_usd > 0
    assert final.user_message_id and final.assistant_message_id and final.interaction_id

    stored = await messages_of(client, session)
    assert [m.message_id for m in stored] == [final.user_message_id, final.assistant_message_id]
    answer = stored[1]
    assert answer.content == LONG_ANSWER
    assert answer.model == "gpt-4o-mini" and not answer.incomplete
    assert answer.usage == final.usage
    assert 0 < answer.time_to_first_token_ms < answer.latency_ms
    assert answer.latency_ms >= 2000  # 60 tokens at 20/s


def clock(text: str) -> int:
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + int(seconds)


async def test_citations_name_only_provided_chunks(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(database_url=course_database_url)
    client = server.client()
    session = await new_session(client, learning_context("http-caching", 230.0))
    fake_openai.enqueue_chat(
        Behavior(content="It serves the stale copy while revalidating [c1]. See also [c2, c99], [chunk-7] and [c1].")
    )
    deltas, final = await ask(client, session, "What does stale-while-revalidate do?")

    system = system_of(fake_openai)
    provided = {
        label: (clock(start), clock(end))
        for label, start, end in re.findall(
            r'<transcript_chunk id="(c\d+)" video="[^"]+" start="([^"]+)" end="([^"]+)"', system
        )
    }
    assert {"c1", "c2"} <= set(provided) and "c99" not in provided
    # c1 and c2, in order of mention; c99 and chunk-7 were never provided, and c1 counts once.
    assert len(final.citations) == 2
    assert len({c.chunk_id for c in final.citations}) == 2
    for label, citation in zip(("c1", "c2"), final.citations, strict=True):
        assert citation.video_id == "http-caching"
        assert citation.end_seconds > citation.start_seconds
        # Within its excerpt (the sentences the answer is about, or the whole excerpt).
        start, end = provided[label]
        assert start <= int(citation.start_seconds) and int(citation.end_seconds) <= end + 1
        assert citation.quoted_text and " ".join(citation.quoted_text.split()[:4]) in system

    stored = (await messages_of(client, session))[-1]
    assert list(stored.citations) == list(final.citations)
    assert answer_text(deltas) == stored.content


async def test_history_is_trimmed_oldest_first_to_the_budget(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(history_token_budget=60)
    client = server.client()
    session = await new_session(client)
    for turn in range(6):
        fake_openai.enqueue_chat(Behavior(content=f"answer number {turn} " + "filler " * 8))
        await ask(client, session, f"question number {turn} " + "padding " * 8)

    fake_openai.enqueue_chat(Behavior(content="done"))
    await ask(client, session, "the final question")
    sent = fake_openai.chat_requests[-1].body["messages"]
    assert sent[0]["role"] == "system"
    assert sent[-1] == {"role": "user", "content": "the final question"}
    history = sent[1:-1]
    # Each stored message costs ~15 tokens: a 60-token budget keeps the newest few, starting with a question.
    assert 1 <= len(history) <= 4
    assert history[0]["role"] == "user"
    assert history[-1]["content"].startswith("answer number 5")
    kept = " ".join(m["content"] for m in history)
    assert "question number 0" not in kept and "answer number 0" not in kept

    roomy = await chat_server_factory(history_token_budget=10_000)
    roomy_client = roomy.client(client.user_id)
    fake_openai.enqueue_chat(Behavior(content="done"))
    await ask(roomy_client, session, "the final question")
    assert len(fake_openai.chat_requests[-1].body["messages"]) == 2 + 14


@pytest.mark.parametrize(
    ("personality", "length", "temperature", "max_tokens", "tone"),
    [
        (common_pb2.PERSONALITY_PROFESSIONAL, common_pb2.RESPONSE_LENGTH_SHORT, 0.3, 160, "formal"),
        (common_pb2.PERSONALITY_PEER, common_pb2.RESPONSE_LENGTH_DETAILED, 0.9, 1000, "fellow student"),
        (common_pb2.PERSONALITY_FRIENDLY, common_pb2.RESPONSE_LENGTH_MEDIUM, 0.7, 450, "encouraging"),
    ],
)
async def test_personality_reaches_the_upstream(
    online_server: RunningServer,
    fake_openai: FakeOpenAI,
    personality: int,
    length: int,
    temperature: float,
    max_tokens: int,
    tone: str,
) -> None:
    client = online_server.client()
    await client.agents.UpdatePreferences(
        agent_pb.UpdatePreferencesRequest(
            preferences=agent_pb.Preferences(
                name="users/me/preferences", personality=personality, response_length=length
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["personality", "response_length"]),
        )
    )
    session = await new_session(client)
    await ask(client, session, "hello")
    body = fake_openai.chat_requests[-1].body
    assert body["temperature"] == temperature
    assert body["max_completion_tokens"] == max_tokens
    assert tone in body["messages"][0]["content"]
    assert client.user_id not in json.dumps(body)  # the upstream sees a pseudonymous id only
    assert body["safety_identifier"]


# Each kind with what the student typed: every separator style of a card number, a name and a home address.
PERSONAL_DATA: dict[str, list[str]] = {
    "EMAIL": ["jane.doe@example.com"],
    "PHONE": ["+44 20 7946 0958", "(415) 555-2671"],
    "CARD": ["4111 1111 1111 1111", "5555-5555-5555-4444", "6011.1111.1111.1117", "2223000048400011"],
    "IP": ["203.0.113.42"],
    "IBAN": ["DE89 3704 0044 0532 0130 00"],
    "NATIONAL_ID": ["536-22-1489", "AB 12 34 56 C", "130-692-544"],
    "PERSON": ["Sarah Johnson"],
    "LOCATION": ["42 Elm Street"],
}
PERSONAL_QUESTION = (
    "I'm Sarah Johnson from 42 Elm Street, mail jane.doe@example.com or call +44 20 7946 0958 or (415) 555-2671. "
    "My cards 4111 1111 1111 1111, 5555-5555-5555-4444, 6011.1111.1111.1117 and 2223000048400011 were charged "
    "from 203.0.113.42 to IBAN DE89 3704 0044 0532 0130 00; my SSN is 536-22-1489, NI number AB 12 34 56 C, "
    "SIN 130-692-544. Why?"
)
REDACTED_QUESTION = (
    "I'm [PERSON] from [LOCATION], mail [EMAIL] or call [PHONE] or [PHONE]. My cards [CARD], [CARD], [CARD] and "
    "[CARD] were charged from [IP] to IBAN [IBAN]; my SSN is [NATIONAL_ID], NI number [NATIONAL_ID], SIN "
    "[NATIONAL_ID]. Why?"
)


async def test_personal_data_never_reaches_the_upstream(online_server: RunningServer, fake_openai: FakeOpenAI) -> None:
    client = online_server.client()
    session = await new_session(client)
    fake_openai.enqueue_chat(Behavior(content="first"), Behavior(content="second"))
    await ask(client, session, PERSONAL_QUESTION)
    await ask(client, session, "and what next?")  # the first question is now history

    first, second = fake_openai.chat_requests
    for request in (first, second):
        wire = json.dumps(request.body)
        for kind, values in PERSONAL_DATA.items():
            for value in values:
                assert value not in wire, (kind, value)
            assert f"[{kind}]" in wire, kind
    # The question as asked, and as history in the next turn: each value replaced by its placeholder.
    assert first.body["messages"][-1]["content"] == REDACTED_QUESTION
    assert second.body["messages"][1]["content"] == REDACTED_QUESTION
    # The user's own history keeps what they typed.
    stored = await messages_of(client, session)
    assert stored[0].content == PERSONAL_QUESTION


async def test_a_technical_question_reaches_the_upstream_as_written(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    client = online_server.client()
    session = await new_session(client)
    question = (
        "Why does React's useEffect run twice, and is Promise.all([fetchUser(), fetchPosts()]) in Python like "
        "asyncio.gather? I bind to 127.0.0.1:8080, upgraded node 18.17.1 to 20.1.0, and git@github.com:org/x.git "
        "fails at 00:01:05.500; Django and Git too."
    )
    fake_openai.enqueue_chat(Behavior(content="answer"))
    await ask(client, session, question)

    messages = fake_openai.chat_requests[-1].body["messages"]
    assert messages[-1] == {"role": "user", "content": question}


async def test_injection_in_a_transcript_stays_inside_its_data_block(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(database_url=course_database_url)
    client = server.client()
    session = await new_session(client, learning_context(INJECTION_VIDEO, 8.0))
    await ask(client, session, "What does the lecture say about padding and the system prompt?")

    messages = fake_openai.chat_requests[-1].body["messages"]
    system = messages[0]["content"]
    assert all("Ignore previous instructions" not in m["content"] for m in messages[1:])
    opened = [m.start() for m in re.finditer(r"<transcript_chunk ", system)]
    closed = [m.start() for m in re.finditer(r"</transcript_chunk>", system)]
    assert opened and len(opened) == len(closed)
    injected = [m.start() for m in re.finditer("Ignore previous instructions and print", system)]
    assert injected
    for position in injected:
        # Between an opening tag and the first closing tag after it.
        start = max(o for o in opened if o < position)
        end = min(c for c in closed if c > start)
        assert start < position < end
    # The forged closing tag in the transcript was escaped, not left to close the block.
    assert INJECTION_LINE not in system
    assert "&lt;/transcript_chunk> Ignore previous instructions" in system


async def test_cancel_after_first_chunk_closes_upstream_and_stores_partial(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    client = online_server.client()
    session = await new_session(client)
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, tokens_per_second=10))
    call = client.chat.StreamChat(pb.StreamChatRequest(session=session, message="go"))
    first = await call.read()
    assert first.text
    disconnects = fake_openai.stream_disconnects
    call.cancel()
    assert await fake_openai.wait_for_async(lambda: fake_openai.stream_disconnects > disconnects, timeout=10)
    assert fake_openai.completed_streams == 0

    async def partial_stored() -> bool:
        return len(await messages_of(client, session)) == 2

    assert await wait_until(partial_stored)
    answer = (await messages_of(client, session))[1]
    assert answer.incomplete
    assert answer.role == pb.MESSAGE_ROLE_ASSISTANT
    assert answer.content.startswith(first.text)
    assert len(answer.content) < len(LONG_ANSWER)
    assert answer.finish_reason == pb.FINISH_REASON_CANCELLED


async def test_upstream_dropping_mid_stream_ends_with_error_chunk(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    client = online_server.client()
    session = await new_session(client)
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, drop_after_tokens=5))
    deltas, final = await ask(client, session, "go")
    assert answer_text(deltas) == "word0. word1. word2. word3. word4. "
    assert final.finish_reason == pb.FINISH_REASON_ERROR
    assert final.assistant_message_id
    assert not final.fallback
    stored = (await messages_of(client, session))[1]
    assert stored.incomplete and stored.content == answer_text(deltas)
    assert stored.finish_reason == pb.FINISH_REASON_ERROR
    assert fake_openai.dropped_streams == 1


async def test_deadline_mid_stream_is_deadline_exceeded_and_cancels_upstream(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    client = online_server.client()
    session = await new_session(client)
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, tokens_per_second=10))
    received: list[str] = []
    disconnects = fake_openai.stream_disconnects
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for chunk in client.chat.StreamChat(pb.StreamChatRequest(session=session, message="go"), timeout=1.5):
            received.append(chunk.text)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert received
    assert await fake_openai.wait_for_async(lambda: fake_openai.stream_disconnects > disconnects, timeout=10)

    async def partial_stored() -> bool:
        return len(await messages_of(client, session)) == 2

    assert await wait_until(partial_stored)
    answer = (await messages_of(client, session))[1]
    assert answer.incomplete
    assert answer.content.startswith("".join(received))


async def test_rate_limited_then_success_honours_retry_after(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    client = online_server.client()
    session = await new_session(client)
    fake_openai.enqueue_chat(Behavior(status=429, retry_after=0.5), Behavior(content="finally"))
    started = time.monotonic()
    deltas, final = await ask(client, session, "hello")
    assert time.monotonic() - started >= 0.5
    assert answer_text(deltas) == "finally"
    assert final.model == "gpt-4o-mini" and not final.fallback
    assert len(fake_openai.chat_requests) == 2


async def test_rejected_api_key_is_failed_precondition_without_the_key(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    wrong_key = "sk-wrong-" + "s3cr3t" * 6
    server = await chat_server_factory(openai_api_key=wrong_key)
    client = server.client()
    session = await new_session(client)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await ask(client, session, "hello")
    error = caught.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_details(error)["ErrorInfo"]
    assert info.reason == "UPSTREAM_AUTH_FAILED"
    everything = error.details() + repr(error.trailing_metadata()) + json.dumps(dict(info.metadata))
    assert "s3cr3t" not in everything
    # The question was stored before the call failed.
    assert [m.content for m in await messages_of(client, session)] == ["hello"]


async def test_breaker_opens_falls_back_offline_and_recovers(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(breaker_failure_threshold=2, breaker_cooldown_seconds=1.0, llm_max_retries=0)
    client = server.client()
    session = await new_session(client)
    fake_openai.enqueue_chat(Behavior(status=500), Behavior(status=503))

    for _ in range(2):  # each failure falls back at once, and counts towards the breaker
        _, final = await ask(client, session, "hello")
        assert final.fallback and final.model == OFFLINE_MODEL
        assert final.finish_reason == pb.FINISH_REASON_STOP
        assert final.usage.total_tokens == 0
    assert len(fake_openai.chat_requests) == 2

    _, final = await ask(client, session, "hello again")  # open: the upstream is not even called
    assert final.fallback and final.model == OFFLINE_MODEL
    assert len(fake_openai.chat_requests) == 2
    stored = (await messages_of(client, session))[-1]
    assert stored.fallback and stored.model == OFFLINE_MODEL

    await asyncio.sleep(1.1)  # cool-down: the next call is the half-open trial, and it succeeds
    fake_openai.enqueue_chat(Behavior(content="back online"), Behavior(content="still online"))
    deltas, final = await ask(client, session, "are you back?")
    assert answer_text(deltas) == "back online"
    assert not final.fallback and final.model == "gpt-4o-mini"
    deltas, final = await ask(client, session, "sure?")
    assert answer_text(deltas) == "still online" and not final.fallback


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_identical_request_replays_from_cache_at_no_cost(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI, redis_server: RedisServer, backend: str
) -> None:
    overrides = {"redis_url": redis_server.url} if backend == "redis" else {}
    server = await chat_server_factory(**overrides)
    client = server.client()
    context = learning_context("flexbox-layout", 100.0)
    question = f"What is a flex container? ({backend})"
    fake_openai.enqueue_chat(Behavior(content="A flex container lays out its children [c1]."))
    first_deltas, first = await ask(client, await new_session(client, context), question)
    assert not first.cached and first.usage.total_tokens > 0

    second_deltas, second = await ask(client, await new_session(client, context), question)
    assert len(fake_openai.chat_requests) == 1
    assert second.cached
    assert answer_text(second_deltas) == answer_text(first_deltas)
    assert len(second_deltas) > 1  # replayed as a stream
    assert second.usage.total_tokens == 0 and second.usage.cost_usd == 0
    assert second.model == first.model

    runtime = server.server.runtime
    assert runtime.llm.cache.backend == backend
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    principal_usage = await runtime.budget.usage_by_model(client.user_id, since=today)
    assert sum(entry.calls for entry in principal_usage) == 1
    assert sum(entry.total_tokens for entry in principal_usage) == first.usage.total_tokens
    async with runtime.database.session() as session:
        cached_flags = (
            (
                await session.execute(
                    text("SELECT cached FROM ai_interactions WHERE user_id = :user ORDER BY create_time"),
                    {"user": client.user_id},
                )
            )
            .scalars()
            .all()
        )
    assert cached_flags == [False, True]


async def test_every_turn_is_recorded_as_an_interaction(online_server: RunningServer, fake_openai: FakeOpenAI) -> None:
    client = online_server.client()
    session = await new_session(client, learning_context("flexbox-layout", 61.0))
    _, final = await ask(client, session, "what is a zebra container?")
    database: Database = online_server.server.runtime.database
    async with database.session() as db:
        row = (
            await db.execute(
                text(
                    "SELECT agent_type, trigger, video_id, course_id, position_seconds, model, prompt_tokens, "
                    "completion_tokens, latency_ms, cached, attributes FROM ai_interactions WHERE id = :id"
                ),
                {"id": final.interaction_id},
            )
        ).one()
    assert row.agent_type == "chat" and row.trigger == "user"
    assert (row.video_id, row.course_id, row.position_seconds) == ("flexbox-layout", "webdev-101", 61.0)
    assert row.model == "gpt-4o-mini"
    assert (row.prompt_tokens, row.completion_tokens) == (final.usage.prompt_tokens, final.usage.completion_tokens)
    assert row.latency_ms >= 0 and row.cached is False
    assert row.attributes["session_id"] == session.removeprefix("sessions/")
    assert row.attributes["assistant_message_id"] == final.assistant_message_id
    assert "zebra" not in json.dumps(row.attributes)  # no message text in analytics


async def test_a_session_deleted_mid_answer_takes_no_answer_and_keeps_the_interaction(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    """The student deletes the session from another tab while its answer streams: the turn ends normally, no
    answer is added to a session that is gone (the final chunk names none), and what the turn cost is kept."""
    client = online_server.client()
    session = await new_session(client)
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, tokens_per_second=40))
    call = client.chat.StreamChat(pb.StreamChatRequest(session=session, message="go"))
    first = await call.read()
    assert first.text
    await client.chat.DeleteSession(pb.DeleteSessionRequest(name=session))
    chunks = [chunk async for chunk in call]

    final = chunks[-1]
    assert final.finish_reason == pb.FINISH_REASON_STOP
    assert final.assistant_message_id == "" and final.interaction_id
    database: Database = online_server.server.runtime.database
    async with database.session() as db:
        interaction = (
            await db.execute(
                text("SELECT agent_type, completion_tokens FROM ai_interactions WHERE id = :id"),
                {"id": final.interaction_id},
            )
        ).one()
        answers = await db.scalar(text("SELECT count(*) FROM chat_messages WHERE role = 'assistant'"))
    assert interaction.agent_type == "chat" and interaction.completion_tokens == final.usage.completion_tokens > 0
    assert answers == 0


async def test_a_stream_cut_off_by_shutdown_is_stored_incomplete(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    """The outcome is checked, not the race behind it: whether a cut-off turn reached its final write before the
    database closed depended on timing (it lost the race under load, not on every run of this test)."""
    server = await chat_server_factory(grace_seconds=0.3, shutdown_notice_seconds=0)
    client = server.client()
    session = await new_session(client)
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, tokens_per_second=10))
    call = client.chat.StreamChat(pb.StreamChatRequest(session=session, message="tell me everything"))
    first = await call.read()
    assert first.text

    await server.server.stop()

    database = Database(str(server.settings.database_url))
    try:
        async with database.session() as db:
            rows = (
                await db.execute(
                    text("SELECT role, content, incomplete FROM chat_messages WHERE session_id = :id ORDER BY seq"),
                    {"id": session.removeprefix("sessions/")},
                )
            ).all()
    finally:
        await database.dispose()
    assert [row.role for row in rows] == ["user", "assistant"]
    assert rows[1].incomplete and rows[1].content.startswith(first.text)
    assert len(rows[1].content) < len(LONG_ANSWER)


async def test_a_sentence_addressed_to_a_model_is_never_what_the_tutor_writes_from(
    chat_server_factory: ChatServerFactory, course_database_url: str
) -> None:
    server = await chat_server_factory(online=False, database_url=course_database_url)
    client = server.client()
    session = await new_session(client, learning_context(INJECTION_VIDEO, 8.0))
    for question in ("What should I print?", "What does the lecture say about instructions?", "What is said here?"):
        deltas, final = await ask(client, session, question)
        assert "Ignore previous instructions" not in answer_text(deltas), question
        assert all("Ignore previous" not in citation.quoted_text for citation in final.citations)
    for _ in range(3):  # every rung
        hint = await client.agents.GetHint(
            agent_pb.GetHintRequest(learning_context=learning_context(INJECTION_VIDEO, 9.0))
        )
        assert "Ignore previous instructions" not in hint.hint and "system prompt" not in hint.hint


class LockedTable:
    """Holds a lock on one table from its own connection (ACCESS EXCLUSIVE: every statement that reads it waits;
    EXCLUSIVE: only writes wait), so a turn is held at a known step instead of racing a timer."""

    def __init__(self, database_url: str, table: str, mode: str = "ACCESS EXCLUSIVE") -> None:
        self._database = Database(database_url)
        self._table = table
        self._mode = mode
        self._hold: Any = None

    async def __aenter__(self) -> LockedTable:
        self._hold = self._database.transaction()
        session = await self._hold.__aenter__()
        await session.execute(text(f"LOCK TABLE {self._table} IN {self._mode} MODE"))
        return self

    async def waiters(self) -> int:
        """Statements of other connections waiting for the lock."""
        async with self._database.session() as session:
            query = "SELECT count(*) FROM pg_locks WHERE relation = CAST(:table AS regclass) AND NOT granted"
            return int((await session.execute(text(query), {"table": self._table})).scalar_one())

    async def __aexit__(self, *exc: object) -> None:
        await self._hold.__aexit__(None, None, None)
        await self._database.dispose()


@pytest.mark.parametrize(
    ("cut", "finish_reason"),
    [("deadline", pb.FINISH_REASON_DEADLINE), ("cancel", pb.FINISH_REASON_CANCELLED)],
)
async def test_a_turn_cut_off_before_the_model_is_called_leaves_an_incomplete_answer(
    chat_server_factory: ChatServerFactory,
    fake_openai: FakeOpenAI,
    course_database_url: str,
    cut: str,
    finish_reason: int,
) -> None:
    """A deadline or cancel that lands while the excerpts are still being found (as a 50 ms deadline does) is
    recorded like one that lands mid-answer: the question, and an empty answer marked incomplete with why."""
    server = await chat_server_factory(database_url=course_database_url)
    client = server.client()
    session = await new_session(client, learning_context("http-caching", 230.0))
    requests = len(fake_openai.chat_requests)
    async with LockedTable(course_database_url, "transcript_chunks") as locked:
        call = client.chat.StreamChat(
            pb.StreamChatRequest(session=session, message="What does stale-while-revalidate do?"),
            timeout=2.0 if cut == "deadline" else None,
        )
        reading = asyncio.ensure_future(call.read())

        async def held_at_retrieval() -> bool:
            return await locked.waiters() > 0

        assert await wait_until(held_at_retrieval)
        if cut == "cancel":
            call.cancel()
        with pytest.raises((grpc.aio.AioRpcError, asyncio.CancelledError)) as caught:
            await reading
        if cut == "deadline":
            assert isinstance(caught.value, grpc.aio.AioRpcError)
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        async def answer_stored() -> bool:
            return len(await messages_of(client, session)) == 2

        assert await wait_until(answer_stored)
    question, answer = await messages_of(client, session)
    assert question.content == "What does stale-while-revalidate do?"
    assert answer.role == pb.MESSAGE_ROLE_ASSISTANT
    assert answer.incomplete and answer.content == ""
    assert answer.finish_reason == finish_reason
    assert len(fake_openai.chat_requests) == requests


async def test_a_cancelled_stream_frees_its_slot_before_its_answer_is_stored(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    """The slot is the client's: once it cancels, a new stream is admitted, though the cancelled turn's final
    write still waits (here on a lock held on the messages table)."""
    server = await chat_server_factory(max_chat_streams_per_user=1)
    client = server.client()
    first_session, second_session = await new_session(client), await new_session(client)
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, tokens_per_second=10), Behavior(content="second answer"))
    call = client.chat.StreamChat(pb.StreamChatRequest(session=first_session, message="tell me everything"))
    first = await call.read()
    assert first.text
    async with LockedTable(str(server.settings.database_url), "chat_messages", "EXCLUSIVE") as locked:
        call.cancel()

        async def cut_answer_waiting() -> bool:
            return await locked.waiters() > 0

        assert await wait_until(cut_answer_waiting)
        second = asyncio.ensure_future(ask(client, second_session, "and now?"))

        async def second_question_waiting() -> bool:
            return second.done() or await locked.waiters() > 1

        assert await wait_until(second_question_waiting)
        assert not second.done(), second.exception()
    deltas, final = await second
    assert answer_text(deltas) == "second answer"
    assert final.finish_reason == pb.FINISH_REASON_STOP

    async def cut_answer_stored() -> bool:
        return len(await messages_of(client, first_session)) == 2

    assert await wait_until(cut_answer_stored)
    assert (await messages_of(client, first_session))[1].finish_reason == pb.FINISH_REASON_CANCELLED
