"""Which answers cited a video: a GIN index on chat message citations (ListSegmentQuestions).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_chat_messages_citations",
        "chat_messages",
        ["citations"],
        postgresql_using="gin",
        postgresql_ops={"citations": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_chat_messages_citations", table_name="chat_messages")
