"""AI interactions: one row per answer the tutor produced (chat turn, hint, quiz, ...), for analytics.

The row carries what the answer cost and how it was produced (model, tokens, latency, cached) and later the
student's rating. Never message text: attributes hold ids and enum-like values only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base

AGENT_TYPES = ("chat", "hint", "quiz", "reflection", "learning_path", "intervention", "client")


class AIInteraction(Base):
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


async def record_interaction(
    session: AsyncSession,
    *,
    user_id: str,
    agent_type: str,
    trigger: str,
    course_id: str = "",
    video_id: str = "",
    position_seconds: float = 0.0,
    model: str = "",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost_usd: float = 0.0,
    latency_ms: int = 0,
    cached: bool = False,
    confidence: float | None = None,
    attributes: dict[str, str] | None = None,
) -> str:
    """Insert one interaction in the caller's transaction (flushed, not committed); returns its id.

    The user row must exist (`ensure_user`) before the flush.
    """
    if agent_type not in AGENT_TYPES:
        raise ValueError(f"unknown agent_type {agent_type!r}; expected one of {', '.join(AGENT_TYPES)}")
    interaction_id = uuid.uuid4().hex
    session.add(
        AIInteraction(
            id=interaction_id,
            user_id=user_id,
            agent_type=agent_type,
            trigger=trigger,
            course_id=course_id,
            video_id=video_id,
            position_seconds=position_seconds,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            cached=cached,
            confidence=confidence,
            attributes=dict(attributes or {}),
        )
    )
    await session.flush()
    return interaction_id
