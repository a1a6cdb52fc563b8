"""Chat values to and from ChatService messages."""

from __future__ import annotations

from tutorstream.v1 import chat_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.chat.domain import (
    ASSISTANT,
    CANCELLED,
    CONTENT_FILTER,
    DEADLINE,
    ERROR,
    LENGTH,
    STOP,
    AnswerFinal,
    LearningContext,
    MessageInfo,
    ReferenceInfo,
    SessionInfo,
)
from server.chat.questions import QuestionScope, SegmentQuestionView
from server.core.protos import citation_to_proto, timestamp, usage_to_proto

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


def question_to_proto(question: SegmentQuestionView) -> pb.SegmentQuestion:
    return pb.SegmentQuestion(
        text=question.text,
        count=question.count,
        students=question.students,
        last_asked_time=timestamp(question.last_asked_time),
        messages=list(question.messages),
        start_seconds=question.start_seconds,
    )
