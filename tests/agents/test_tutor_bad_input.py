"""What the tutor does with input it cannot use as such: an empty struggle, a playhead past the end, a video
stored before its sentences were analysed (until the backfill job reaches it), a question in another
language. Each gets an honest answer or a precise status, never INTERNAL."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import chat_service_pb2 as chat_pb

from tests.agents.conftest import AgentServerFactory, generate_quiz, learning_context
from tests.conftest import RunningServer
from tests.support.clients import error_details

VIDEO = "react-state-effects"


async def test_an_empty_or_blank_struggle_is_no_struggle(offline_server: RunningServer) -> None:
    client = offline_server.client("blank-struggle")
    for struggle in ("", "   \n\t "):
        response = await client.agents.GetHint(
            pb.GetHintRequest(learning_context=learning_context(VIDEO, 200.0), struggle=struggle)
        )
        assert response.hint.endswith("?") and response.level >= 1


async def test_a_playhead_past_the_end_is_a_failed_precondition(offline_server: RunningServer) -> None:
    client = offline_server.client("past-the-end")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.agents.GetHint(pb.GetHintRequest(learning_context=learning_context(VIDEO, 9_999.0)))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(error.value)["ErrorInfo"].reason == "POSITION_OUTSIDE_VIDEO"


async def test_a_video_not_analysed_yet_gets_honest_answers(agents_server_factory: AgentServerFactory) -> None:
    # No worker: the backfill job that would analyse the video does not run during the test.
    server = await agents_server_factory(run_workers_in_process=False)
    async with server.server.database.transaction() as session:
        await session.execute(text("DELETE FROM transcript_sentences WHERE video_id = :v"), {"v": VIDEO})
        await session.execute(text("DELETE FROM transcript_phrases WHERE video_id = :v"), {"v": VIDEO})
        await session.execute(text("UPDATE transcripts SET analysis_version = '' WHERE video_id = :v"), {"v": VIDEO})
    client = server.client("before-backfill")

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await generate_quiz(client, VIDEO, 0.0, 200.0)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(error.value)["ErrorInfo"].reason == "ANALYSIS_PENDING"
    assert "still being analysed" in (error.value.details() or "")

    hint = await client.agents.GetHint(pb.GetHintRequest(learning_context=learning_context(VIDEO, 200.0)))
    assert hint.hint.startswith("Re-watch ") and hint.citation.video_id == VIDEO

    session = await client.chat.CreateSession(
        chat_pb.CreateSessionRequest(learning_context=learning_context(VIDEO, 175.0))
    )
    parts: list[str] = []
    async for chunk in client.chat.StreamChat(
        chat_pb.StreamChatRequest(session=session.session.name, message="What is the dependency array?")
    ):
        parts.append(chunk.text)
    answer = "".join(parts)
    assert answer.startswith("This video's transcript is still being analysed"), answer
