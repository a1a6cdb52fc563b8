"""The GCRA arithmetic, the in-process limiter, and the Redis script agreeing with both."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from server.limits.gcra import MICROS, Cell, LocalLimiter, Outcome, gcra
from server.limits.policy import RateLimit, RpcClass
from server.limits.redis_limiter import RedisLimiter
from tests.support.redis_server import RedisServer

FIVE_PER_10S = Cell.of(RateLimit(RpcClass.HINT, 5, 10.0))


def test_a_quiet_key_allows_a_burst_of_the_limit_then_refills_steadily() -> None:
    now, tat = 1_000 * MICROS, None
    remaining = []
    for _ in range(5):
        decision, tat = gcra(tat, now, FIVE_PER_10S)
        assert decision.allowed
        remaining.append(decision.remaining)
    assert remaining == [4, 3, 2, 1, 0]

    refused, unchanged = gcra(tat, now, FIVE_PER_10S)
    assert not refused.allowed
    assert unchanged == tat
    assert refused.retry_after == 2 * MICROS  # one call every 10 s / 5
    assert refused.reset_after == 10 * MICROS

    early, _ = gcra(tat, now + refused.retry_after - 1, FIVE_PER_10S)
    assert not early.allowed
    on_time, _ = gcra(tat, now + refused.retry_after, FIVE_PER_10S)
    assert on_time.allowed and on_time.remaining == 0

    rested, _ = gcra(tat, now + 10 * MICROS, FIVE_PER_10S, cost=0)
    assert rested.remaining == 5


def test_peeking_consumes_nothing() -> None:
    decision, tat = gcra(None, 42, FIVE_PER_10S, cost=0)
    assert (decision.allowed, decision.remaining, decision.reset_after, tat) == (True, 5, 0, 42)


def test_cells_are_exact_in_microseconds() -> None:
    cell = Cell.of(RateLimit(RpcClass.CHAT, 30, 60.0))
    assert (cell.interval, cell.period) == (2 * MICROS, 60 * MICROS)


async def test_the_local_limiter_counts_per_key() -> None:
    limiter = LocalLimiter()
    first = [await limiter.admit("a", FIVE_PER_10S, "", 0, "") for _ in range(6)]
    other = await limiter.admit("b", FIVE_PER_10S, "", 0, "")

    assert [a.outcome for a in first] == [Outcome.ADMITTED] * 5 + [Outcome.RATE_LIMITED]
    assert [a.remaining for a in first[:5]] == [4, 3, 2, 1, 0]
    assert 0 < first[5].retry_after <= 2 * MICROS
    assert other.outcome is Outcome.ADMITTED
    (peeked,) = await limiter.peek([("a", FIVE_PER_10S)])
    assert peeked.remaining == 0


async def test_the_local_limiter_forgets_idle_keys() -> None:
    limiter = LocalLimiter()
    tiny = Cell(interval=1, limit=1)
    for index in range(LocalLimiter._SWEEP_EVERY):
        await limiter.admit(f"user-{index}", tiny, "", 0, "")
    await asyncio.sleep(0.001)
    await limiter.admit("last", tiny, "", 0, "")
    assert len(limiter._tats) < LocalLimiter._SWEEP_EVERY


@pytest.fixture
async def redis_limiter(redis_server: RedisServer) -> RedisLimiter:
    client = Redis.from_url(redis_server.url)
    limiter = RedisLimiter(client, lease_seconds=30.0)
    yield limiter  # type: ignore[misc]
    await limiter.close()
    await client.aclose()


async def test_the_redis_script_matches_the_local_limiter(redis_limiter: RedisLimiter) -> None:
    key = f"test:{uuid.uuid4().hex}"
    shared = [await redis_limiter.admit(key, FIVE_PER_10S, "", 0, "") for _ in range(6)]
    local = LocalLimiter()
    alone = [await local.admit(key, FIVE_PER_10S, "", 0, "") for _ in range(6)]

    assert [(a.outcome, a.remaining) for a in shared] == [(a.outcome, a.remaining) for a in alone]
    assert shared[5].retry_after == pytest.approx(alone[5].retry_after, abs=0.5 * MICROS)
    (peeked,) = await redis_limiter.peek([(key, FIVE_PER_10S)])
    assert peeked.remaining == 0
    assert 8 * MICROS < peeked.reset_after <= 10 * MICROS


async def test_the_script_is_reloaded_after_redis_forgets_it(
    redis_limiter: RedisLimiter, redis_server: RedisServer
) -> None:
    key = f"test:{uuid.uuid4().hex}"
    await redis_limiter.admit(key, FIVE_PER_10S, "", 0, "")
    client = Redis.from_url(redis_server.url)
    try:
        await client.script_flush()
    finally:
        await client.aclose()

    admission = await redis_limiter.admit(key, FIVE_PER_10S, "", 0, "")  # NOSCRIPT, then loaded again

    assert (admission.outcome, admission.remaining) == (Outcome.ADMITTED, 3)
