"""Transcript chunks stay in their heap row instead of TOAST.

A chunk row holds its 384-d vector (1.5 kB), two tsvectors and its text: about 3.5 kB, over the 2 kB at which
PostgreSQL starts moving values out of line. Out of line, every chunk a search reads costs a TOAST index
descent and a TOAST page per moved value, and a one-video search reads all of the video's chunks (vector
ranking and BM25 both need every chunk in scope): about nine page reads per chunk instead of half of one.
With the row kept whole up to a full page, a video's chunks are a few consecutive heap pages.

Rows written before this revision keep their TOAST pointers until they are rewritten (a re-ingest, or
VACUUM FULL transcript_chunks); new and re-ingested chunks are stored inline.

Revision ID: 0007
Revises: 0006
Create Date: 2026-01-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The largest value PostgreSQL accepts (8 kB pages): only rows that would not fit a page are toasted.
INLINE_ROW_BYTES = 8160


def upgrade() -> None:
    op.execute(f"ALTER TABLE transcript_chunks SET (toast_tuple_target = {INLINE_ROW_BYTES})")


def downgrade() -> None:
    op.execute("ALTER TABLE transcript_chunks RESET (toast_tuple_target)")
