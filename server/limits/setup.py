"""Build the limits of one server process from Settings: Redis client, RPC gate and token budget."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.config import Settings
from server.core.db import Database
from server.limits.budget import TokenBudget
from server.limits.gate import LimitsGate, StateListener
from server.limits.policy import LimitPolicy


def redis_client(settings: Settings) -> Redis | None:
    """The process's Redis client (None without REDIS_URL). Short timeouts and a single retry, so an
    outage is noticed within `redis_timeout_seconds` instead of stalling RPCs."""
    if not settings.redis_url:
        return None
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


@dataclass
class Limits:
    policy: LimitPolicy
    gate: LimitsGate
    budget: TokenBudget
    redis: Redis | None

    async def close(self) -> None:
        await self.gate.close()
        if self.redis is not None:
            await self.redis.aclose()


async def build_limits(settings: Settings, database: Database, *, listener: StateListener | None = None) -> Limits:
    policy = LimitPolicy(settings)
    redis = redis_client(settings)
    gate = LimitsGate(
        policy,
        redis=redis,
        lease_seconds=settings.stream_lease_seconds,
        probe_seconds=settings.redis_probe_seconds,
        listener=listener,
    )
    await gate.check_redis()
    budget = TokenBudget(database, policy, reservation_ttl_seconds=settings.budget_reservation_ttl_seconds)
    return Limits(policy=policy, gate=gate, budget=budget, redis=redis)
