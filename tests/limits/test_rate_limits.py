"""Rate limits through a real grpc.aio server and a real Redis: exact admission counts, error details,
window reset, and classes that stay apart."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc import aio
from tutorstream.v1 import agent_service_pb2, analytics_service_pb2

from server.core.auth import Principal, Role, Tier
from tests.conftest import ServerFactory
from tests.support.clients import Client, error_details
from tests.support.redis_server import RedisServer

LONG_PERIOD = 600.0  # ten minutes: no refill while a test runs, so counts are exact


async def hint_code(client: Client) -> grpc.StatusCode:
    """GetHint is in the `hint` class; the gate runs before the handler, so any status other than
    RESOURCE_EXHAUSTED means the call was admitted."""
    try:
        await client.agents.GetHint(agent_service_pb2.GetHintRequest(), timeout=60)
    except aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def hint_error(client: Client) -> aio.AioRpcError:
    try:
        await client.agents.GetHint(agent_service_pb2.GetHintRequest(), timeout=60)
    except aio.AioRpcError as error:
        return error
    raise AssertionError("GetHint answered OK")


def admitted(codes: list[grpc.StatusCode]) -> int:
    return sum(code != grpc.StatusCode.RESOURCE_EXHAUSTED for code in codes)


@pytest.fixture(params=["redis", "in-process"])
def backend(request: pytest.FixtureRequest, redis_server: RedisServer) -> dict[str, Any]:
    return {"redis_url": redis_server.url if request.param == "redis" else None}


async def test_exactly_the_allowed_number_of_parallel_calls_pass(
    start_server: ServerFactory, backend: dict[str, Any]
) -> None:
    server = await start_server(**backend, rate_period_seconds=LONG_PERIOD, tier_limit_overrides={"free": {"hint": 10}})
    client = server.client()

    codes = await asyncio.gather(*(hint_code(client) for _ in range(100)))

    assert admitted(codes) == 10
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 90
    assert server.server.runtime.limits.shared is (backend["redis_url"] is not None)


async def test_rate_limit_errors_carry_retry_info_and_quota_failure(
    start_server: ServerFactory, redis_server: RedisServer
) -> None:
    server = await start_server(
        redis_url=redis_server.url, rate_period_seconds=LONG_PERIOD, tier_limit_overrides={"free": {"hint": 2}}
    )
    client = server.client("rita")
    assert admitted([await hint_code(client), await hint_code(client)]) == 2

    error = await hint_error(client)

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(error)
    assert details["ErrorInfo"].reason == "RATE_LIMITED"
    assert details["ErrorInfo"].domain == "tutorstream.dev"
    assert details["ErrorInfo"].metadata["rpc_class"] == "hint"
    assert details["ErrorInfo"].metadata["limit"] == "2"
    (violation,) = details["QuotaFailure"].violations
    assert violation.subject == "users/rita/rate_limits/hint"
    assert "at most 2 hint calls per 600 s" in violation.description
    delay = details["RetryInfo"].retry_delay
    seconds = delay.seconds + delay.nanos / 1e9
    assert 0 < seconds <= LONG_PERIOD / 2  # one call refills every period / limit
    assert seconds > LONG_PERIOD / 2 - 60


async def test_the_window_refills(start_server: ServerFactory, redis_server: RedisServer) -> None:
    server = await start_server(
        redis_url=redis_server.url, rate_period_seconds=3.0, tier_limit_overrides={"free": {"hint": 3}}
    )
    client = server.client()
    assert admitted(await asyncio.gather(*(hint_code(client) for _ in range(6)))) == 3

    delay = error_details(await hint_error(client))["RetryInfo"].retry_delay
    await asyncio.sleep(delay.seconds + delay.nanos / 1e9 + 0.05)
    assert await hint_code(client) != grpc.StatusCode.RESOURCE_EXHAUSTED  # one call refilled

    await asyncio.sleep(3.1)  # a full period later the whole burst is back
    assert admitted(await asyncio.gather(*(hint_code(client) for _ in range(4)))) == 3


async def test_users_and_classes_are_limited_separately(start_server: ServerFactory, redis_server: RedisServer) -> None:
    server = await start_server(
        redis_url=redis_server.url,
        rate_period_seconds=LONG_PERIOD,
        tier_limit_overrides={"free": {"hint": 1, "quiz": 1}, "pro": {"hint": 3}},
    )
    ada, bob, pat = server.client(), server.client(), server.client(tier="pro")
    assert await hint_code(ada) != grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await hint_code(ada) == grpc.StatusCode.RESOURCE_EXHAUSTED

    assert await hint_code(bob) != grpc.StatusCode.RESOURCE_EXHAUSTED  # another user
    assert admitted(await asyncio.gather(*(hint_code(pat) for _ in range(5)))) == 3  # another tier
    try:
        await ada.agents.GenerateQuiz(agent_service_pb2.GenerateQuizRequest(), timeout=30)
    except aio.AioRpcError as error:
        assert error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED  # another class
    reply = await ada.agents.GetPreferences(agent_service_pb2.GetPreferencesRequest(name="users/me/preferences"))
    assert reply.preferences.name.endswith("/preferences")  # reads are in the generous default class


async def test_tier_multipliers_scale_the_defaults(start_server: ServerFactory, redis_server: RedisServer) -> None:
    server = await start_server(
        redis_url=redis_server.url,
        rate_period_seconds=LONG_PERIOD,
        rate_hint_per_minute=2,
        tier_rate_multipliers={"free": 1.0, "pro": 2.5},
    )
    free, pro = server.client(), server.client(tier="pro")

    assert admitted(await asyncio.gather(*(hint_code(free) for _ in range(10)))) == 2
    assert admitted(await asyncio.gather(*(hint_code(pro) for _ in range(10)))) == 5


async def test_get_usage_reports_budgets_rate_limits_and_spend(
    start_server: ServerFactory, redis_server: RedisServer
) -> None:
    server = await start_server(
        redis_url=redis_server.url, rate_period_seconds=LONG_PERIOD, rate_hint_per_minute=20, daily_token_budget=5_000
    )
    client = server.client("uma")
    await hint_code(client)
    await hint_code(client)
    budget = server.server.runtime.budget
    uma = Principal("uma", Role.STUDENT, Tier.FREE)
    spent = await budget.reserve(uma, 1_000, operation="chat")
    await spent.commit(model="gpt-4o-mini", prompt_tokens=700, completion_tokens=100, cost_usd=0.000165)
    held = await budget.reserve(uma, 500, operation="hint")

    usage = await client.analytics.GetUsage(analytics_service_pb2.GetUsageRequest(user="users/me"))

    assert usage.tier == "free"
    day, month = usage.budgets
    assert day.window == analytics_service_pb2.USAGE_WINDOW_DAY
    assert (day.tokens_used, day.tokens_limit, day.tokens_remaining) == (1_300, 5_000, 3_700)
    assert day.cost_usd == pytest.approx(0.000165)
    assert month.window == analytics_service_pb2.USAGE_WINDOW_MONTH
    assert month.reset_time.ToSeconds() > day.reset_time.ToSeconds() - 86_400
    rates = {rate.rpc_class: rate for rate in usage.rate_limits}
    assert list(rates) == ["chat", "hint", "quiz", "agent", "ingest"]
    assert (rates["hint"].limit_per_minute, rates["hint"].remaining) == (2, 18)
    assert (rates["chat"].limit_per_minute, rates["chat"].remaining) == (3, 30)  # 30 per 10 min
    (model,) = usage.by_model
    assert (model.model, model.operation, model.calls) == ("gpt-4o-mini", "chat", 1)
    assert (model.usage.prompt_tokens, model.usage.completion_tokens, model.usage.total_tokens) == (700, 100, 800)
    await held.release()


async def test_get_usage_of_another_user(start_server: ServerFactory) -> None:
    server = await start_server(tier_budget_multipliers={"pro": 4.0}, daily_token_budget=1_000)
    owner = server.client("vera", tier="pro")
    stranger, service = server.client("walt"), server.client("backend", role="service")
    await (
        await server.server.runtime.budget.reserve(Principal("vera", Role.STUDENT, Tier.PRO), 10, operation="chat")
    ).release()

    for caller, name in [(stranger, "users/vera"), (service, "users/nobody")]:
        with pytest.raises(aio.AioRpcError) as missing:
            await caller.analytics.GetUsage(analytics_service_pb2.GetUsageRequest(user=name))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(aio.AioRpcError) as invalid:
        await owner.analytics.GetUsage(analytics_service_pb2.GetUsageRequest(user="sessions/x"))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(invalid.value)["BadRequest"].field_violations[0].field == "user"

    usage = await service.analytics.GetUsage(analytics_service_pb2.GetUsageRequest(user="users/vera"))
    assert usage.tier == "pro"
    assert usage.budgets[0].tokens_limit == 4_000
