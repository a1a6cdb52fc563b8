"""Tables of the chat domain: sessions, their messages and their transcript references."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, func
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base


class ChatSession(Base):
    """A conversation owned by one user, with the learning context it started in."""

    __tablename__ = "chat_sessions"
    __table_args__ = (Index("ix_chat_sessions_user_id_create_time", "user_id", "create_time", "id"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(server_default="")
    course_id: Mapped[str] = mapped_column(server_default="")
    video_id: Mapped[str] = mapped_column(server_default="")
    position_seconds: Mapped[float] = mapped_column(server_default=sql_text("0"))
    selected_start_seconds: Mapped[float | None]
    selected_end_seconds: Mapped[float | None]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now())


class StoredMessage(Base):
    """One message. `seq` orders a session's messages by insertion (create_time can tie)."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        Index("ix_chat_messages_session_id_seq", "session_id", "seq"),
        # Which answers cited a video (ListSegmentQuestions): `citations @> '[{"video_id": ...}]'`.
        Index(
            "ix_chat_messages_citations",
            "citations",
            postgresql_using="gin",
            postgresql_ops={"citations": "jsonb_path_ops"},
        ),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    role: Mapped[str]
    content: Mapped[str]
    model: Mapped[str] = mapped_column(server_default="")
    prompt_tokens: Mapped[int] = mapped_column(server_default=sql_text("0"))
    completion_tokens: Mapped[int] = mapped_column(server_default=sql_text("0"))
    cost_usd: Mapped[float] = mapped_column(server_default=sql_text("0"))
    incomplete: Mapped[bool] = mapped_column(server_default=sql_text("false"))
    cached: Mapped[bool] = mapped_column(server_default=sql_text("false"))
    fallback: Mapped[bool] = mapped_column(server_default=sql_text("false"))
    latency_ms: Mapped[int] = mapped_column(server_default=sql_text("0"))
    time_to_first_token_ms: Mapped[int] = mapped_column(server_default=sql_text("0"))
    finish_reason: Mapped[str] = mapped_column(server_default="")
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=sql_text("'[]'::jsonb"))
    # False for a model's answer that neither cited the excerpts nor said it answers from general knowledge.
    grounded: Mapped[bool] = mapped_column(server_default=sql_text("true"))
    interaction_id: Mapped[str] = mapped_column(server_default="")
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())


class TranscriptReference(Base):
    """A selected video range whose transcript text joins the session's context until removed."""

    __tablename__ = "chat_references"
    __table_args__ = (Index("ix_chat_references_session_id_create_time", "session_id", "create_time"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    video_id: Mapped[str]
    start_seconds: Mapped[float]
    end_seconds: Mapped[float]
    text: Mapped[str] = mapped_column(server_default="")
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
