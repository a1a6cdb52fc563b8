"""Token budgets per user, UTC day and UTC month: reserve before an upstream call, reconcile after.

    reservation = await runtime.budget.reserve(principal, estimated_tokens, operation="chat")
    try:
        completion = await call_the_model(...)
    except BaseException:
        await reservation.release()          # refund: the call failed or was cancelled
        raise
    await reservation.commit(model=..., prompt_tokens=..., completion_tokens=..., cost_usd=...)

(or `async with await budget.reserve(...) as reservation:`, which releases unless committed). A cached
answer costs nothing: release the reservation. `release()` after `commit()` does nothing, so it is safe
in a `finally`.

Accounting lives in PostgreSQL, so it is shared by every replica and keeps working when Redis is down.
A reservation locks the user's day and month rows of `token_budgets` (always in one order), checks
that committed + reserved + estimate fits both windows, and books the estimate as reserved. So
concurrent calls can never reserve more than the budget, whichever replica serves them. Usually that
is one statement (`BOOK` in `server.limits.ledger`, one round trip, on the path before every model call); the first
reservation of a user in a new window, or one that finds expired reservations to charge, runs as a
transaction that also takes a per-user advisory lock, creates the rows and charges the expired.
`commit()` swaps the estimate for the real usage and appends a `usage_records` row, `release()` refunds it,
each in one statement too (`SETTLE`); an estimate is an upper bound (prompt + max_tokens), and a call that
still exceeds it is recorded in full. A
reservation whose replica died mid-call is charged at its estimate once it expires
(`budget_reservation_ttl_seconds`): the call may have reached the upstream, and an unknown spend is
never refunded. If PostgreSQL is unreachable, `reserve()` fails closed with UNAVAILABLE. Call these
methods outside any open database transaction of your own: they run their own short transactions on
other connections.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy.exc import InterfaceError, OperationalError

from server.core import metrics
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import QuotaExceeded, Unavailable
from server.limits.ledger import (
    NOT_BOOKED,
    UNRECONCILED_MODEL,
    Charge,
    NotBooked,
    book,
    charge_expired,
    current_windows,
    keys_of,
    left_share,
    lock_windows,
    recorded_usage,
    refusal_for,
    serialize_user,
    settle,
    take_expired,
)
from server.limits.models import TokenReservation
from server.limits.policy import LimitPolicy
from server.limits.windows import DAY, MONTH, Clock, ModelUsage, Windows, WindowStatus, utc_now, windows_at

log = logging.getLogger("tutorstream.limits")

KNOWN_OPERATIONS = ("chat", "hint", "quiz", "reflection", "learning_path", "embedding")
_OPERATION = re.compile(r"^[a-z][a-z_]{0,39}$")
_FINISH_ATTEMPTS = 3
_DATABASE_DOWN = (OperationalError, InterfaceError, OSError)


class Reservation:
    """Tokens held for one upstream call; finish it exactly once with `commit` or `release`."""

    def __init__(
        self,
        budget: TokenBudget,
        *,
        reservation_id: str,
        user_id: str,
        operation: str,
        tokens: int,
        windows: Windows,
    ) -> None:
        self._budget = budget
        self.id = reservation_id
        self.user_id = user_id
        self.operation = operation
        self.tokens = tokens
        self.windows = windows
        # After this reservation, the share of the tighter window (day or month) still free: 1.0 untouched,
        # 0.0 spent. A caller may answer with a cheaper model when it runs low (BUDGET_FALLBACK_MODEL).
        self.left_share = 1.0
        self._state = "held"

    @property
    def finished(self) -> bool:
        return self._state != "held"

    async def commit(self, *, model: str, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        """Replace the estimate with the real usage and record it (per user, model and operation)."""
        if self._state != "held":
            raise RuntimeError(f"reservation {self.id} is already {self._state}")
        if prompt_tokens < 0 or completion_tokens < 0 or cost_usd < 0:
            raise ValueError("token counts and cost must not be negative")
        self._state = "committed"
        usage = Charge(model or UNRECONCILED_MODEL, prompt_tokens, completion_tokens, cost_usd)
        metrics.count_llm_usage(usage.model, self.operation, prompt_tokens, completion_tokens, cost_usd)
        # Shielded: a cancelled caller still gets its usage recorded.
        await asyncio.shield(self._budget._finish(self, usage))

    async def release(self) -> None:
        """Refund the whole reservation (the call failed, or the answer came from a cache)."""
        if self._state != "held":
            return
        self._state = "released"
        await asyncio.shield(self._budget._finish(self, None))

    async def __aenter__(self) -> Reservation:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


class TokenBudget:
    """Per-user token budgets by tier, accounted in PostgreSQL (shared by all replicas)."""

    def __init__(
        self,
        database: Database,
        policy: LimitPolicy,
        *,
        reservation_ttl_seconds: float = 600.0,
        clock: Clock = utc_now,
    ) -> None:
        self._db = database
        self._policy = policy
        self._ttl = timedelta(seconds=reservation_ttl_seconds)
        self._clock = clock

    def windows(self) -> Windows:
        return windows_at(self._clock())

    async def reserve(
        self, principal: Principal, estimated_tokens: int, *, operation: str, count_refusal: bool = True
    ) -> Reservation:
        """Hold `estimated_tokens` in the caller's day and month windows, or raise QuotaExceeded (counted as a
        rejection unless `count_refusal` is false: a caller that may still fit the call in does the counting)."""
        if estimated_tokens < 0:
            raise ValueError("estimated_tokens must not be negative")
        if not _OPERATION.match(operation):
            raise ValueError(f"operation must be a short snake_case word, got {operation!r}")
        limits = self._policy.for_tier(principal.tier.value)
        windows = self.windows()
        reservation = Reservation(
            self,
            reservation_id=uuid.uuid4().hex,
            user_id=principal.user_id,
            operation=operation,
            tokens=estimated_tokens,
            windows=windows,
        )
        try:
            refusal = await self._book(reservation, limits.daily_tokens, limits.monthly_tokens)
            if isinstance(refusal, NotBooked):
                refusal = await self._reserve_in_transaction(
                    reservation, principal, limits.daily_tokens, limits.monthly_tokens
                )
        except _DATABASE_DOWN as exc:
            log.warning("token budget unavailable: %s", type(exc).__name__)
            raise Unavailable(
                "token accounting is unavailable; try again shortly",
                retry_after_seconds=1.0,
                reason="BUDGET_UNAVAILABLE",
            ) from exc
        if refusal is not None:
            if count_refusal:
                metrics.count_limiter_rejection("token_budget")
            raise refusal
        return reservation

    async def _book(self, reservation: Reservation, daily: int, monthly: int) -> QuotaExceeded | NotBooked | None:
        """The one-statement reservation; `NOT_BOOKED` when the window rows are missing or an expired
        reservation is waiting to be charged (then nothing was changed)."""
        windows = reservation.windows
        async with self._db.autocommit() as connection:
            rows = await book(
                connection,
                reservation_id=reservation.id,
                user_id=reservation.user_id,
                operation=reservation.operation,
                tokens=reservation.tokens,
                windows=windows,
                expire_time=windows.now + self._ttl,
                daily_limit=daily,
                monthly_limit=monthly,
            )
        found, expired, fits = rows[0].found, rows[0].expired, rows[0].fits
        if not found or expired:
            return NOT_BOOKED
        totals = {row.period: (row.tokens_used, row.tokens_reserved) for row in rows}
        if fits:
            reservation.left_share = left_share(reservation.tokens, [(*totals[DAY], daily), (*totals[MONTH], monthly)])
            return None
        refusal = refusal_for(
            reservation.user_id,
            reservation.tokens,
            windows,
            [(DAY, *totals[DAY], daily), (MONTH, *totals[MONTH], monthly)],
        )
        assert refusal is not None, "the database and refusal disagree on whether the estimate fits"
        return refusal

    async def _reserve_in_transaction(
        self, reservation: Reservation, principal: Principal, daily: int, monthly: int
    ) -> QuotaExceeded | None:
        windows = reservation.windows
        estimated_tokens = reservation.tokens
        async with self._db.transaction() as session:
            await serialize_user(session, principal)
            expired = await take_expired(session, principal.user_id, windows.now)
            keys = {(DAY, windows.day_start), (MONTH, windows.month_start)}
            keys.update(key for item in expired for key in keys_of(item))
            rows = await lock_windows(session, principal.user_id, keys)
            for item in expired:
                charge_expired(session, rows, item, windows.now)
            day, month = rows[(DAY, windows.day_start)], rows[(MONTH, windows.month_start)]
            refusal = refusal_for(
                principal.user_id,
                estimated_tokens,
                windows,
                [
                    (DAY, day.tokens_used, day.tokens_reserved, daily),
                    (MONTH, month.tokens_used, month.tokens_reserved, monthly),
                ],
            )
            if refusal is None:
                reservation.left_share = left_share(
                    estimated_tokens,
                    [
                        (day.tokens_used, day.tokens_reserved, daily),
                        (month.tokens_used, month.tokens_reserved, monthly),
                    ],
                )
                day.tokens_reserved += estimated_tokens
                month.tokens_reserved += estimated_tokens
                session.add(
                    TokenReservation(
                        id=reservation.id,
                        user_id=principal.user_id,
                        operation=reservation.operation,
                        tokens=estimated_tokens,
                        day_start=windows.day_start,
                        month_start=windows.month_start,
                        create_time=windows.now,
                        expire_time=windows.now + self._ttl,
                    )
                )
        return refusal

    async def status(self, user_id: str, tier: str) -> list[WindowStatus]:
        """The day and month windows of `user_id` right now (tokens_used excludes reservations)."""
        limits = self._policy.for_tier(tier)
        windows = self.windows()
        async with self._db.reader() as session:
            rows = await current_windows(session, user_id, windows)
        statuses: list[WindowStatus] = []
        for period, start, limit in (
            (DAY, windows.day_start, limits.daily_tokens),
            (MONTH, windows.month_start, limits.monthly_tokens),
        ):
            row = rows.get(period)
            statuses.append(
                WindowStatus(
                    period=period,
                    period_start=start,
                    tokens_used=row.tokens_used if row else 0,
                    tokens_reserved=row.tokens_reserved if row else 0,
                    tokens_limit=limit,
                    cost_usd=float(row.cost_usd) if row else 0.0,
                    reset_time=windows.reset_of(period),
                )
            )
        return statuses

    async def usage_by_model(self, user_id: str, since: datetime) -> list[ModelUsage]:
        """Recorded usage of `user_id` since `since`, by model and operation, largest first."""
        async with self._db.reader() as session:
            return await recorded_usage(session, user_id, since)

    async def _finish(self, reservation: Reservation, usage: Charge | None) -> None:
        for attempt in range(1, _FINISH_ATTEMPTS + 1):
            try:
                await self._finish_once(reservation, usage)
                return
            except _DATABASE_DOWN as exc:
                if attempt == _FINISH_ATTEMPTS:
                    # The reservation row stays and is charged at its estimate when it expires.
                    log.error(
                        "could not %s token reservation %s: %s",
                        "commit" if usage else "release",
                        reservation.id,
                        type(exc).__name__,
                    )
                    return
                await asyncio.sleep(0.2 * attempt)

    async def _finish_once(self, reservation: Reservation, usage: Charge | None) -> None:
        async with self._db.autocommit() as connection:
            await settle(
                connection,
                reservation_id=reservation.id,
                user_id=reservation.user_id,
                operation=reservation.operation,
                reserved_tokens=reservation.tokens,
                windows=reservation.windows,
                usage=usage,
                now=self._clock(),
            )
