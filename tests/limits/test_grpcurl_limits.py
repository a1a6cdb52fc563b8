"""The operator's view of limits: grpcurl sees RESOURCE_EXHAUSTED with its details, and GetUsage."""

from __future__ import annotations

import json
import re

from server.core.auth import Principal, Role, Tier
from tests.conftest import ServerFactory
from tests.support.clients import token_for
from tests.support.redis_server import RedisServer
from tests.test_grpcurl import grpcurl


async def test_exceeding_the_chat_rate_over_grpcurl(start_server: ServerFactory, redis_server: RedisServer) -> None:
    server = await start_server(
        redis_url=redis_server.url, rate_period_seconds=600.0, tier_limit_overrides={"free": {"chat": 1}}
    )
    auth = f"authorization: Bearer {token_for(server.settings, 'zed')}"
    request = '{"session": "sessions/none", "message": "What is a closure?"}'
    method = "tutorstream.v1.ChatService/StreamChat"
    await grpcurl("-H", auth, "-d", request, server.target, method)

    code, _, err = await grpcurl("-H", auth, "-d", request, server.target, method)

    assert code != 0
    assert "Code: ResourceExhausted" in err
    assert '"reason":"RATE_LIMITED"' in err
    assert '"subject":"users/zed/rate_limits/chat"' in err
    delay = re.search(r'"retry_delay":"([0-9.]+)s"', err)
    assert delay is not None, err
    assert 0 < float(delay.group(1)) <= 600


async def test_get_usage_over_grpcurl_shows_the_spend(start_server: ServerFactory) -> None:
    server = await start_server(daily_token_budget=10_000)
    reservation = await server.server.runtime.budget.reserve(
        Principal("yara", Role.STUDENT, Tier.FREE), 2_000, operation="quiz"
    )
    await reservation.commit(model="gpt-4o-mini", prompt_tokens=900, completion_tokens=300, cost_usd=0.000315)
    auth = f"authorization: Bearer {token_for(server.settings, 'yara')}"

    code, out, err = await grpcurl(
        "-H", auth, "-d", '{"user": "users/me"}', server.target, "tutorstream.v1.AnalyticsService/GetUsage"
    )

    assert code == 0, err
    usage = json.loads(out)
    day = usage["budgets"][0]
    assert (day["window"], day["tokens_used"], day["tokens_limit"], day["tokens_remaining"]) == (
        "USAGE_WINDOW_DAY",
        "1200",
        "10000",
        "8800",
    )
    assert usage["by_model"][0]["usage"]["total_tokens"] == "1200"
    assert [rate["rpc_class"] for rate in usage["rate_limits"]] == ["chat", "hint", "quiz", "agent", "ingest"]
