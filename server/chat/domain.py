"""Values the chat service hands to its transport: sessions, messages, references and stream events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from server.chat.models import ChatSession, StoredMessage, TranscriptReference
from server.core.values import Citation, Usage

USER = "user"
ASSISTANT = "assistant"

# Finish reasons as stored and streamed (the transport maps them to the proto enum).
STOP = "stop"
LENGTH = "length"
ERROR = "error"
CONTENT_FILTER = "content_filter"
CANCELLED = "cancelled"
DEADLINE = "deadline"


@dataclass(frozen=True, slots=True)
class LearningContext:
    course_id: str = ""
    video_id: str = ""
    position_seconds: float = 0.0
    selected_range: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    reference_id: str
    video_id: str
    start_seconds: float
    end_seconds: float
    text: str
    create_time: datetime | None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    title: str
    learning_context: LearningContext
    references: list[ReferenceInfo]
    message_count: int
    create_time: datetime | None
    update_time: datetime | None


@dataclass(frozen=True, slots=True)
class MessageInfo:
    session_id: str
    message_id: str
    role: str
    content: str
    citations: list[Citation]
    model: str
    usage: Usage
    incomplete: bool
    cached: bool
    fallback: bool
    latency_ms: int
    time_to_first_token_ms: int
    finish_reason: str
    create_time: datetime | None


@dataclass(frozen=True, slots=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True, slots=True)
class AnswerFinal:
    finish_reason: str
    citations: list[Citation]
    usage: Usage
    model: str
    cached: bool
    fallback: bool
    user_message_id: str
    assistant_message_id: str
    interaction_id: str
    grounded: bool = True


ChatEvent: TypeAlias = AnswerDelta | AnswerFinal


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any] = field(default_factory=list)
    next_page_token: str = ""


def context_of(row: ChatSession) -> LearningContext:
    selected = None
    if row.selected_start_seconds is not None and row.selected_end_seconds is not None:
        selected = (row.selected_start_seconds, row.selected_end_seconds)
    return LearningContext(
        course_id=row.course_id,
        video_id=row.video_id,
        position_seconds=row.position_seconds,
        selected_range=selected,
    )


def reference_info(row: TranscriptReference) -> ReferenceInfo:
    return ReferenceInfo(
        reference_id=row.id,
        video_id=row.video_id,
        start_seconds=row.start_seconds,
        end_seconds=row.end_seconds,
        text=row.text,
        create_time=row.create_time,
    )


def reference_from_json(value: dict[str, Any]) -> ReferenceInfo:
    """A reference as the chat repository reads it with a session's other state (a JSON object)."""
    return ReferenceInfo(
        reference_id=value["id"],
        video_id=value["video_id"],
        start_seconds=float(value["start_seconds"]),
        end_seconds=float(value["end_seconds"]),
        text=value["text"],
        create_time=datetime.fromisoformat(value["create_time"]),
    )


def session_info(row: ChatSession, references: list[TranscriptReference], message_count: int) -> SessionInfo:
    return SessionInfo(
        session_id=row.id,
        title=row.title,
        learning_context=context_of(row),
        references=[reference_info(reference) for reference in references],
        message_count=message_count,
        create_time=row.create_time,
        update_time=row.update_time,
    )


def citations_to_json(citations: list[Citation]) -> list[dict[str, Any]]:
    return [asdict(citation) for citation in citations]


def citations_from_json(stored: list[dict[str, Any]]) -> list[Citation]:
    return [
        Citation(
            video_id=str(item.get("video_id", "")),
            start_seconds=float(item.get("start_seconds", 0.0)),
            end_seconds=float(item.get("end_seconds", 0.0)),
            chunk_id=str(item.get("chunk_id", "")),
            quoted_text=str(item.get("quoted_text", "")),
        )
        for item in stored or []
    ]


def message_info(row: StoredMessage) -> MessageInfo:
    return MessageInfo(
        session_id=row.session_id,
        message_id=row.id,
        role=row.role,
        content=row.content,
        citations=citations_from_json(row.citations),
        model=row.model,
        usage=Usage(row.prompt_tokens, row.completion_tokens, row.cost_usd),
        incomplete=row.incomplete,
        cached=row.cached,
        fallback=row.fallback,
        latency_ms=row.latency_ms,
        time_to_first_token_ms=row.time_to_first_token_ms,
        finish_reason=row.finish_reason,
        create_time=row.create_time,
    )
