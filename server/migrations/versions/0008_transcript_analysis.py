"""What the tutor knows about each transcript sentence and key phrase, computed at ingest (server.nlp).

`transcript_sentences`: every sentence of a video with its own time range, the keys of its content words, the
key phrases it mentions, what kind of statement it is, the questions its parse lets us ask, and its vector
(`halfvec`: half the bytes of `vector`). The vectors have no index of their own: a turn compares the question
with the sentences of one video and one course (a few hundred to a few thousand), an exact scan.

`transcript_phrases`: every key phrase of a video with how often and in which sentences it is said, and its
vector (quiz distractors are chosen by similarity to the answer).

`transcripts.analysis_version` says which analysis a transcript has; rows written before this revision have
none ('') and are analysed by a backfill job when a server or worker starts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import HALFVEC
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("transcripts", sa.Column("analysis_version", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "transcript_sentences",
        sa.Column("video_id", sa.Text(), sa.ForeignKey("transcripts.video_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sentence_index", sa.Integer(), primary_key=True),
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lemmas", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("kinds", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("mentions", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("frames", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("complete", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=False),
        sa.Column("embedding", HALFVEC(), nullable=False),
    )
    op.create_index(
        "ix_transcript_sentences_video_id_start_seconds", "transcript_sentences", ["video_id", "start_seconds"]
    )
    op.create_index("ix_transcript_sentences_embedding_model", "transcript_sentences", ["embedding_model"])
    op.create_index("ix_transcript_sentences_course_id", "transcript_sentences", ["course_id"])
    op.create_table(
        "transcript_phrases",
        sa.Column("video_id", sa.Text(), sa.ForeignKey("transcripts.video_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("surface", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("mentions", sa.Integer(), nullable=False),
        sa.Column("sentences", postgresql.ARRAY(sa.Integer()), server_default="{}", nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=False),
        sa.Column("embedding", HALFVEC(), nullable=False),
    )
    op.create_index("ix_transcript_phrases_course_id", "transcript_phrases", ["course_id"])
    op.create_index("ix_transcript_phrases_embedding_model", "transcript_phrases", ["embedding_model"])


def downgrade() -> None:
    op.drop_table("transcript_phrases")
    op.drop_table("transcript_sentences")
    op.drop_column("transcripts", "analysis_version")
