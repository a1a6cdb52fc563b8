"""Moderation: flagged interactions for the course's instructors, and the audit trail of who read them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flagged_interactions",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("course_id", sa.Text(), server_default="", nullable=False),
        sa.Column("video_id", sa.Text(), server_default="", nullable=False),
        sa.Column("surface", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("detector", sa.Text(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index(
        "ix_flagged_interactions_course_id_create_time", "flagged_interactions", ["course_id", "create_time"]
    )
    op.create_index("ix_flagged_interactions_user_id", "flagged_interactions", ["user_id"])
    op.create_table(
        "audit_reads",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("reader", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_audit_reads_reader_create_time", "audit_reads", ["reader", "create_time"])


def downgrade() -> None:
    op.drop_table("audit_reads")
    op.drop_table("flagged_interactions")
