"""The accounting windows of token budgets (UTC day, UTC month) and what is reported about them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

DAY, MONTH = "day", "month"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Windows:
    """The accounting windows that contain `now`."""

    now: datetime
    day_start: date
    month_start: date

    @property
    def day_reset(self) -> datetime:
        return datetime.combine(self.day_start + timedelta(days=1), time(), tzinfo=UTC)

    @property
    def month_reset(self) -> datetime:
        start = self.month_start
        following = date(start.year + 1, 1, 1) if start.month == 12 else date(start.year, start.month + 1, 1)
        return datetime.combine(following, time(), tzinfo=UTC)

    @property
    def month_begin(self) -> datetime:
        return datetime.combine(self.month_start, time(), tzinfo=UTC)

    def reset_of(self, period: str) -> datetime:
        return self.day_reset if period == DAY else self.month_reset


def windows_at(now: datetime) -> Windows:
    utc = now.astimezone(UTC)
    return Windows(now=utc, day_start=utc.date(), month_start=utc.date().replace(day=1))


@dataclass(frozen=True)
class WindowStatus:
    """One window of one user's budget. `tokens_reserved` are held by calls in flight."""

    period: str
    period_start: date
    tokens_used: int
    tokens_reserved: int
    tokens_limit: int
    cost_usd: float
    reset_time: datetime

    @property
    def tokens_remaining(self) -> int:
        return max(0, self.tokens_limit - self.tokens_used - self.tokens_reserved)


@dataclass(frozen=True)
class ModelUsage:
    model: str
    operation: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    calls: int
