"""Redis outage mode: per-process rate limits, budgets from PostgreSQL, health shows it, recovery is
automatic. The session's Redis is stopped mid-test and started again afterwards."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.asyncio import Redis
from tutorstream.v1 import analytics_service_pb2

from server.core.auth import Principal, Role, Tier
from server.core.errors import QuotaExceeded
from server.limits.gate import LIMITS_HEALTH_SERVICE
from tests.conftest import RunningServer, ServerFactory
from tests.limits.test_rate_limits import admitted, hint_code
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health(server: RunningServer, service: str = "") -> int:
    client = server.anonymous()
    reply = await health_pb2_grpc.HealthStub(client.channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=10
    )
    return int(reply.status)


async def wait_for_health(server: RunningServer, service: str, status: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while await health(server, service) != status:
        assert time.monotonic() < deadline, f"{service} never became {status}"
        await asyncio.sleep(0.1)


async def test_redis_killed_mid_test(
    start_server: ServerFactory, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tutorstream.limits")
    server = await start_server(
        redis_url=redis_server.url,
        rate_period_seconds=600.0,
        tier_limit_overrides={"free": {"hint": 3, "daily_tokens": 1_000}},
        redis_probe_seconds=0.2,
    )
    client = server.client("olga")
    limits = server.server.runtime.limits
    assert await health(server, LIMITS_HEALTH_SERVICE) == SERVING
    assert admitted(await asyncio.gather(*(hint_code(client) for _ in range(5)))) == 3
    assert limits.shared

    redis_server.stop()
    try:
        # Per-process limits take over: a fresh limiter, the same limit, never unlimited.
        assert admitted(await asyncio.gather(*(hint_code(client) for _ in range(8)))) == 3
        assert limits.degraded and not limits.shared
        assert await health(server, LIMITS_HEALTH_SERVICE) == NOT_SERVING
        assert await health(server) == SERVING

        # Budgets keep working from PostgreSQL, and still refuse overspending.
        budget = server.server.runtime.budget
        olga = Principal("olga", Role.STUDENT, Tier.FREE)
        spent = await budget.reserve(olga, 600, operation="chat")
        await spent.commit(model="gpt-4o-mini", prompt_tokens=500, completion_tokens=100, cost_usd=0.0001)
        try:
            await budget.reserve(olga, 500, operation="chat")
            raise AssertionError("the budget was overspent during the outage")
        except QuotaExceeded as refused:
            assert refused.reason == "TOKEN_BUDGET_EXHAUSTED"
        usage = await client.analytics.GetUsage(analytics_service_pb2.GetUsageRequest(user="users/me"))
        assert usage.budgets[0].tokens_used == 600
        assert {rate.rpc_class: rate.remaining for rate in usage.rate_limits}["hint"] == 0
    finally:
        redis_server.start()

    await wait_for_health(server, LIMITS_HEALTH_SERVICE, SERVING)
    assert limits.shared
    messages = [record.getMessage() for record in caplog.records if record.name == "tutorstream.limits"]
    assert sum("Redis unreachable" in message for message in messages) == 1  # logged once, not per call
    assert sum("Redis reachable again" in message for message in messages) == 1
    newcomer = server.client("oscar")
    assert admitted(await asyncio.gather(*(hint_code(newcomer) for _ in range(5)))) == 3
    probe = Redis.from_url(redis_server.url)
    try:
        assert await probe.exists("tutorstream:{oscar}:rate:hint") == 1  # counted in Redis again
    finally:
        await probe.aclose()


async def test_a_server_starts_while_redis_is_down(start_server: ServerFactory) -> None:
    server = await start_server(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_period_seconds=600.0,
        tier_limit_overrides={"free": {"hint": 2}},
    )

    assert server.server.runtime.limits.degraded
    assert await health(server, LIMITS_HEALTH_SERVICE) == NOT_SERVING
    assert await health(server) == SERVING
    client = server.client("pia")
    codes = await asyncio.gather(*(hint_code(client) for _ in range(5)))
    assert admitted(codes) == 2
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 3
