"""Experiments on the tutor: arms on a lever of a course, and each student's arm from their first exposure.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("course_id", sa.Text(), primary_key=True),
        sa.Column("experiment_id", sa.Text(), primary_key=True),
        sa.Column("display_name", sa.Text(), server_default="", nullable=False),
        sa.Column("lever", sa.Text(), nullable=False),
        sa.Column("arms", postgresql.JSONB(), nullable=False),
        sa.Column("video_ids", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("state", sa.Text(), server_default="draft", nullable=False),
        sa.Column("salt", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_time", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('draft', 'running', 'stopped')", name="ck_experiments_state"),
    )
    op.create_index(
        "uq_experiments_running_lever",
        "experiments",
        ["course_id", "lever"],
        unique=True,
        postgresql_where=sa.text("state = 'running'"),
    )
    op.create_table(
        "experiment_exposures",
        sa.Column("course_id", sa.Text(), primary_key=True),
        sa.Column("experiment_id", sa.Text(), primary_key=True),
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("arm", sa.Text(), nullable=False),
        sa.Column("exposure_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id", "experiment_id"],
            ["experiments.course_id", "experiments.experiment_id"],
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_experiment_exposures_user_id", "experiment_exposures", ["user_id"])


def downgrade() -> None:
    op.drop_table("experiment_exposures")
    op.drop_table("experiments")
