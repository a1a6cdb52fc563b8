"""ChatService transport: proto in, names parsed, call the chat service, proto out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from grpc import aio
from tutorstream.v1 import chat_service_pb2 as pb
from tutorstream.v1 import chat_service_pb2_grpc as pb_grpc
from tutorstream.v1 import common_pb2

from server.chat.domain import (
    ASSISTANT,
    CANCELLED,
    CONTENT_FILTER,
    DEADLINE,
    ERROR,
    LENGTH,
    STOP,
    AnswerDelta,
    AnswerFinal,
    LearningContext,
    MessageInfo,
    ReferenceInfo,
    SessionInfo,
)
from server.chat.questions import QuestionScope, SegmentQuestions
from server.chat.service import ChatService
from server.core.deadlines import deadline_from
from server.core.names import parse_name
from server.core.protos import citation_to_proto, timestamp, usage_to_proto
from server.core.request_context import current_principal

SESSION_PATTERN = "sessions/{session}"
# Time kept back from the client's deadline: the partial answer of a streamed turn is stored in one short write.
DEADLINE_MARGIN_SECONDS = 0.1

_FINISH_TO_PROTO = {
    STOP: pb.FINISH_REASON_STOP,
    LENGTH: pb.FINISH_REASON_LENGTH,
    ERROR: pb.FINISH_REASON_ERROR,
    CONTENT_FILTER: pb.FINISH_REASON_CONTENT_FILTER,
    CANCELLED: pb.FINISH_REASON_CANCELLED,
    DEADLINE: pb.FINISH_REASON_DEADLINE,
}


def context_from_proto(message: common_pb2.LearningContext) -> LearningContext:
    selected = None
    if message.HasField("selected_range"):
        selected = (message.selected_range.start_seconds, message.selected_range.end_seconds)
    return LearningContext(
        course_id=message.course_id,
        video_id=message.video_id,
        position_seconds=message.position_seconds,
        selected_range=selected,
    )


def context_to_proto(context: LearningContext) -> common_pb2.LearningContext:
    message = common_pb2.LearningContext(
        course_id=context.course_id, video_id=context.video_id, position_seconds=context.position_seconds
    )
    if context.selected_range is not None:
        start, end = context.selected_range
        message.selected_range.CopyFrom(common_pb2.TimeRange(start_seconds=start, end_seconds=end))
    return message


def reference_to_proto(reference: ReferenceInfo) -> pb.TranscriptReference:
    message = pb.TranscriptReference(
        reference_id=reference.reference_id,
        video_id=reference.video_id,
        range=common_pb2.TimeRange(start_seconds=reference.start_seconds, end_seconds=reference.end_seconds),
        text=reference.text,
    )
    stamp = timestamp(reference.create_time)
    if stamp is not None:
        message.create_time.CopyFrom(stamp)
    return message


def session_to_proto(session: SessionInfo) -> pb.Session:
    message = pb.Session(
        name=f"sessions/{session.session_id}",
        session_id=session.session_id,
        title=session.title,
        references=[reference_to_proto(reference) for reference in session.references],
        message_count=session.message_count,
    )
    if session.learning_context != LearningContext():
        message.learning_context.CopyFrom(context_to_proto(session.learning_context))
    for field, value in (("create_time", session.create_time), ("update_time", session.update_time)):
        stamp = timestamp(value)
        if stamp is not None:
            getattr(message, field).CopyFrom(stamp)
    return message


def message_to_proto(message: MessageInfo) -> pb.Message:
    proto = pb.Message(
        name=f"sessions/{message.session_id}/messages/{message.message_id}",
        message_id=message.message_id,
        role=pb.MESSAGE_ROLE_ASSISTANT if message.role == ASSISTANT else pb.MESSAGE_ROLE_USER,
        content=message.content,
        citations=[citation_to_proto(citation) for citation in message.citations],
        model=message.model,
        incomplete=message.incomplete,
        cached=message.cached,
        fallback=message.fallback,
        latency_ms=message.latency_ms,
        time_to_first_token_ms=message.time_to_first_token_ms,
        finish_reason=_FINISH_TO_PROTO.get(message.finish_reason, pb.FINISH_REASON_UNSPECIFIED),
    )
    if message.role == ASSISTANT:
        proto.usage.CopyFrom(usage_to_proto(message.usage))
    stamp = timestamp(message.create_time)
    if stamp is not None:
        proto.create_time.CopyFrom(stamp)
    return proto


def final_to_proto(final: AnswerFinal) -> pb.StreamChatResponse:
    return pb.StreamChatResponse(
        finish_reason=_FINISH_TO_PROTO.get(final.finish_reason, pb.FINISH_REASON_UNSPECIFIED),
        citations=[citation_to_proto(citation) for citation in final.citations],
        usage=usage_to_proto(final.usage),
        model=final.model,
        cached=final.cached,
        fallback=final.fallback,
        user_message_id=final.user_message_id,
        assistant_message_id=final.assistant_message_id,
        interaction_id=final.interaction_id,
        grounded=final.grounded,
    )


SCOPE_FROM_PROTO = {
    pb.QUESTION_SCOPE_UNSPECIFIED: QuestionScope.MINE,
    pb.QUESTION_SCOPE_MINE: QuestionScope.MINE,
    pb.QUESTION_SCOPE_COURSE: QuestionScope.COURSE,
}


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
        return pb.ListSegmentQuestionsResponse(
            questions=[
                pb.SegmentQuestion(
                    text=question.text,
                    count=question.count,
                    students=question.students,
                    last_asked_time=timestamp(question.last_asked_time),
                    messages=list(question.messages),
                    start_seconds=question.start_seconds,
                )
                for question in found
            ]
        )
