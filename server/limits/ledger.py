"""The SQL side of token budgets: booking and settling a reservation in one statement each, the per-user lock
and window rows of the transaction path, charging expired reservations, the usage records, the reads behind
GetUsage, and the refusal when an estimate does not fit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, delete, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from server.core.auth import Principal
from server.core.errors import QuotaExceeded, QuotaViolation
from server.core.models import User
from server.limits.models import TokenBudgetWindow, TokenReservation, UsageRecord
from server.limits.windows import DAY, MONTH, ModelUsage, Windows

log = logging.getLogger("tutorstream.limits")

# The model of a usage row charged at its estimate (its call's replica died before reporting usage).
UNRECONCILED_MODEL = "unreconciled"
# When only calls in flight block a reservation, they finish (or are refunded) within seconds.
IN_FLIGHT_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Charge:
    """What one call cost: its model's reported (or estimated) tokens and their price."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class NotBooked:
    """`_book` changed nothing: the reservation needs the transaction."""


NOT_BOOKED = NotBooked()

# One reservation in one statement. `locked` takes the row locks in the order `lock_windows` uses (so
# lockers never deadlock) and, under READ COMMITTED, sees the latest committed totals; `booked`
# updates the same rows only when both windows fit, and `held` records the reservation only when
# `booked` did. The statement commits as a whole. `expired` sends the caller to the transaction,
# which charges them; missing rows (a new window) do too, as `found` is then false.
BOOK = text(
    """
    WITH locked AS (
        SELECT period, tokens_used, tokens_reserved
        FROM token_budgets
        WHERE user_id = :user_id
          AND (period, period_start) IN (('day', :day_start), ('month', :month_start))
        ORDER BY period_start, period
        FOR UPDATE
    ), verdict AS (
        SELECT count(*) = 2 AS found,
               EXISTS (
                   SELECT 1 FROM token_reservations WHERE user_id = :user_id AND expire_time < :now
               ) AS expired,
               coalesce(
                   bool_and(
                       tokens_used + tokens_reserved + :tokens
                       <= CASE period WHEN 'day' THEN :daily_limit ELSE :monthly_limit END
                   ),
                   false
               ) AS fits
        FROM locked
    ), booked AS (
        UPDATE token_budgets AS b
        SET tokens_reserved = b.tokens_reserved + :tokens
        FROM verdict
        WHERE verdict.found AND NOT verdict.expired AND verdict.fits
          AND b.user_id = :user_id
          AND (b.period, b.period_start) IN (('day', :day_start), ('month', :month_start))
        RETURNING b.period
    ), held AS (
        INSERT INTO token_reservations
            (id, user_id, operation, tokens, day_start, month_start, create_time, expire_time)
        SELECT :id, :user_id, :operation, :tokens, :day_start, :month_start, :now, :expire_time
        WHERE EXISTS (SELECT 1 FROM booked)
    )
    SELECT verdict.found, verdict.expired, verdict.fits, locked.period, locked.tokens_used, locked.tokens_reserved
    FROM verdict LEFT JOIN locked ON true
    """
)

# Finishing a reservation in one statement: `dropped` deletes it (empty when it expired and was charged
# already), `locked` takes the window rows in `lock_windows`'s order, `settled` refunds what it held and adds
# the real usage (when charged; a release of an already charged reservation changes nothing), and the insert
# appends the usage row when both windows were there to settle (a deleted user's rows are gone).
SETTLE = text(
    """
    WITH dropped AS (
        DELETE FROM token_reservations WHERE id = :id RETURNING tokens
    ), locked AS (
        SELECT period, period_start
        FROM token_budgets
        WHERE user_id = :user_id
          AND (period, period_start) IN (('day', :day_start), ('month', :month_start))
        ORDER BY period_start, period
        FOR UPDATE
    ), settled AS (
        UPDATE token_budgets AS b
        SET tokens_reserved = greatest(0, b.tokens_reserved - coalesce((SELECT tokens FROM dropped), 0)),
            tokens_used = b.tokens_used + :total_tokens,
            cost_usd = b.cost_usd + :cost_usd,
            update_time = :now
        WHERE (SELECT count(*) FROM locked) = 2
          AND (:charged OR EXISTS (SELECT 1 FROM dropped))
          AND b.user_id = :user_id
          AND (b.period, b.period_start) IN (('day', :day_start), ('month', :month_start))
        RETURNING b.period
    )
    INSERT INTO usage_records
        (id, user_id, operation, model, prompt_tokens, completion_tokens, total_tokens, reserved_tokens,
         cost_usd, create_time)
    SELECT :usage_id, :user_id, :operation, :model, :prompt_tokens, :completion_tokens, :total_tokens,
           :reserved_tokens, :cost_usd, :now
    WHERE :charged AND (SELECT count(*) FROM settled) = 2
    """
)


async def book(
    connection: AsyncConnection,
    *,
    reservation_id: str,
    user_id: str,
    operation: str,
    tokens: int,
    windows: Windows,
    expire_time: datetime,
    daily_limit: int,
    monthly_limit: int,
) -> Sequence[Row[Any]]:
    """Run `BOOK`: one row per window found (at least one, with the verdict)."""
    params = {
        "id": reservation_id,
        "user_id": user_id,
        "operation": operation,
        "tokens": tokens,
        "day_start": windows.day_start,
        "month_start": windows.month_start,
        "daily_limit": daily_limit,
        "monthly_limit": monthly_limit,
        "now": windows.now,
        "expire_time": expire_time,
    }
    return (await connection.execute(BOOK, params)).all()


async def settle(
    connection: AsyncConnection,
    *,
    reservation_id: str,
    user_id: str,
    operation: str,
    reserved_tokens: int,
    windows: Windows,
    usage: Charge | None,
    now: datetime,
) -> None:
    """Run `SETTLE`: finish a reservation, charging `usage` (None refunds it all)."""
    params = {
        "id": reservation_id,
        "user_id": user_id,
        "operation": operation,
        "day_start": windows.day_start,
        "month_start": windows.month_start,
        "charged": usage is not None,
        "usage_id": uuid.uuid4().hex,
        "model": usage.model if usage else "",
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens if usage else 0,
        "reserved_tokens": reserved_tokens,
        "cost_usd": Decimal(repr(usage.cost_usd)) if usage else Decimal(0),
        "now": now,
    }
    await connection.execute(SETTLE, params)


def left_share(tokens: int, windows: list[tuple[int, int, int]]) -> float:
    """Of (tokens used, tokens reserved, limit) per window, the smallest share left once `tokens` are held."""
    return min(
        max(0.0, (limit - used - reserved - tokens) / limit) if limit > 0 else 1.0 for used, reserved, limit in windows
    )


WindowKey = tuple[str, date]
# First key of the two-key advisory locks that queue one user's reservations.
_RESERVE_LOCK_SPACE = 0x7462  # "tb"


async def serialize_user(session: AsyncSession, principal: Principal) -> None:
    """Queue this user's reservations (until commit) and make sure the user row exists for the foreign
    keys. Neither touches a lock other transactions hold: an existing `users` row is left alone."""
    await session.execute(select(func.pg_advisory_xact_lock(_RESERVE_LOCK_SPACE, func.hashtext(principal.user_id))))
    await session.execute(
        insert(User)
        .values(id=principal.user_id, role=principal.role.value, tier=principal.tier.value)
        .on_conflict_do_nothing(index_elements=[User.id])
    )


def keys_of(reservation: TokenReservation) -> tuple[WindowKey, WindowKey]:
    return (DAY, reservation.day_start), (MONTH, reservation.month_start)


async def lock_windows(
    session: AsyncSession, user_id: str, keys: Iterable[WindowKey]
) -> dict[WindowKey, TokenBudgetWindow]:
    """Lock the user's window rows, creating the missing ones, always in one order so lockers never deadlock."""
    ordered = sorted(set(keys), key=lambda key: (key[1], key[0]))
    await session.execute(
        insert(TokenBudgetWindow)
        .values([{"user_id": user_id, "period": period, "period_start": start} for period, start in ordered])
        .on_conflict_do_nothing()
    )
    found = (
        await session.execute(
            select(TokenBudgetWindow)
            .where(
                TokenBudgetWindow.user_id == user_id,
                tuple_(TokenBudgetWindow.period, TokenBudgetWindow.period_start).in_(ordered),
            )
            .order_by(TokenBudgetWindow.period_start, TokenBudgetWindow.period)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalars()
    return {(row.period, row.period_start): row for row in found}


def charge_expired(
    session: AsyncSession,
    rows: dict[WindowKey, TokenBudgetWindow],
    reservation: TokenReservation,
    now: datetime,
) -> None:
    for key in keys_of(reservation):
        row = rows[key]
        row.tokens_reserved = max(0, row.tokens_reserved - reservation.tokens)
        row.tokens_used += reservation.tokens
        row.update_time = now
    add_usage(
        session,
        user_id=reservation.user_id,
        operation=reservation.operation,
        model=UNRECONCILED_MODEL,
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=reservation.tokens,
        reserved_tokens=reservation.tokens,
        cost_usd=Decimal(0),
        now=now,
    )
    log.warning("charged expired token reservation %s at its estimate", reservation.id)


def add_usage(
    session: AsyncSession,
    *,
    user_id: str,
    operation: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    total_tokens: int,
    reserved_tokens: int,
    cost_usd: Decimal,
    now: datetime,
) -> None:
    """One `usage_records` row: what a call cost, against what its reservation held."""
    session.add(
        UsageRecord(
            id=uuid.uuid4().hex,
            user_id=user_id,
            operation=operation,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=total_tokens,
            reserved_tokens=reserved_tokens,
            cost_usd=cost_usd,
            create_time=now,
        )
    )


async def take_expired(session: AsyncSession, user_id: str, now: datetime) -> list[TokenReservation]:
    """Delete the user's reservations that expired before `now` and return them, to be charged."""
    result = await session.execute(
        delete(TokenReservation)
        .where(TokenReservation.user_id == user_id, TokenReservation.expire_time < now)
        .returning(TokenReservation)
    )
    return list(result.scalars())


async def current_windows(session: AsyncSession, user_id: str, windows: Windows) -> dict[str, TokenBudgetWindow]:
    """The user's rows of the day and month of `windows`, by period (a window nothing was booked in has none)."""
    found = (
        await session.execute(
            select(TokenBudgetWindow).where(
                TokenBudgetWindow.user_id == user_id,
                tuple_(TokenBudgetWindow.period, TokenBudgetWindow.period_start).in_(
                    [(DAY, windows.day_start), (MONTH, windows.month_start)]
                ),
            )
        )
    ).scalars()
    return {row.period: row for row in found}


async def recorded_usage(session: AsyncSession, user_id: str, since: datetime) -> list[ModelUsage]:
    """Recorded usage of `user_id` since `since`, by model and operation, largest first."""
    total = func.sum(UsageRecord.total_tokens)
    statement = (
        select(
            UsageRecord.model,
            UsageRecord.operation,
            func.sum(UsageRecord.prompt_tokens),
            func.sum(UsageRecord.completion_tokens),
            total,
            func.sum(UsageRecord.cost_usd),
            func.count(),
        )
        .where(UsageRecord.user_id == user_id, UsageRecord.create_time >= since)
        .group_by(UsageRecord.model, UsageRecord.operation)
        .order_by(total.desc(), UsageRecord.model, UsageRecord.operation)
    )
    result = await session.execute(statement)
    return [
        ModelUsage(
            model=model,
            operation=operation,
            prompt_tokens=int(prompt),
            completion_tokens=int(completion),
            total_tokens=int(tokens),
            cost_usd=float(cost),
            calls=int(calls),
        )
        for model, operation, prompt, completion, tokens, cost, calls in result.all()
    ]


_PERIOD_WORDS = {DAY: "daily", MONTH: "monthly"}


def refusal_for(
    user_id: str,
    estimated: int,
    windows: Windows,
    checks: list[tuple[str, int, int, int]],
) -> QuotaExceeded | None:
    """The refusal for `checks` of (period, tokens used, tokens reserved, limit), None when all fit."""
    violations: list[QuotaViolation] = []
    retry_after = 0.0
    for period, used, reserved, limit in checks:
        if used + reserved + estimated <= limit:
            continue
        reset = windows.reset_of(period)
        violations.append(
            QuotaViolation(
                subject=f"users/{user_id}/budgets/{period}",
                description=(
                    f"{_PERIOD_WORDS[period]} token budget of {limit} exceeded: {used} used, "
                    f"{reserved} held by calls in flight, {estimated} requested; "
                    f"resets at {reset.isoformat()}"
                ),
            )
        )
        only_in_flight = used + estimated <= limit
        wait = IN_FLIGHT_RETRY_SECONDS if only_in_flight else (reset - windows.now).total_seconds()
        retry_after = max(retry_after, wait)
    if not violations:
        return None
    return QuotaExceeded(
        "token budget exhausted: " + "; ".join(v.description for v in violations),
        retry_after_seconds=max(1.0, retry_after),
        violations=violations,
        reason="TOKEN_BUDGET_EXHAUSTED",
        metadata={"window": ",".join(v.subject.rsplit("/", 1)[-1] for v in violations)},
    )
