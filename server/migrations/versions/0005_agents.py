"""Agents: shared generated quizzes (cached with an expiry) and their items, students' quizzes, answer
attempts (idempotent per user and attempt id) and concept mastery.

Revision ID: 0005
Revises: 0004
Create Date: 2026-01-19
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY_LIST = sa.text("'[]'::jsonb")


def _now() -> sa.sql.elements.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "generated_quizzes",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("cache_key", sa.Text(), nullable=False),
        sa.Column("video_id", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text(), server_default="", nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("chunk_ids", postgresql.JSONB(astext_type=sa.Text()), server_default=EMPTY_LIST, nullable=False),
        sa.Column("difficulty", sa.Text(), nullable=False),
        sa.Column("question_count", sa.Integer(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("prompt_version", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cost_usd", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("confidence", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("difficulty IN ('easy', 'medium', 'hard')", name="ck_generated_quizzes_difficulty"),
        sa.CheckConstraint("question_count BETWEEN 1 AND 10", name="ck_generated_quizzes_question_count"),
        sa.PrimaryKeyConstraint("id", name="pk_generated_quizzes"),
    )
    op.create_index("ix_generated_quizzes_cache_key_expire_time", "generated_quizzes", ["cache_key", "expire_time"])
    op.create_index("ix_generated_quizzes_video_id_start_seconds", "generated_quizzes", ["video_id", "start_seconds"])
    op.create_index("ix_generated_quizzes_expire_time", "generated_quizzes", ["expire_time"])

    op.create_table(
        "quiz_items",
        sa.Column("generated_quiz_id", sa.Text(), nullable=False),
        sa.Column("question_id", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("stem", sa.Text(), nullable=False),
        sa.Column("options", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("correct_index", sa.Integer(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("concepts", postgresql.JSONB(astext_type=sa.Text()), server_default=EMPTY_LIST, nullable=False),
        sa.Column("chunk_id", sa.Text(), nullable=False),
        sa.Column("video_id", sa.Text(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("quoted_text", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint("correct_index BETWEEN 0 AND 3", name="ck_quiz_items_correct_index"),
        sa.ForeignKeyConstraint(
            ["generated_quiz_id"],
            ["generated_quizzes.id"],
            name="fk_quiz_items_generated_quiz_id_generated_quizzes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("generated_quiz_id", "question_id", name="pk_quiz_items"),
    )

    op.create_table(
        "quizzes",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("generated_quiz_id", sa.Text(), nullable=False),
        sa.Column("trigger", sa.Text(), server_default="", nullable=False),
        sa.Column("cached", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("interaction_id", sa.Text(), server_default="", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_quizzes_user_id_users", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["generated_quiz_id"],
            ["generated_quizzes.id"],
            name="fk_quizzes_generated_quiz_id_generated_quizzes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_quizzes"),
    )
    op.create_index("ix_quizzes_user_id_create_time", "quizzes", ["user_id", "create_time"])

    op.create_table(
        "quiz_attempts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("attempt_id", sa.Text(), nullable=False),
        sa.Column("quiz_id", sa.Text(), nullable=False),
        sa.Column("generated_quiz_id", sa.Text(), nullable=False),
        sa.Column("question_id", sa.Text(), nullable=False),
        sa.Column("selected_index", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("mastery", postgresql.JSONB(astext_type=sa.Text()), server_default=EMPTY_LIST, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_quiz_attempts_user_id_users", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["quiz_id"], ["quizzes.id"], name="fk_quiz_attempts_quiz_id_quizzes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_quiz_attempts"),
        sa.UniqueConstraint("user_id", "attempt_id", name="uq_quiz_attempts_user_id_attempt_id"),
    )
    op.create_index(
        "ix_quiz_attempts_user_id_generated_quiz_id",
        "quiz_attempts",
        ["user_id", "generated_quiz_id", "question_id"],
    )
    op.create_index("ix_quiz_attempts_quiz_id", "quiz_attempts", ["quiz_id"])

    op.create_table(
        "concept_mastery",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("concept", sa.Text(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("correct", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("probability >= 0 AND probability <= 1", name="ck_concept_mastery_probability"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_concept_mastery_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "concept", name="pk_concept_mastery"),
    )


def downgrade() -> None:
    op.drop_table("concept_mastery")
    op.drop_index("ix_quiz_attempts_quiz_id", table_name="quiz_attempts")
    op.drop_index("ix_quiz_attempts_user_id_generated_quiz_id", table_name="quiz_attempts")
    op.drop_table("quiz_attempts")
    op.drop_index("ix_quizzes_user_id_create_time", table_name="quizzes")
    op.drop_table("quizzes")
    op.drop_table("quiz_items")
    op.drop_index("ix_generated_quizzes_expire_time", table_name="generated_quizzes")
    op.drop_index("ix_generated_quizzes_video_id_start_seconds", table_name="generated_quizzes")
    op.drop_index("ix_generated_quizzes_cache_key_expire_time", table_name="generated_quizzes")
    op.drop_table("generated_quizzes")
