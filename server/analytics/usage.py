"""GetUsage: token budgets, rate limits and spend by model for one user."""

from __future__ import annotations

from server.analytics import repository as repo
from server.analytics.domain import UsageReport
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import NotFound
from server.limits.budget import TokenBudget
from server.limits.gate import LimitsGate


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
                user = await repo.get_user(session, user_id)
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
