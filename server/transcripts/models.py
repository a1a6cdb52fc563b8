"""Tables of the transcripts domain (the schema itself is migration 0003)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import HALFVEC, VECTOR
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, deferred, mapped_column

from server.core.models import Base

CODE_PUNCTUATION = ".()[]{}<>/=;,:"


class Transcript(Base):
    """The searchable transcript of one video: metadata plus its cues as `[{start, end, text, speaker}]`."""

    __tablename__ = "transcripts"
    __table_args__ = (Index("ix_transcripts_course_id_video_id", "course_id", "video_id"),)

    video_id: Mapped[str] = mapped_column(primary_key=True)
    course_id: Mapped[str]
    title: Mapped[str] = mapped_column(server_default="")
    language: Mapped[str] = mapped_column(server_default="")
    source: Mapped[str] = mapped_column(server_default="upload")
    format: Mapped[str]
    timing_estimated: Mapped[bool] = mapped_column(server_default=false())
    duration_seconds: Mapped[float] = mapped_column(server_default="0")
    cue_count: Mapped[int] = mapped_column(server_default="0")
    chunk_count: Mapped[int] = mapped_column(server_default="0")
    content_hash: Mapped[str]
    embedding_model: Mapped[str]
    cues: Mapped[list[dict[str, Any]]] = deferred(mapped_column(JSONB, server_default="[]", nullable=False))
    ingest_job_id: Mapped[str | None]
    # Which server.nlp analysis its sentences and phrases have ("" before any: the backfill job runs it).
    analysis_version: Mapped[str] = mapped_column(server_default="")
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now())


class TranscriptChunk(Base):
    """A time-aligned piece of a transcript with its vector and full-text columns."""

    __tablename__ = "transcript_chunks"
    __table_args__ = (
        Index("ix_transcript_chunks_video_id_start_seconds", "video_id", "start_seconds"),
        Index("ix_transcript_chunks_course_id", "course_id"),
        Index("ix_transcript_chunks_embedding_model", "embedding_model"),
        Index("ix_transcript_chunks_search_english", "search_english", postgresql_using="gin"),
        Index("ix_transcript_chunks_search_simple", "search_simple", postgresql_using="gin"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("transcripts.video_id", ondelete="CASCADE"))
    course_id: Mapped[str]
    chunk_index: Mapped[int]
    start_seconds: Mapped[float]
    end_seconds: Mapped[float]
    text: Mapped[str]
    token_count: Mapped[int] = mapped_column(server_default="0")
    embedding_model: Mapped[str]
    # Its per-model HNSW indexes are partial expression indexes managed by the migration and at startup
    # (repository/search.py: ensure_vector_index), so they are not declared here.
    embedding: Mapped[Any] = deferred(mapped_column(VECTOR(), nullable=False))
    search_english: Mapped[Any] = deferred(
        mapped_column(TSVECTOR, Computed("to_tsvector('english'::regconfig, text)", persisted=True))
    )
    search_simple: Mapped[Any] = deferred(
        mapped_column(
            TSVECTOR,
            Computed(
                "to_tsvector('simple'::regconfig, text) || to_tsvector('simple'::regconfig, "
                f"translate(text, '{CODE_PUNCTUATION}', '{' ' * len(CODE_PUNCTUATION)}'))",
                persisted=True,
            ),
        )
    )


class TranscriptSentence(Base):
    """One sentence of a transcript as server.nlp analysed it, with its own time range and vector."""

    __tablename__ = "transcript_sentences"
    __table_args__ = (
        Index("ix_transcript_sentences_video_id_start_seconds", "video_id", "start_seconds"),
        Index("ix_transcript_sentences_embedding_model", "embedding_model"),
        Index("ix_transcript_sentences_course_id", "course_id"),
    )

    video_id: Mapped[str] = mapped_column(ForeignKey("transcripts.video_id", ondelete="CASCADE"), primary_key=True)
    sentence_index: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[str]
    start_seconds: Mapped[float]
    end_seconds: Mapped[float]
    text: Mapped[str]
    lemmas: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    kinds: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    mentions: Mapped[list[Any]] = mapped_column(JSONB, server_default="[]")
    frames: Mapped[list[Any]] = mapped_column(JSONB, server_default="[]")
    complete: Mapped[bool] = mapped_column(server_default=false())
    embedding_model: Mapped[str]
    embedding: Mapped[Any] = deferred(mapped_column(HALFVEC(), nullable=False))


class TranscriptPhrase(Base):
    """A key phrase of a video: how it is written, what kind it is, how often and where it is said."""

    __tablename__ = "transcript_phrases"
    __table_args__ = (
        Index("ix_transcript_phrases_course_id", "course_id"),
        Index("ix_transcript_phrases_embedding_model", "embedding_model"),
    )

    video_id: Mapped[str] = mapped_column(ForeignKey("transcripts.video_id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    course_id: Mapped[str]
    surface: Mapped[str]
    kind: Mapped[str]
    mentions: Mapped[int]
    sentences: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{}")
    embedding_model: Mapped[str]
    embedding: Mapped[Any] = deferred(mapped_column(HALFVEC(), nullable=False))


class IngestJob(Base):
    """One IngestTranscript call and its progress. `content` is kept until the job ends."""

    __tablename__ = "ingest_jobs"
    __table_args__ = (
        UniqueConstraint("requested_by", "request_id", name="uq_ingest_jobs_requested_by"),
        Index("ix_ingest_jobs_video_id", "video_id"),
        Index(
            "ix_ingest_jobs_active",
            "update_time",
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    request_id: Mapped[str]
    requested_by: Mapped[str]
    request_hash: Mapped[str]
    video_id: Mapped[str]
    course_id: Mapped[str]
    title: Mapped[str] = mapped_column(server_default="")
    language: Mapped[str] = mapped_column(server_default="")
    format: Mapped[str]
    duration_seconds: Mapped[float | None]
    content: Mapped[str | None] = deferred(mapped_column())
    content_hash: Mapped[str]
    state: Mapped[str] = mapped_column(server_default="queued")
    stage: Mapped[str] = mapped_column(server_default="unspecified")
    completed_units: Mapped[int] = mapped_column(BigInteger, server_default="0")
    total_units: Mapped[int] = mapped_column(BigInteger, server_default="0")
    error_message: Mapped[str] = mapped_column(server_default="")
    # What the ingest repaired or left out (at most MAX_JOB_WARNINGS lines).
    warnings: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    unchanged: Mapped[bool] = mapped_column(server_default=false())
    attempts: Mapped[int] = mapped_column(server_default="0")
    queue_job_id: Mapped[int | None] = mapped_column(BigInteger)
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now())


class CourseInstructor(Base):
    """An instructor who may change a course's transcripts and read its analytics (migration 0011)."""

    __tablename__ = "course_instructors"
    __table_args__ = (
        Index("ix_course_instructors_user_id", "user_id"),
        CheckConstraint("role IN ('owner', 'instructor')", name="ck_course_instructors_role"),
    )

    course_id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(primary_key=True)
    # `owner` (may grant and revoke) or `instructor`.
    role: Mapped[str]
    granted_by: Mapped[str]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
