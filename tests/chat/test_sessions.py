"""Sessions, history and references over gRPC: CRUD, pagination, ownership (AIP-211), bad input."""

from __future__ import annotations

import uuid

import grpc
import pytest
from tutorstream.v1 import chat_service_pb2 as pb
from tutorstream.v1 import common_pb2

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
from tests.support.clients import Client, error_details
from tests.support.fake_openai import Behavior, FakeOpenAI


async def rpc_error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if hasattr(call, "__aiter__"):
            async for _ in call:  # type: ignore[attr-defined]
                pass
        else:
            await call  # type: ignore[misc]
    return caught.value


async def test_create_get_list_delete(online_server: RunningServer) -> None:
    client = online_server.client()
    context = learning_context("flexbox-layout", 42.5, selected=(40.0, 50.0))
    created = (
        await client.chat.CreateSession(pb.CreateSessionRequest(title="  Flexbox questions ", learning_context=context))
    ).session
    assert created.name == f"sessions/{created.session_id}"
    assert created.title == "Flexbox questions"
    assert created.learning_context == context
    assert created.message_count == 0
    assert created.create_time.seconds > 0

    fetched = (await client.chat.GetSession(pb.GetSessionRequest(name=created.name))).session
    assert fetched == created

    listed = await client.chat.ListSessions(pb.ListSessionsRequest())
    assert [s.name for s in listed.sessions] == [created.name]
    assert listed.next_page_token == ""

    await client.chat.DeleteSession(pb.DeleteSessionRequest(name=created.name))
    error = await rpc_error(client.chat.GetSession(pb.GetSessionRequest(name=created.name)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await rpc_error(client.chat.DeleteSession(pb.DeleteSessionRequest(name=created.name)))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_sessions_page_newest_first(online_server: RunningServer) -> None:
    client = online_server.client()
    names = [await new_session(client, title=f"s{i}") for i in range(7)]
    other = online_server.client()
    await new_session(other, title="someone else's")

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await client.chat.ListSessions(pb.ListSessionsRequest(page_size=3, page_token=token))
        assert len(page.sessions) <= 3
        seen.extend(s.name for s in page.sessions)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == names[::-1]


async def test_bad_page_tokens_and_sizes(online_server: RunningServer) -> None:
    client = online_server.client()
    session = await new_session(client)
    for request in (
        pb.ListSessionsRequest(page_token="not-a-token!"),
        pb.ListSessionsRequest(page_size=-1),
    ):
        error = await rpc_error(client.chat.ListSessions(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    await new_session(client)
    sessions_token = (await client.chat.ListSessions(pb.ListSessionsRequest(page_size=1))).next_page_token
    assert sessions_token
    # A token of one listing is refused by another.
    error = await rpc_error(client.chat.ListMessages(pb.ListMessagesRequest(parent=session, page_token=sessions_token)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(error)["BadRequest"].field_violations[0].field == "page_token"


async def test_messages_oldest_first_paginated_and_cleared(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    client = online_server.client()
    session = await new_session(client)
    for index in range(3):
        fake_openai.enqueue_chat(Behavior(content=f"answer {index}"))
        await ask(client, session, f"question {index}")

    contents: list[str] = []
    token = ""
    while True:
        page = await client.chat.ListMessages(pb.ListMessagesRequest(parent=session, page_size=4, page_token=token))
        contents.extend(m.content for m in page.messages)
        token = page.next_page_token
        if not token:
            break
    assert contents == ["question 0", "answer 0", "question 1", "answer 1", "question 2", "answer 2"]
    assert (await client.chat.GetSession(pb.GetSessionRequest(name=session))).session.message_count == 6

    cleared = await client.chat.ClearMessages(pb.ClearMessagesRequest(session=session))
    assert cleared.deleted_count == 6
    assert await messages_of(client, session) == []
    # The session stays, and the next turn starts without history.
    fake_openai.enqueue_chat(Behavior(content="fresh"))
    await ask(client, session, "again")
    sent = fake_openai.chat_requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]


async def test_another_users_session_answers_like_a_missing_one(online_server: RunningServer) -> None:
    alice, mallory = online_server.client("alice"), online_server.client("mallory")
    session = await new_session(alice, learning_context("flexbox-layout", 10.0))
    missing = f"sessions/{uuid.uuid4().hex}"

    def calls(client: Client, name: str) -> list[object]:
        return [
            client.chat.GetSession(pb.GetSessionRequest(name=name)),
            client.chat.DeleteSession(pb.DeleteSessionRequest(name=name)),
            client.chat.ListMessages(pb.ListMessagesRequest(parent=name)),
            client.chat.ClearMessages(pb.ClearMessagesRequest(session=name)),
            # Invalid fields too: ownership is checked before the request is validated.
            client.chat.StreamChat(pb.StreamChatRequest(session=name, message="")),
            client.chat.AddTranscriptReference(pb.AddTranscriptReferenceRequest(session=name, video_id="bad id!")),
            client.chat.RemoveTranscriptReference(pb.RemoveTranscriptReferenceRequest(session=name, reference_id="r1")),
        ]

    for foreign, absent in zip(calls(mallory, session), calls(mallory, missing), strict=True):
        foreign_error, absent_error = await rpc_error(foreign), await rpc_error(absent)
        assert foreign_error.code() == absent_error.code() == grpc.StatusCode.NOT_FOUND
        assert foreign_error.details() == absent_error.details()
        assert error_details(foreign_error)["ErrorInfo"].reason == error_details(absent_error)["ErrorInfo"].reason
    assert session not in [s.name for s in (await mallory.chat.ListSessions(pb.ListSessionsRequest())).sessions]
    # Nothing of Alice's changed.
    assert (await alice.chat.GetSession(pb.GetSessionRequest(name=session))).session.name == session


@pytest.mark.parametrize(
    ("message", "reason"), [("", "INVALID_ARGUMENT"), ("   \n", "INVALID_ARGUMENT"), ("x" * 4001, "MESSAGE_TOO_LONG")]
)
async def test_empty_or_oversized_message_is_invalid(
    online_server: RunningServer, fake_openai: FakeOpenAI, message: str, reason: str
) -> None:
    client = online_server.client()
    session = await new_session(client)
    error = await rpc_error(client.chat.StreamChat(pb.StreamChatRequest(session=session, message=message)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(error)
    assert details["ErrorInfo"].reason == reason
    assert details["BadRequest"].field_violations[0].field == "message"
    assert fake_openai.chat_requests == []
    assert await messages_of(client, session) == []


async def test_bad_names_and_contexts_are_invalid(online_server: RunningServer) -> None:
    client = online_server.client()
    for call in (
        client.chat.GetSession(pb.GetSessionRequest(name="chats/abc")),
        client.chat.GetSession(pb.GetSessionRequest(name="")),
        client.chat.StreamChat(pb.StreamChatRequest(session="sessions/a/b", message="hi")),
        client.chat.CreateSession(pb.CreateSessionRequest(title="t" * 201)),
        client.chat.CreateSession(
            pb.CreateSessionRequest(learning_context=common_pb2.LearningContext(video_id="no spaces allowed"))
        ),
        client.chat.CreateSession(
            pb.CreateSessionRequest(learning_context=learning_context("flexbox-layout", selected=(30.0, 10.0)))
        ),
        client.chat.CreateSession(
            pb.CreateSessionRequest(learning_context=common_pb2.LearningContext(position_seconds=-5))
        ),
    ):
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()


async def test_unknown_session_is_not_found(online_server: RunningServer) -> None:
    client = online_server.client()
    error = await rpc_error(
        client.chat.StreamChat(pb.StreamChatRequest(session=f"sessions/{uuid.uuid4().hex}", message="hi"))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(error)["ErrorInfo"].reason == "SESSION_NOT_FOUND"


async def test_references_join_the_context_until_removed(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(database_url=course_database_url)
    client = server.client()
    session = await new_session(client, learning_context("async-javascript", 5.0))

    added = (
        await client.chat.AddTranscriptReference(
            pb.AddTranscriptReferenceRequest(
                session=session,
                video_id="http-caching",
                range=common_pb2.TimeRange(start_seconds=226.0, end_seconds=237.0),
            )
        )
    ).reference
    assert added.reference_id
    assert added.video_id == "http-caching"
    assert "stale-while-revalidate" in added.text
    assert "Welcome" not in added.text

    stored = (await client.chat.GetSession(pb.GetSessionRequest(name=session))).session
    assert [r.reference_id for r in stored.references] == [added.reference_id]

    fake_openai.enqueue_chat(Behavior(content="ok"), Behavior(content="ok"))
    await ask(client, session, "Tell me more about this")
    system = fake_openai.chat_requests[-1].body["messages"][0]["content"]
    assert 'video="http-caching"' in system
    assert 'kind="selected"' in system

    await client.chat.RemoveTranscriptReference(
        pb.RemoveTranscriptReferenceRequest(session=session, reference_id=added.reference_id)
    )
    assert not (await client.chat.GetSession(pb.GetSessionRequest(name=session))).session.references
    await ask(client, session, "And now?")
    system = fake_openai.chat_requests[-1].body["messages"][0]["content"]
    assert 'kind="selected"' not in system

    error = await rpc_error(
        client.chat.RemoveTranscriptReference(
            pb.RemoveTranscriptReferenceRequest(session=session, reference_id=added.reference_id)
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_references_are_refused(chat_server_factory: ChatServerFactory, course_database_url: str) -> None:
    server = await chat_server_factory(database_url=course_database_url)
    client = server.client()
    session = await new_session(client)

    def add(video_id: str, start: float, end: float) -> object:
        return client.chat.AddTranscriptReference(
            pb.AddTranscriptReferenceRequest(
                session=session, video_id=video_id, range=common_pb2.TimeRange(start_seconds=start, end_seconds=end)
            )
        )

    unknown = await rpc_error(add("no-such-video", 0, 10))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    for video_id, start, end in (("flexbox-layout", 10, 5), ("flexbox-layout", 480, 900), ("flexbox-layout", 0, 700)):
        error = await rpc_error(add(video_id, start, end))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (start, end)
    no_range = await rpc_error(
        client.chat.AddTranscriptReference(pb.AddTranscriptReferenceRequest(session=session, video_id="flexbox-layout"))
    )
    assert no_range.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_question_is_stored_before_the_model_answers(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    """Stored first, in its own transaction: visible while the answer is still streaming (the upstream holds
    the answer after its second sentence began, which releases the first, moderated, to the student)."""
    client = online_server.client()
    session = await new_session(client, learning_context("flexbox-layout", 1.0, course_id=COURSE_ID))
    answer = " ".join(f"Sentence {i}." for i in range(20))
    fake_openai.enqueue_chat(Behavior(content=answer, hold_after_tokens=3))
    call = client.chat.StreamChat(pb.StreamChatRequest(session=session, message="what is flex?"))
    first = await call.read()
    assert first.text == "Sentence 0. "
    stored = await messages_of(client, session)
    assert [(m.role, m.content) for m in stored] == [(pb.MESSAGE_ROLE_USER, "what is flex?")]
    fake_openai.release_held()
    rest = [chunk async for chunk in call]
    assert answer_text([first, *rest[:-1]]) == answer
