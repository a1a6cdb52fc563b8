"""Course ownership: the instructors of each course. Courses ingested before this revision are owned by the
instructor who requested their first ingest (none for courses only services ingested, such as the demo).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "course_instructors",
        sa.Column("course_id", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("role IN ('owner', 'instructor')", name="ck_course_instructors_role"),
    )
    op.create_index("ix_course_instructors_user_id", "course_instructors", ["user_id"])
    op.execute(
        """
        INSERT INTO course_instructors (course_id, user_id, role, granted_by)
        SELECT DISTINCT ON (j.course_id) j.course_id, j.requested_by, 'owner', j.requested_by
        FROM ingest_jobs j JOIN users u ON u.id = j.requested_by
        WHERE u.role = 'instructor'
        ORDER BY j.course_id, j.create_time, j.id
        """
    )


def downgrade() -> None:
    op.drop_table("course_instructors")
