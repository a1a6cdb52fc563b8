"""Tables of the analytics domain (AI interactions live in interactions.py, usage in server/limits)."""

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
