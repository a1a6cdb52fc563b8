"""Token budgets against a real PostgreSQL: reserve, commit, release, concurrency, windows, expiry."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from server.config import Settings
from server.core.auth import Principal, Role, Tier
from server.core.db import Database
from server.core.errors import QuotaExceeded, Unavailable
from server.limits.budget import TokenBudget
from server.limits.ledger import IN_FLIGHT_RETRY_SECONDS, UNRECONCILED_MODEL
from server.limits.models import TokenReservation, UsageRecord
from tests.limits.conftest import budget_for, limits_settings


def student(user_id: str = "ada", tier: Tier = Tier.FREE) -> Principal:
    return Principal(user_id=user_id, role=Role.STUDENT, tier=tier)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def settings(tmp_path: Path, fresh_database_url: str) -> Settings:
    return limits_settings(tmp_path, fresh_database_url, daily_token_budget=1_000, monthly_token_budget=5_000)


@pytest.fixture
def budget(database: Database, settings: Settings) -> TokenBudget:
    return budget_for(database, settings)


async def test_commit_replaces_the_estimate_with_real_usage(budget: TokenBudget) -> None:
    reservation = await budget.reserve(student(), 400, operation="chat")
    day, month = await budget.status("ada", "free")
    assert (day.tokens_used, day.tokens_reserved, day.tokens_remaining) == (0, 400, 600)
    assert (month.tokens_reserved, month.tokens_remaining) == (400, 4_600)

    await reservation.commit(model="gpt-4o-mini", prompt_tokens=120, completion_tokens=80, cost_usd=0.000066)

    day, month = await budget.status("ada", "free")
    assert (day.tokens_used, day.tokens_reserved, day.tokens_remaining) == (200, 0, 800)
    assert (month.tokens_used, month.tokens_remaining) == (200, 4_800)
    assert day.cost_usd == pytest.approx(0.000066)
    (usage,) = await budget.usage_by_model("ada", budget.windows().month_begin)
    assert (usage.model, usage.operation, usage.calls) == ("gpt-4o-mini", "chat", 1)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 80, 200)


async def test_usage_is_grouped_by_model_and_operation(budget: TokenBudget) -> None:
    for operation, model, tokens in [
        ("chat", "gpt-4o-mini", 100),
        ("chat", "gpt-4o-mini", 50),
        ("hint", "gpt-4o-mini", 30),
        ("chat", "offline-extractive", 10),
    ]:
        reservation = await budget.reserve(student(), 200, operation=operation)
        await reservation.commit(model=model, prompt_tokens=tokens, completion_tokens=0, cost_usd=tokens / 1e6)

    rows = await budget.usage_by_model("ada", budget.windows().month_begin)

    assert [(r.model, r.operation, r.total_tokens, r.calls) for r in rows] == [
        ("gpt-4o-mini", "chat", 150, 2),
        ("gpt-4o-mini", "hint", 30, 1),
        ("offline-extractive", "chat", 10, 1),
    ]
    assert rows[0].cost_usd == pytest.approx(150 / 1e6)


async def test_a_released_reservation_costs_nothing(budget: TokenBudget, database: Database) -> None:
    """A cached answer: the caller reserved, then served from the cache and released."""
    before = await budget.status("ada", "free")
    reservation = await budget.reserve(student(), 700, operation="chat")

    await reservation.release()

    after = await budget.status("ada", "free")
    assert [(w.tokens_used, w.tokens_reserved, w.cost_usd) for w in after] == [(0, 0, 0.0), (0, 0, 0.0)]
    assert [w.tokens_remaining for w in after] == [w.tokens_remaining for w in before]
    assert await budget.usage_by_model("ada", budget.windows().month_begin) == []
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(TokenReservation)) == 0


async def test_commit_and_release_each_take_one_statement(budget: TokenBudget) -> None:
    """Finishing a reservation is on every model call's path: one round trip, no transaction around it."""
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    committed = await budget.reserve(student(), 300, operation="chat")
    released = await budget.reserve(student(), 200, operation="hint")
    event.listen(Engine, "before_cursor_execute", seen)
    try:
        await committed.commit(model="m", prompt_tokens=90, completion_tokens=30, cost_usd=0.25)
        after_commit = len(statements)
        await released.release()
    finally:
        event.remove(Engine, "before_cursor_execute", seen)

    assert (after_commit, len(statements)) == (1, 2)
    day, month = await budget.status("ada", "free")
    assert [(w.tokens_used, w.tokens_reserved, w.cost_usd) for w in (day, month)] == [(120, 0, 0.25)] * 2
    (usage,) = await budget.usage_by_model("ada", budget.windows().month_begin)
    assert (usage.model, usage.operation, usage.total_tokens, usage.calls) == ("m", "chat", 120, 1)


async def test_finishing_a_reservation_charged_on_expiry(
    database: Database, tmp_path: Path, fresh_database_url: str
) -> None:
    """Its replica came back after the estimate was charged: a release refunds nothing, a commit adds the usage
    it reports (the estimate stays charged: an unknown spend is never refunded)."""
    settings = limits_settings(tmp_path, fresh_database_url, budget_reservation_ttl_seconds=60)
    clock = FixedClock(datetime(2026, 5, 5, 10, tzinfo=UTC))
    budget = budget_for(database, settings, clock=clock)
    released = await budget.reserve(student(), 300, operation="chat")
    committed = await budget.reserve(student(), 100, operation="hint")
    clock.now += timedelta(seconds=61)
    await (await budget.reserve(student(), 50, operation="quiz")).release()

    await released.release()
    day, _ = await budget.status("ada", "free")
    assert (day.tokens_used, day.tokens_reserved) == (400, 0)
    await committed.commit(model="m", prompt_tokens=20, completion_tokens=5, cost_usd=0.0)

    day, month = await budget.status("ada", "free")
    assert [(w.tokens_used, w.tokens_reserved) for w in (day, month)] == [(425, 0)] * 2
    rows = await budget.usage_by_model("ada", budget.windows().month_begin)
    assert sorted((r.model, r.operation, r.total_tokens) for r in rows) == [
        ("m", "hint", 25),
        (UNRECONCILED_MODEL, "chat", 300),
        (UNRECONCILED_MODEL, "hint", 100),
    ]


async def test_release_after_commit_does_nothing_and_commit_twice_is_an_error(budget: TokenBudget) -> None:
    reservation = await budget.reserve(student(), 100, operation="hint")
    await reservation.commit(model="m", prompt_tokens=10, completion_tokens=5, cost_usd=0.0)
    await reservation.release()

    with pytest.raises(RuntimeError, match="already committed"):
        await reservation.commit(model="m", prompt_tokens=1, completion_tokens=1, cost_usd=0.0)
    day, _ = await budget.status("ada", "free")
    assert (day.tokens_used, day.tokens_reserved) == (15, 0)


async def test_async_with_releases_unless_committed(budget: TokenBudget) -> None:
    with pytest.raises(ConnectionError):
        async with await budget.reserve(student(), 300, operation="quiz"):
            raise ConnectionError("upstream went away")
    async with await budget.reserve(student(), 300, operation="quiz") as reservation:
        await reservation.commit(model="m", prompt_tokens=200, completion_tokens=40, cost_usd=0.0)

    day, _ = await budget.status("ada", "free")
    assert (day.tokens_used, day.tokens_reserved) == (240, 0)


async def test_a_request_that_does_not_fit_is_refused_before_the_call(budget: TokenBudget) -> None:
    spent = await budget.reserve(student(), 900, operation="chat")
    await spent.commit(model="m", prompt_tokens=900, completion_tokens=0, cost_usd=0.0)

    with pytest.raises(QuotaExceeded) as refused:
        await budget.reserve(student(), 200, operation="chat")

    error = refused.value
    assert error.reason == "TOKEN_BUDGET_EXHAUSTED"
    assert [v.subject for v in error.violations] == ["users/ada/budgets/day"]
    assert "daily token budget of 1000" in error.violations[0].description
    until_midnight = (budget.windows().day_reset - datetime.now(UTC)).total_seconds()
    assert error.retry_after_seconds == pytest.approx(max(1.0, until_midnight), abs=5)
    small = await budget.reserve(student(), 100, operation="chat")  # what is left still fits
    await small.release()


async def test_calls_in_flight_suggest_a_short_retry(budget: TokenBudget) -> None:
    held = await budget.reserve(student(), 800, operation="chat")

    with pytest.raises(QuotaExceeded) as refused:
        await budget.reserve(student(), 300, operation="chat")

    assert refused.value.retry_after_seconds == IN_FLIGHT_RETRY_SECONDS
    await held.release()
    again = await budget.reserve(student(), 300, operation="chat")
    await again.release()


async def test_the_month_window_is_checked_too(database: Database, tmp_path: Path, fresh_database_url: str) -> None:
    settings = limits_settings(tmp_path, fresh_database_url, daily_token_budget=1_000, monthly_token_budget=1_500)
    clock = FixedClock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    budget = budget_for(database, settings, clock=clock)
    first = await budget.reserve(student(), 1_000, operation="chat")
    await first.commit(model="m", prompt_tokens=1_000, completion_tokens=0, cost_usd=0.0)
    clock.now += timedelta(days=1)

    with pytest.raises(QuotaExceeded) as refused:
        await budget.reserve(student(), 600, operation="chat")

    assert [v.subject for v in refused.value.violations] == ["users/ada/budgets/month"]
    assert refused.value.retry_after_seconds == pytest.approx(
        (datetime(2026, 4, 1, tzinfo=UTC) - clock.now).total_seconds()
    )


async def test_the_month_window_refuses_on_a_day_that_already_has_a_budget_row(
    database: Database, tmp_path: Path, fresh_database_url: str
) -> None:
    """The same day twice: the second reservation is booked by the one-statement path, which must judge the month."""
    settings = limits_settings(tmp_path, fresh_database_url, daily_token_budget=2_000, monthly_token_budget=1_200)
    budget = budget_for(database, settings, clock=FixedClock(datetime(2026, 3, 10, 12, tzinfo=UTC)))
    first = await budget.reserve(student(), 300, operation="chat")
    await first.commit(model="m", prompt_tokens=300, completion_tokens=0, cost_usd=0.0)
    earlier = await budget.reserve(student(), 500, operation="chat")
    await earlier.commit(model="m", prompt_tokens=500, completion_tokens=0, cost_usd=0.0)
    month_used = await budget.status("ada", "free")

    with pytest.raises(QuotaExceeded) as refused:
        await budget.reserve(student(), 500, operation="chat")  # 800 + 500 > 1,200 a month; the day has room

    assert [v.subject for v in refused.value.violations] == ["users/ada/budgets/month"]
    assert await budget.status("ada", "free") == month_used  # nothing booked by the refusal
    fits = await budget.reserve(student(), 400, operation="chat")
    await fits.release()


async def test_a_new_day_starts_with_a_fresh_daily_budget(
    database: Database, tmp_path: Path, fresh_database_url: str
) -> None:
    settings = limits_settings(tmp_path, fresh_database_url, daily_token_budget=1_000, monthly_token_budget=5_000)
    clock = FixedClock(datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    budget = budget_for(database, settings, clock=clock)
    late = await budget.reserve(student(), 1_000, operation="chat")
    clock.now = datetime(2026, 2, 1, 0, 1, tzinfo=UTC)

    early = await budget.reserve(student(), 1_000, operation="chat")
    await late.commit(model="m", prompt_tokens=600, completion_tokens=0, cost_usd=0.0)

    day, month = await budget.status("ada", "free")
    assert (day.period_start.isoformat(), day.tokens_used, day.tokens_reserved) == ("2026-02-01", 0, 1_000)
    assert (month.period_start.isoformat(), month.tokens_used, month.tokens_reserved) == ("2026-02-01", 0, 1_000)
    assert day.reset_time == datetime(2026, 2, 2, tzinfo=UTC)
    assert month.reset_time == datetime(2026, 3, 1, tzinfo=UTC)
    clock.now = datetime(2026, 1, 31, 23, 59, 30, tzinfo=UTC)
    old_day, old_month = await budget.status("ada", "free")
    assert (old_day.tokens_used, old_day.tokens_reserved, old_month.tokens_used) == (600, 0, 600)
    await early.release()


async def test_tiers_multiply_the_budget(database: Database, tmp_path: Path, fresh_database_url: str) -> None:
    settings = limits_settings(
        tmp_path,
        fresh_database_url,
        daily_token_budget=1_000,
        tier_budget_multipliers={"free": 1.0, "pro": 10.0},
        tier_limit_overrides={"instructor": {"daily_tokens": 50}},
    )
    budget = budget_for(database, settings)

    pro = await budget.reserve(student("pat", Tier.PRO), 9_000, operation="chat")
    with pytest.raises(QuotaExceeded):
        await budget.reserve(student("ada", Tier.FREE), 1_001, operation="chat")
    with pytest.raises(QuotaExceeded):
        await budget.reserve(Principal("ivy", Role.INSTRUCTOR, Tier.INSTRUCTOR), 51, operation="quiz")

    day, _ = await budget.status("pat", "pro")
    assert day.tokens_limit == 10_000
    await pro.release()


async def test_concurrent_reservations_never_overspend(
    database: Database, tmp_path: Path, fresh_database_url: str
) -> None:
    """Two budgets on two connection pools stand for two replicas; 60 calls race for 1000 tokens."""
    settings = limits_settings(tmp_path, fresh_database_url, daily_token_budget=1_000, monthly_token_budget=10_000)
    other_replica = Database(fresh_database_url, pool_size=5, max_overflow=20)
    try:
        budgets = [budget_for(database, settings), budget_for(other_replica, settings)]

        async def attempt(index: int) -> object:
            try:
                return await budgets[index % 2].reserve(student(), 100, operation="chat")
            except QuotaExceeded as refused:
                return refused

        outcomes = await asyncio.gather(*(attempt(i) for i in range(60)))
        granted = [o for o in outcomes if not isinstance(o, QuotaExceeded)]
        assert len(granted) == 10
        day, _ = await budgets[0].status("ada", "free")
        assert (day.tokens_reserved, day.tokens_remaining) == (1_000, 0)

        rng = random.Random(7)

        async def finish(reservation: object) -> int:
            assert hasattr(reservation, "commit")
            if rng.random() < 0.5:
                await reservation.release()
                return 0
            used = rng.randint(1, 100)
            await reservation.commit(model="m", prompt_tokens=used, completion_tokens=0, cost_usd=0.0)
            return used

        spent = sum(await asyncio.gather(*(finish(r) for r in granted)))
        day, month = await budgets[1].status("ada", "free")
        assert (day.tokens_used, day.tokens_reserved) == (spent, 0)
        assert month.tokens_used == spent
        async with database.session() as session:
            recorded = await session.scalar(select(func.coalesce(func.sum(UsageRecord.total_tokens), 0)))
        assert recorded == spent

        refill = await asyncio.gather(*(attempt(i) for i in range(40)))
        assert sum(not isinstance(o, QuotaExceeded) for o in refill) == (1_000 - spent) // 100
    finally:
        await other_replica.dispose()


async def test_a_reservation_left_behind_is_charged_when_it_expires(
    database: Database, tmp_path: Path, fresh_database_url: str
) -> None:
    """The replica holding it died mid-call: the spend is unknown, so the estimate is charged."""
    settings = limits_settings(tmp_path, fresh_database_url, budget_reservation_ttl_seconds=60)
    clock = FixedClock(datetime(2026, 5, 5, 10, tzinfo=UTC))
    budget = budget_for(database, settings, clock=clock)
    await budget.reserve(student(), 300, operation="chat")  # never finished
    clock.now += timedelta(seconds=61)

    later = await budget.reserve(student(), 50, operation="hint")

    day, _ = await budget.status("ada", "free")
    assert (day.tokens_used, day.tokens_reserved) == (300, 50)
    rows = await budget.usage_by_model("ada", budget.windows().month_begin)
    assert [(r.model, r.operation, r.total_tokens) for r in rows] == [(UNRECONCILED_MODEL, "chat", 300)]
    await later.release()


async def test_reserve_fails_closed_when_the_database_is_down(tmp_path: Path, fresh_database_url: str) -> None:
    settings = limits_settings(tmp_path, fresh_database_url)
    unreachable = Database("postgresql://nobody@127.0.0.1:1/nothing", pool_size=1)
    try:
        with pytest.raises(Unavailable) as failed:
            await budget_for(unreachable, settings).reserve(student(), 10, operation="chat")
    finally:
        await unreachable.dispose()
    assert failed.value.reason == "BUDGET_UNAVAILABLE"
    assert failed.value.retry_after_seconds == 1.0


async def test_bad_arguments_are_programming_errors(budget: TokenBudget) -> None:
    with pytest.raises(ValueError, match="estimated_tokens"):
        await budget.reserve(student(), -1, operation="chat")
    with pytest.raises(ValueError, match="operation"):
        await budget.reserve(student(), 1, operation="Chat Turn")
