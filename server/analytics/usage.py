"""GetUsage: token budgets, rate limits and spend by model for one user."""

from __future__ import annotations

from dataclasses import dataclass

from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import NotFound
from server.core.models import User
from server.limits.budget import TokenBudget
from server.limits.gate import LimitsGate, RateStatus
from server.limits.windows import ModelUsage, WindowStatus


@dataclass(frozen=True)
class UsageReport:
    user_id: str
    tier: str
    budgets: list[WindowStatus]
    rate_limits: list[RateStatus]
    by_model: list[ModelUsage]  # the current UTC month


class UsageService:
    def __init__(self, database: Database, budget: TokenBudget, limits: LimitsGate) -> None:
        self._db = database
        self._budget = budget
        self._limits = limits

    async def usage(self, principal: Principal, user_id: str) -> UsageReport:
        """Usage of `user_id` (already authorized: the caller, or any user for a service). Another user's
        tier is the one their last token carried; a user never seen is NOT_FOUND."""
        if user_id == principal.user_id:
            tier = principal.tier.value
        else:
            async with self._db.session() as session:
                user = await session.get(User, user_id)
            if user is None:
                raise NotFound("user not found")
            tier = user.tier
        windows = self._budget.windows()
        return UsageReport(
            user_id=user_id,
            tier=tier,
            budgets=await self._budget.status(user_id, tier),
            rate_limits=await self._limits.rate_status(user_id, tier),
            by_model=await self._budget.usage_by_model(user_id, windows.month_begin),
        )
