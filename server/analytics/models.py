"""Tables of the analytics domain (usage records live in server/limits)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base


class Insight(Base):
    """Something learned about a student's progress, computed by the insights job. `fingerprint` identifies
    the finding (kind, course, concept) so a recomputation replaces it and a dismissed one stays dismissed."""

    __tablename__ = "insights"
    __table_args__ = (
        Index("ix_insights_user_id_create_time_id", "user_id", "create_time", "id"),
        Index("ix_insights_user_id_fingerprint", "user_id", "fingerprint"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str]
    course_id: Mapped[str] = mapped_column(server_default="")
    concept: Mapped[str] = mapped_column(server_default="")
    title: Mapped[str]
    detail: Mapped[str] = mapped_column(server_default="")
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    score: Mapped[float] = mapped_column(server_default=text("0"))
    fingerprint: Mapped[str]
    model: Mapped[str] = mapped_column(server_default="")
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    dismiss_time: Mapped[datetime | None]


class AIInteraction(Base):
    """One answer the tutor produced (chat turn, hint, quiz, ...): what it cost and how it was produced (model,
    tokens, latency, cached) and later the student's rating. Never message text: attributes hold ids and
    enum-like values only."""

    __tablename__ = "ai_interactions"
    __table_args__ = (
        Index("ix_ai_interactions_user_id_create_time", "user_id", "create_time"),
        Index("ix_ai_interactions_agent_type_create_time", "agent_type", "create_time"),
        Index("ix_ai_interactions_create_time", "create_time"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    agent_type: Mapped[str]
    trigger: Mapped[str] = mapped_column(server_default="")
    course_id: Mapped[str] = mapped_column(server_default="")
    video_id: Mapped[str] = mapped_column(server_default="")
    position_seconds: Mapped[float] = mapped_column(server_default=text("0"))
    model: Mapped[str] = mapped_column(server_default="")
    prompt_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    completion_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    cost_usd: Mapped[float] = mapped_column(server_default=text("0"))
    latency_ms: Mapped[int] = mapped_column(server_default=text("0"))
    cached: Mapped[bool] = mapped_column(server_default=text("false"))
    confidence: Mapped[float | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    rating: Mapped[int | None]
    rating_reason: Mapped[str] = mapped_column(server_default="")
    rate_time: Mapped[datetime | None]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())


class FlaggedInteraction(Base):
    """One flagged message (migration 0014). `excerpt` is the message with personal data redacted."""

    __tablename__ = "flagged_interactions"
    __table_args__ = (
        Index("ix_flagged_interactions_course_id_create_time", "course_id", "create_time"),
        Index("ix_flagged_interactions_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str]
    course_id: Mapped[str] = mapped_column(server_default="")
    video_id: Mapped[str] = mapped_column(server_default="")
    # Where it was written (`chat`) and the message, `sessions/{session}/messages/{message}`.
    surface: Mapped[str]
    message: Mapped[str] = mapped_column(server_default="")
    category: Mapped[str]
    score: Mapped[float]
    detector: Mapped[str]
    excerpt: Mapped[str]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())


class AuditRead(Base):
    """Someone read students' words: who, which listing, how many items (migration 0014)."""

    __tablename__ = "audit_reads"
    __table_args__ = (Index("ix_audit_reads_reader_create_time", "reader", "create_time"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    reader: Mapped[str]
    resource: Mapped[str]
    items: Mapped[int]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
