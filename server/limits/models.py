"""Tables of the limits domain: token budget windows, in-flight reservations and the usage ledger.

`usage_records` is the durable accounting (one row per reconciled upstream call); `token_budgets`
keeps per-window running totals next to it so a reservation checks and books in one row lock.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Numeric, func, text
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base

COST = Numeric(18, 9)


class TokenBudgetWindow(Base):
    """Running totals of one user in one accounting window (a UTC day or a UTC month)."""

    __tablename__ = "token_budgets"
    __table_args__ = (
        CheckConstraint("period IN ('day', 'month')", name="period"),
        CheckConstraint("tokens_reserved >= 0", name="tokens_reserved_non_negative"),
    )

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[str] = mapped_column(primary_key=True)
    period_start: Mapped[date] = mapped_column(primary_key=True)
    tokens_used: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    tokens_reserved: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    cost_usd: Mapped[Decimal] = mapped_column(COST, server_default=text("0"))
    update_time: Mapped[datetime] = mapped_column(server_default=func.now())


class TokenReservation(Base):
    """Tokens held for a call in flight. Deleted on commit or release; an expired row (its replica
    died mid-call) is charged at its estimate by the next reservation of the same user."""

    __tablename__ = "token_reservations"
    __table_args__ = (Index("ix_token_reservations_user_id_expire_time", "user_id", "expire_time"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    operation: Mapped[str]
    tokens: Mapped[int] = mapped_column(BigInteger)
    day_start: Mapped[date]
    month_start: Mapped[date]
    create_time: Mapped[datetime]
    expire_time: Mapped[datetime]


class UsageRecord(Base):
    """One reconciled upstream call: who, which model, which operation, tokens and cost."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_user_id_create_time", "user_id", "create_time"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    operation: Mapped[str]
    model: Mapped[str]
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    total_tokens: Mapped[int] = mapped_column(BigInteger)
    reserved_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(COST)
    create_time: Mapped[datetime]
