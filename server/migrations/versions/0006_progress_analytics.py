"""Progress and analytics: watch sessions, their player events, interventions and acknowledgements; insights.

Revision ID: 0006
Revises: 0005
Create Date: 2026-01-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.sql.elements.TextClause:
    return sa.text("now()")


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE")


def _session_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["watch_session_id"],
        ["watch_sessions.id"],
        name=f"fk_{table}_watch_session_id_watch_sessions",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "watch_sessions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("video_id", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text(), server_default="", nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("watched_seconds", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_position_seconds", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        _user_fk("watch_sessions"),
        sa.PrimaryKeyConstraint("id", name="pk_watch_sessions"),
    )
    op.create_index("ix_watch_sessions_user_id_create_time", "watch_sessions", ["user_id", "create_time"])
    op.create_index("ix_watch_sessions_video_id", "watch_sessions", ["video_id"])

    op.create_table(
        "video_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("watch_session_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("video_id", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), server_default="", nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("position_seconds", sa.Float(), nullable=False),
        sa.Column("seek_from_seconds", sa.Float(), nullable=True),
        sa.Column("seek_to_seconds", sa.Float(), nullable=True),
        sa.Column("playback_rate", sa.Float(), nullable=True),
        sa.Column("intervention_id", sa.Text(), server_default="", nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("receive_time", sa.DateTime(timezone=True), nullable=False),
        _session_fk("video_events"),
        _user_fk("video_events"),
        sa.PrimaryKeyConstraint("id", name="pk_video_events"),
    )
    op.create_index(
        "uq_video_events_watch_session_id_event_id",
        "video_events",
        ["watch_session_id", "event_id"],
        unique=True,
        postgresql_where=sa.text("event_id <> ''"),
    )
    op.create_index("ix_video_events_video_id_type", "video_events", ["video_id", "type"])
    op.create_index("ix_video_events_user_id", "video_events", ["user_id"])
    op.create_index("ix_video_events_watch_session_id_id", "video_events", ["watch_session_id", "id"])

    op.create_table(
        "interventions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("watch_session_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("video_id", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text(), server_default="", nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reason_text", sa.Text(), server_default="", nullable=False),
        sa.Column("position_seconds", sa.Float(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("content", sa.Text(), server_default="", nullable=False),
        sa.Column("citation", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("quiz", sa.Text(), server_default="", nullable=False),
        sa.Column("interaction_id", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("trigger_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        _session_fk("interventions"),
        _user_fk("interventions"),
        sa.PrimaryKeyConstraint("id", name="pk_interventions"),
    )
    op.create_index("ix_interventions_video_id_type", "interventions", ["video_id", "type"])
    op.create_index("ix_interventions_user_id_create_time", "interventions", ["user_id", "create_time"])
    op.create_index("ix_interventions_watch_session_id", "interventions", ["watch_session_id"])

    op.create_table(
        "intervention_acks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("intervention_id", sa.Text(), nullable=False),
        sa.Column("watch_session_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["intervention_id"],
            ["interventions.id"],
            name="fk_intervention_acks_intervention_id_interventions",
            ondelete="CASCADE",
        ),
        _session_fk("intervention_acks"),
        _user_fk("intervention_acks"),
        sa.PrimaryKeyConstraint("id", name="pk_intervention_acks"),
        sa.UniqueConstraint("intervention_id", "action", name="uq_intervention_acks_intervention_id"),
    )
    op.create_index("ix_intervention_acks_user_id", "intervention_acks", ["user_id"])

    op.create_table(
        "insights",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text(), server_default="", nullable=False),
        sa.Column("concept", sa.Text(), server_default="", nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "citations",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("score", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), server_default="", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("dismiss_time", sa.DateTime(timezone=True), nullable=True),
        _user_fk("insights"),
        sa.PrimaryKeyConstraint("id", name="pk_insights"),
    )
    op.create_index("ix_insights_user_id_create_time_id", "insights", ["user_id", "create_time", "id"])
    op.create_index("ix_insights_user_id_fingerprint", "insights", ["user_id", "fingerprint"])


def downgrade() -> None:
    op.drop_table("insights")
    op.drop_table("intervention_acks")
    op.drop_table("interventions")
    op.drop_table("video_events")
    op.drop_table("watch_sessions")
