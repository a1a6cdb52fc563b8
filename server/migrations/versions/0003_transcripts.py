"""Transcripts: transcripts with their cues, searchable chunks, ingest jobs, and procrastinate's job queue.

Chunk vectors live in one `vector` column without a fixed dimension, next to the id of the model that made
them. Each model gets a partial HNSW index on the column cast to its dimension, so vectors of different
models never meet in one index or one search. The two models the server knows out of the box are indexed
here; any other configured model gets its index when a server or worker first starts with it
(server.transcripts.repository.search.ensure_vector_index).

The job queue's tables and functions are procrastinate's own schema, read from the installed package.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (index name, model id, dimension): must match server.transcripts.repository.search.vector_index_name().
BUILTIN_VECTOR_INDEXES = (
    ("ix_transcript_chunks_hnsw_local_all_minilm_l6_v2", "local:all-MiniLM-L6-v2", 384),
    ("ix_transcript_chunks_hnsw_openai_text_embedding_3_small", "openai:text-embedding-3-small", 1536),
)
# Splits code tokens (`React.useState`, `arr.map(x)`) into their parts for the `simple` full-text column.
CODE_PUNCTUATION = ".()[]{}<>/=;,:"


def _create_procrastinate_schema() -> None:
    # Straight to psycopg without parameters: the schema is many statements, with `%` and `:` in them that
    # must not be read as placeholders.
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None
    with driver_connection.cursor() as cursor:
        cursor.execute(SchemaManager.get_schema())


def _drop_procrastinate_schema() -> None:
    """Everything procrastinate's schema created, found by name in the catalog (tables take their
    triggers and indexes with them)."""
    bind = op.get_bind()
    prefix = {"prefix": "procrastinate\\_%"}
    tables = bind.execute(
        sa.text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE :prefix"),
        prefix,
    ).scalars()
    for table in list(tables):
        bind.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    functions = bind.execute(
        sa.text(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND p.proname LIKE :prefix"
        ),
        prefix,
    ).scalars()
    for signature in list(functions):
        bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {signature} CASCADE")
    types = bind.execute(
        sa.text(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = current_schema() AND t.typname LIKE :prefix AND t.typtype IN ('e', 'c')"
        ),
        prefix,
    ).scalars()
    for type_name in list(types):
        bind.exec_driver_sql(f'DROP TYPE IF EXISTS "{type_name}" CASCADE')


def upgrade() -> None:
    op.create_table(
        "transcripts",
        sa.Column("video_id", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("language", sa.Text(), server_default="", nullable=False),
        sa.Column("source", sa.Text(), server_default="upload", nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("timing_estimated", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), server_default="0", nullable=False),
        sa.Column("cue_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("chunk_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=False),
        sa.Column("cues", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("ingest_job_id", sa.Text(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("video_id", name="pk_transcripts"),
    )
    op.create_index("ix_transcripts_course_id_video_id", "transcripts", ["course_id", "video_id"])

    op.create_table(
        "transcript_chunks",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("video_id", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=False),
        sa.Column("embedding", VECTOR(), nullable=False),
        sa.Column(
            "search_english",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english'::regconfig, text)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "search_simple",
            postgresql.TSVECTOR(),
            sa.Computed(
                "to_tsvector('simple'::regconfig, text) || to_tsvector('simple'::regconfig, "
                f"translate(text, '{CODE_PUNCTUATION}', '{' ' * len(CODE_PUNCTUATION)}'))",
                persisted=True,
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["video_id"],
            ["transcripts.video_id"],
            name="fk_transcript_chunks_video_id_transcripts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_transcript_chunks"),
    )
    op.create_index("ix_transcript_chunks_video_id_start_seconds", "transcript_chunks", ["video_id", "start_seconds"])
    op.create_index("ix_transcript_chunks_course_id", "transcript_chunks", ["course_id"])
    op.create_index("ix_transcript_chunks_embedding_model", "transcript_chunks", ["embedding_model"])
    op.create_index(
        "ix_transcript_chunks_search_english",
        "transcript_chunks",
        ["search_english"],
        postgresql_using="gin",
    )
    op.create_index(
        "ix_transcript_chunks_search_simple", "transcript_chunks", ["search_simple"], postgresql_using="gin"
    )
    for name, model, dimension in BUILTIN_VECTOR_INDEXES:
        op.execute(
            f"CREATE INDEX {name} ON transcript_chunks USING hnsw "
            f"((embedding::vector({dimension})) vector_cosine_ops) WHERE embedding_model = '{model}'"
        )

    op.create_table(
        "ingest_jobs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("video_id", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), server_default="", nullable=False),
        sa.Column("language", sa.Text(), server_default="", nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), server_default="queued", nullable=False),
        sa.Column("stage", sa.Text(), server_default="unspecified", nullable=False),
        sa.Column("completed_units", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_units", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error_message", sa.Text(), server_default="", nullable=False),
        sa.Column("unchanged", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("queue_job_id", sa.BigInteger(), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ingest_jobs"),
        sa.UniqueConstraint("requested_by", "request_id", name="uq_ingest_jobs_requested_by"),
    )
    op.create_index("ix_ingest_jobs_video_id", "ingest_jobs", ["video_id"])
    op.create_index(
        "ix_ingest_jobs_active",
        "ingest_jobs",
        ["update_time"],
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )

    _create_procrastinate_schema()


def downgrade() -> None:
    _drop_procrastinate_schema()
    op.drop_table("ingest_jobs")
    op.drop_table("transcript_chunks")
    op.drop_table("transcripts")
