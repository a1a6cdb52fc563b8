"""Limits: token budget windows, in-flight token reservations and the usage ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COST = sa.Numeric(18, 9)


def upgrade() -> None:
    op.create_table(
        "token_budgets",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("tokens_used", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("tokens_reserved", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("cost_usd", COST, server_default=sa.text("0"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("period IN ('day', 'month')", name="ck_token_budgets_period"),
        sa.CheckConstraint("tokens_reserved >= 0", name="ck_token_budgets_tokens_reserved_non_negative"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_token_budgets_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "period", "period_start", name="pk_token_budgets"),
    )

    op.create_table(
        "token_reservations",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("day_start", sa.Date(), nullable=False),
        sa.Column("month_start", sa.Date(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_token_reservations_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_token_reservations"),
    )
    op.create_index("ix_token_reservations_user_id_expire_time", "token_reservations", ["user_id", "expire_time"])

    op.create_table(
        "usage_records",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reserved_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", COST, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_usage_records_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_usage_records"),
    )
    op.create_index("ix_usage_records_user_id_create_time", "usage_records", ["user_id", "create_time"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_user_id_create_time", table_name="usage_records")
    op.drop_table("usage_records")
    op.drop_index("ix_token_reservations_user_id_expire_time", table_name="token_reservations")
    op.drop_table("token_reservations")
    op.drop_table("token_budgets")
