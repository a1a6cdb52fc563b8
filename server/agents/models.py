"""Tables of the agents domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, UniqueConstraint, false, func, text, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base


class Preference(Base):
    """A user's tutor preferences. Values are short lowercase words; the service maps proto enums."""

    __tablename__ = "preferences"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    personality: Mapped[str] = mapped_column(server_default="friendly")
    response_length: Mapped[str] = mapped_column(server_default="medium")
    auto_hints_enabled: Mapped[bool] = mapped_column(server_default=true())
    quiz_frequency: Mapped[str] = mapped_column(server_default="medium")
    reflection_prompts_enabled: Mapped[bool] = mapped_column(server_default=true())
    no_spoilers: Mapped[bool] = mapped_column(server_default=false())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class GeneratedQuiz(Base):
    """A generated quiz, shared by every student who asks for the same thing: cached by `cache_key` (video,
    range or chunk ids, difficulty, question count, model, prompt version and the transcript text it was
    built from) until `expire_time`. Students never see these ids; they get their own `Quiz` rows."""

    __tablename__ = "generated_quizzes"
    __table_args__ = (
        CheckConstraint("difficulty IN ('easy', 'medium', 'hard')", name="difficulty"),
        CheckConstraint("question_count BETWEEN 1 AND 10", name="question_count"),
        Index("ix_generated_quizzes_cache_key_expire_time", "cache_key", "expire_time"),
        Index("ix_generated_quizzes_video_id_start_seconds", "video_id", "start_seconds"),
        Index("ix_generated_quizzes_expire_time", "expire_time"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    cache_key: Mapped[str]
    video_id: Mapped[str]
    course_id: Mapped[str] = mapped_column(server_default="")
    start_seconds: Mapped[float]
    end_seconds: Mapped[float]
    chunk_ids: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    difficulty: Mapped[str]
    question_count: Mapped[int]
    model: Mapped[str]
    prompt_version: Mapped[str]
    prompt_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    completion_tokens: Mapped[int] = mapped_column(server_default=text("0"))
    cost_usd: Mapped[float] = mapped_column(server_default=text("0"))
    confidence: Mapped[float] = mapped_column(server_default=text("0"))
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    expire_time: Mapped[datetime]


class QuizItem(Base):
    """One multiple-choice question of a generated quiz, with its answer key and the chunk that supports it."""

    __tablename__ = "quiz_items"
    __table_args__ = (CheckConstraint("correct_index BETWEEN 0 AND 3", name="correct_index"),)

    generated_quiz_id: Mapped[str] = mapped_column(
        ForeignKey("generated_quizzes.id", ondelete="CASCADE"), primary_key=True
    )
    question_id: Mapped[str] = mapped_column(primary_key=True)
    position: Mapped[int]
    stem: Mapped[str]
    options: Mapped[list[str]] = mapped_column(JSONB)
    correct_index: Mapped[int]
    explanation: Mapped[str]
    concepts: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    chunk_id: Mapped[str]
    video_id: Mapped[str]
    start_seconds: Mapped[float]
    end_seconds: Mapped[float]
    quoted_text: Mapped[str] = mapped_column(server_default="")


class Quiz(Base):
    """A student's quiz (`quizzes/{id}`): their handle on shared generated content. Another student's id
    answers like a missing quiz."""

    __tablename__ = "quizzes"
    __table_args__ = (Index("ix_quizzes_user_id_create_time", "user_id", "create_time"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    generated_quiz_id: Mapped[str] = mapped_column(ForeignKey("generated_quizzes.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(server_default="")
    cached: Mapped[bool] = mapped_column(server_default=false())
    interaction_id: Mapped[str] = mapped_column(server_default="")
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())


class QuizAttempt(Base):
    """One submitted answer. `attempt_id` is the client's idempotency key (unique per user); `counted` says
    whether it updated mastery (only a student's first answer to a question is evidence: after it the
    correct option has been revealed). `mastery` is the snapshot returned, replayed on a resubmit."""

    __tablename__ = "quiz_attempts"
    __table_args__ = (
        UniqueConstraint("user_id", "attempt_id", name="uq_quiz_attempts_user_id_attempt_id"),
        Index("ix_quiz_attempts_user_id_generated_quiz_id", "user_id", "generated_quiz_id", "question_id"),
        Index("ix_quiz_attempts_quiz_id", "quiz_id"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    attempt_id: Mapped[str]
    quiz_id: Mapped[str] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"))
    generated_quiz_id: Mapped[str]
    question_id: Mapped[str]
    selected_index: Mapped[int]
    correct: Mapped[bool]
    counted: Mapped[bool]
    mastery: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())


class ConceptMastery(Base):
    """A student's estimated probability of knowing a concept (Bayesian knowledge tracing, see mastery.py)."""

    __tablename__ = "concept_mastery"
    __table_args__ = (CheckConstraint("probability >= 0 AND probability <= 1", name="probability"),)

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    concept: Mapped[str] = mapped_column(primary_key=True)
    probability: Mapped[float]
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    correct: Mapped[int] = mapped_column(server_default=text("0"))
    update_time: Mapped[datetime] = mapped_column(server_default=func.now())
