"""Hostile input gets a precise status through a real client: huge values are never echoed back whole, a NUL
in any text field is refused naming the field (nothing is stored), and bodies that are not the method's
message answer INVALID_ARGUMENT after authentication — never INTERNAL or UNKNOWN."""

from __future__ import annotations

import base64
import json
import random

import grpc
import pytest
from grpc import aio
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import analytics_service_pb2 as analytics_pb
from tutorstream.v1 import chat_service_pb2 as chat_pb
from tutorstream.v1 import common_pb2
from tutorstream.v1 import transcript_service_pb2 as transcript_pb

from tests.conftest import RunningServer
from tests.support.clients import Client, connect, error_details

HUGE = 100_000


def trailers_size(error: aio.AioRpcError) -> int:
    return sum(len(key) + len(value) for key, value in (error.trailing_metadata() or ()))


async def test_a_huge_value_is_not_echoed_back(server: RunningServer) -> None:
    client = server.client()
    with pytest.raises(aio.AioRpcError) as caught:
        await client.chat.GetSession(chat_pb.GetSessionRequest(name="sessions/" + "x" * HUGE))
    error = caught.value
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert len(error.details() or "") < 1_000
    assert trailers_size(error) < 8_000
    details = error_details(error)
    shown = " ".join([error.details() or "", *(v.description for v in details["BadRequest"].field_violations)])
    assert "x" * 1_000 not in shown


async def test_a_huge_struggle_is_refused_with_its_length_not_its_text(server: RunningServer) -> None:
    client = server.client()
    with pytest.raises(aio.AioRpcError) as caught:
        await client.agents.GetHint(agent_pb.GetHintRequest(struggle="why " * 30_000))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(caught.value.details() or "") < 1_000 and trailers_size(caught.value) < 8_000


async def sessions_of(client: Client) -> int:
    return len((await client.chat.ListSessions(chat_pb.ListSessionsRequest())).sessions)


async def test_a_nul_in_any_text_field_is_refused_naming_the_field(server: RunningServer) -> None:
    client = server.client()
    session = (await client.chat.CreateSession(chat_pb.CreateSessionRequest(title="ok"))).session.name
    context = common_pb2.LearningContext(course_id="webdev-101", video_id="flex\x00box", position_seconds=3)
    calls = [
        ("title", client.chat.CreateSession(chat_pb.CreateSessionRequest(title="a\x00b"))),
        ("struggle", client.agents.GetHint(agent_pb.GetHintRequest(struggle="I am stuck\x00"))),
        ("learning_context.video_id", client.agents.GetHint(agent_pb.GetHintRequest(learning_context=context))),
        ("query", client.transcripts.SearchTranscripts(transcript_pb.SearchTranscriptsRequest(query="flex\x00"))),
        (
            "attributes[note]",
            client.analytics.RecordInteraction(
                analytics_pb.RecordInteractionRequest(trigger="user", attributes={"note": "hi\x00"})
            ),
        ),
    ]
    for field, call in calls:
        with pytest.raises(aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        details = error_details(caught.value)
        assert details["ErrorInfo"].reason == "NUL_CHARACTER"
        assert [v.field for v in details["BadRequest"].field_violations] == [field]
    with pytest.raises(aio.AioRpcError) as streamed:
        async for _ in client.chat.StreamChat(chat_pb.StreamChatRequest(session=session, message="what\x00 is flex?")):
            pass
    assert streamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(streamed.value)["BadRequest"].field_violations[0].field == "message"
    assert await sessions_of(client) == 1
    listed = await client.chat.ListMessages(chat_pb.ListMessagesRequest(parent=session))
    assert list(listed.messages) == [], "nothing of a refused turn is stored"


def raw(client: Client, method: str) -> aio.UnaryUnaryMultiCallable:
    return client.channel.unary_unary(method, request_serializer=lambda body: body, response_deserializer=lambda b: b)


METHODS = [
    "/tutorstream.v1.ChatService/CreateSession",
    "/tutorstream.v1.AgentService/GetPreferences",
    "/tutorstream.v1.TranscriptService/SearchTranscripts",
    "/tutorstream.v1.AnalyticsService/RecordInteraction",
]


async def test_bodies_that_are_not_the_request_message_are_invalid_argument(server: RunningServer) -> None:
    client = server.client()
    with pytest.raises(aio.AioRpcError) as caught:
        await raw(client, "/tutorstream.v1.AgentService/GetPreferences")(b"\x0a\xff\xff\xff")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(caught.value)["ErrorInfo"].reason == "MALFORMED_REQUEST"
    anonymous = connect(server.target, None)
    try:
        with pytest.raises(aio.AioRpcError) as refused:
            await raw(anonymous, "/tutorstream.v1.AgentService/GetPreferences")(b"\x0a\xff\xff\xff")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, "authentication comes first"
    finally:
        await anonymous.close()

    generator = random.Random(15)
    codes: set[grpc.StatusCode] = set()
    for index in range(200):
        size = generator.randint(1, 64)
        body = bytes(generator.getrandbits(8) for _ in range(size))
        try:
            await raw(client, METHODS[index % len(METHODS)])(body)
            codes.add(grpc.StatusCode.OK)
        except aio.AioRpcError as error:
            codes.add(error.code())
    assert grpc.StatusCode.INTERNAL not in codes and grpc.StatusCode.UNKNOWN not in codes, codes
    assert grpc.StatusCode.INVALID_ARGUMENT in codes


async def test_an_enum_value_the_contract_does_not_declare_is_refused(server: RunningServer) -> None:
    client = server.client()
    with pytest.raises(aio.AioRpcError) as caught:
        await client.transcripts.GetTranscript(
            transcript_pb.GetTranscriptRequest(name="videos/flexbox-layout/transcript", view=9)  # type: ignore[arg-type]
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(caught.value)
    assert details["ErrorInfo"].reason == "UNKNOWN_ENUM_VALUE"
    (violation,) = details["BadRequest"].field_violations
    assert violation.field == "view" and "TRANSCRIPT_VIEW_FULL" in violation.description


def forged(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_forged_page_tokens_are_refused_by_every_listing(server: RunningServer) -> None:
    client = server.client()
    teacher = server.client(role="instructor")
    session = (await client.chat.CreateSession(chat_pb.CreateSessionRequest(title="t"))).session.name
    listings = [
        lambda token: client.chat.ListSessions(chat_pb.ListSessionsRequest(page_token=token)),
        lambda token: client.chat.ListMessages(chat_pb.ListMessagesRequest(parent=session, page_token=token)),
        lambda token: teacher.transcripts.ListTranscripts(transcript_pb.ListTranscriptsRequest(page_token=token)),
        lambda token: teacher.analytics.ListInsights(analytics_pb.ListInsightsRequest(page_token=token)),
    ]
    tokens = [
        forged({"f": "", "c": 5, "v": None}),
        forged({"s": "sessions", "k": ["not a time", "x"]}),
        forged({"s": "transcripts:", "k": [5, None]}),
        forged({"s": "sessions", "k": [1, 2, 3]}),
        "%%%",
    ]
    for listing in listings:
        for token in tokens:
            with pytest.raises(aio.AioRpcError) as caught:
                await listing(token)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, token
            assert error_details(caught.value)["BadRequest"].field_violations[0].field == "page_token"


async def test_every_message_of_a_client_stream_is_checked(server: RunningServer) -> None:
    """A later message of a stream is held to the same rules as the first: a NUL is refused naming its field,
    a body that is not the method's message is MALFORMED_REQUEST."""
    client = server.client()
    opening = agent_pb.WatchVideoRequest(watch_session_id="ws-hostile-0001", video_id="flexbox-layout")
    with_nul = agent_pb.WatchVideoRequest(events=[agent_pb.VideoEvent(event_id="e\x00", position_seconds=1.0)])
    with pytest.raises(aio.AioRpcError) as caught:
        async for _ in client.agents.WatchVideo(iter([opening, with_nul])):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(caught.value)
    assert details["ErrorInfo"].reason == "NUL_CHARACTER"
    assert [v.field for v in details["BadRequest"].field_violations] == ["events[0].event_id"]

    watch = client.channel.stream_stream(
        "/tutorstream.v1.AgentService/WatchVideo", request_serializer=lambda body: body, response_deserializer=bytes
    )
    with pytest.raises(aio.AioRpcError) as malformed:
        async for _ in watch(iter([opening.SerializeToString(), b"\x0a\xff\xff\xff"])):
            pass
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(malformed.value)["ErrorInfo"].reason == "MALFORMED_REQUEST"
