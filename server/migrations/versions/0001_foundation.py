"""Foundation: the pgvector extension, users and their tutor preferences.

Revision ID: 0001
Revises:
Create Date: 2026-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")

    op.create_table(
        "users",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), server_default="student", nullable=False),
        sa.Column("tier", sa.Text(), server_default="free", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )

    op.create_table(
        "preferences",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("personality", sa.Text(), server_default="friendly", nullable=False),
        sa.Column("response_length", sa.Text(), server_default="medium", nullable=False),
        sa.Column("auto_hints_enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("quiz_frequency", sa.Text(), server_default="medium", nullable=False),
        sa.Column("reflection_prompts_enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_preferences_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name="pk_preferences"),
    )


def downgrade() -> None:
    op.drop_table("preferences")
    op.drop_table("users")
    # The vector extension stays: on an external server it may predate us (created by a DBA),
    # and dropping it needs privileges the application role usually lacks.
