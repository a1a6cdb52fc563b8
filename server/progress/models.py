"""Tables of the progress domain: watch sessions, their player events and the interventions they produced.

Times of events are kept twice: `event_time` is the effective time the detectors used (the client's clock
when it sent one, never earlier than the event before), `receive_time` is when the server got it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base


class WatchSession(Base):
    """One viewing of one video by one student (`watch_session_id` is chosen by the client). It belongs to
    the user who first used the id: for anyone else it does not exist."""

    __tablename__ = "watch_sessions"
    __table_args__ = (
        Index("ix_watch_sessions_user_id_create_time", "user_id", "create_time"),
        Index("ix_watch_sessions_video_id", "video_id"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    video_id: Mapped[str]
    course_id: Mapped[str] = mapped_column(server_default="")
    duration_seconds: Mapped[float | None]
    watched_seconds: Mapped[float] = mapped_column(server_default=text("0"))
    last_position_seconds: Mapped[float] = mapped_column(server_default=text("0"))
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now())


class VideoEventRow(Base):
    __tablename__ = "video_events"
    __table_args__ = (
        Index(
            "uq_video_events_watch_session_id_event_id",
            "watch_session_id",
            "event_id",
            unique=True,
            postgresql_where=text("event_id <> ''"),
        ),
        Index("ix_video_events_video_id_type", "video_id", "type"),
        Index("ix_video_events_user_id", "user_id"),
        Index("ix_video_events_watch_session_id_id", "watch_session_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    watch_session_id: Mapped[str] = mapped_column(ForeignKey("watch_sessions.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    video_id: Mapped[str]
    event_id: Mapped[str] = mapped_column(server_default="")
    type: Mapped[str]
    position_seconds: Mapped[float]
    seek_from_seconds: Mapped[float | None]
    seek_to_seconds: Mapped[float | None]
    playback_rate: Mapped[float | None]
    intervention_id: Mapped[str] = mapped_column(server_default="")
    event_time: Mapped[datetime]
    client_time: Mapped[datetime | None]
    receive_time: Mapped[datetime]


class InterventionRow(Base):
    """An intervention the engine decided on. `status`: `delivered` (sent to the student's streams) or
    `stale` (its content was ready only after the student had moved on, so it was dropped)."""

    __tablename__ = "interventions"
    __table_args__ = (
        Index("ix_interventions_video_id_type", "video_id", "type"),
        Index("ix_interventions_user_id_create_time", "user_id", "create_time"),
        Index("ix_interventions_watch_session_id", "watch_session_id"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    watch_session_id: Mapped[str] = mapped_column(ForeignKey("watch_sessions.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    video_id: Mapped[str]
    course_id: Mapped[str] = mapped_column(server_default="")
    type: Mapped[str]
    reason: Mapped[str]
    reason_text: Mapped[str] = mapped_column(server_default="")
    position_seconds: Mapped[float]
    start_seconds: Mapped[float]
    end_seconds: Mapped[float]
    content: Mapped[str] = mapped_column(server_default="")
    citation: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    quiz: Mapped[str] = mapped_column(server_default="")
    interaction_id: Mapped[str] = mapped_column(server_default="")
    status: Mapped[str]
    trigger_time: Mapped[datetime]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())


class InterventionAcknowledgement(Base):
    """The student's answer to an intervention (from an INTERVENTION_ACCEPTED/DISMISSED event)."""

    __tablename__ = "intervention_acks"
    __table_args__ = (
        UniqueConstraint("intervention_id", "action", name="uq_intervention_acks_intervention_id"),
        Index("ix_intervention_acks_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    intervention_id: Mapped[str] = mapped_column(ForeignKey("interventions.id", ondelete="CASCADE"))
    watch_session_id: Mapped[str] = mapped_column(ForeignKey("watch_sessions.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    action: Mapped[str]
    event_time: Mapped[datetime]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
