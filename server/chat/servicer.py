"""ChatService transport: proto in, names parsed, call the chat service, proto out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from grpc import aio
from tutorstream.v1 import chat_service_pb2 as pb
from tutorstream.v1 import chat_service_pb2_grpc as pb_grpc

from server.chat.domain import AnswerDelta
from server.chat.protos import (
    SCOPE_FROM_PROTO,
    context_from_proto,
    final_to_proto,
    message_to_proto,
    question_to_proto,
    reference_to_proto,
    session_to_proto,
)
from server.chat.questions import QuestionScope, SegmentQuestions
from server.chat.service import ChatService
from server.core.deadlines import deadline_from
from server.core.names import parse_name
from server.core.request_context import current_principal

SESSION_PATTERN = "sessions/{session}"
# Time kept back from the client's deadline: the partial answer of a streamed turn is stored in one short write.
DEADLINE_MARGIN_SECONDS = 0.1


class ChatServicer(pb_grpc.ChatServiceServicer):
    def __init__(self, chat: ChatService, questions: SegmentQuestions) -> None:
        self._chat = chat
        self._questions = questions

    async def CreateSession(
        self, request: pb.CreateSessionRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.CreateSessionResponse:
        principal = current_principal()
        learning_context = context_from_proto(request.learning_context)
        created = await self._chat.create_session(principal, request.title, learning_context)
        return pb.CreateSessionResponse(session=session_to_proto(created))

    async def GetSession(
        self, request: pb.GetSessionRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.GetSessionResponse:
        principal = current_principal()
        (session_id,) = parse_name(request.name, SESSION_PATTERN, "name")
        return pb.GetSessionResponse(session=session_to_proto(await self._chat.get_session(principal, session_id)))

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListSessionsResponse:
        principal = current_principal()
        page = await self._chat.list_sessions(principal, request.page_size, request.page_token)
        return pb.ListSessionsResponse(
            sessions=[session_to_proto(item) for item in page.items], next_page_token=page.next_page_token
        )

    async def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.DeleteSessionResponse:
        principal = current_principal()
        (session_id,) = parse_name(request.name, SESSION_PATTERN, "name")
        await self._chat.delete_session(principal, session_id)
        return pb.DeleteSessionResponse()

    async def StreamChat(
        self, request: pb.StreamChatRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamChatResponse]:
        principal = current_principal()
        (session_id,) = parse_name(request.session, SESSION_PATTERN, "session")
        override = context_from_proto(request.learning_context) if request.HasField("learning_context") else None
        events = self._chat.stream_chat(
            principal,
            session_id,
            request.message,
            override,
            deadline_from(context.time_remaining(), margin=DEADLINE_MARGIN_SECONDS),
        )
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                if isinstance(event, AnswerDelta):
                    yield pb.StreamChatResponse(text=event.text)
                else:
                    yield final_to_proto(event)

    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListMessagesResponse:
        principal = current_principal()
        (session_id,) = parse_name(request.parent, SESSION_PATTERN, "parent")
        page = await self._chat.list_messages(principal, session_id, request.page_size, request.page_token)
        return pb.ListMessagesResponse(
            messages=[message_to_proto(item) for item in page.items], next_page_token=page.next_page_token
        )

    async def ClearMessages(
        self, request: pb.ClearMessagesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ClearMessagesResponse:
        principal = current_principal()
        (session_id,) = parse_name(request.session, SESSION_PATTERN, "session")
        return pb.ClearMessagesResponse(deleted_count=await self._chat.clear_messages(principal, session_id))

    async def AddTranscriptReference(
        self, request: pb.AddTranscriptReferenceRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.AddTranscriptReferenceResponse:
        principal = current_principal()
        (session_id,) = parse_name(request.session, SESSION_PATTERN, "session")
        reference = await self._chat.add_reference(
            principal,
            session_id,
            request.video_id,
            request.range.start_seconds,
            request.range.end_seconds,
            range_given=request.HasField("range"),
        )
        return pb.AddTranscriptReferenceResponse(reference=reference_to_proto(reference))

    async def RemoveTranscriptReference(
        self, request: pb.RemoveTranscriptReferenceRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.RemoveTranscriptReferenceResponse:
        principal = current_principal()
        (session_id,) = parse_name(request.session, SESSION_PATTERN, "session")
        await self._chat.remove_reference(principal, session_id, request.reference_id)
        return pb.RemoveTranscriptReferenceResponse()

    async def ListSegmentQuestions(
        self, request: pb.ListSegmentQuestionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListSegmentQuestionsResponse:
        window = (request.range.start_seconds, request.range.end_seconds) if request.HasField("range") else None
        found = await self._questions.list(
            current_principal(),
            request.video_id,
            window,
            SCOPE_FROM_PROTO.get(request.scope, QuestionScope.MINE),
            request.max_questions,
        )
        return pb.ListSegmentQuestionsResponse(questions=[question_to_proto(question) for question in found])
