"""The RPC gate: per-user rate limits and stream slots, checked after authentication for every RPC.

Backends: Redis (one global limit across replicas) when REDIS_URL is set, else the in-process
limiter. Redis outage mode: the first Redis error switches this process to its in-process limiter
(logged once; the health service `tutorstream.limits` turns NOT_SERVING while overall health stays
SERVING), a probe pings Redis every `redis_probe_seconds`, and the first successful ping switches
back (logged; `tutorstream.limits` SERVING again). During an outage each replica enforces the full
per-user limits on its own, so N replicas admit at most N times the limit; token budgets are
unaffected (they live in PostgreSQL). Rate state kept in Redis is lost if Redis itself restarts.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.core import metrics
from server.core.auth import Principal
from server.core.errors import QuotaExceeded, QuotaViolation
from server.core.tasks import stop_task
from server.limits.gcra import MICROS, Admission, Cell, Decision, LocalLimiter, Outcome
from server.limits.policy import (
    REPORTED_CLASSES,
    LimitPolicy,
    RateLimit,
    RpcClass,
    StreamKind,
    rpc_class_for,
    stream_kind_for,
)
from server.limits.redis_limiter import RedisLimiter

log = logging.getLogger("tutorstream.limits")

LIMITS_HEALTH_SERVICE = "tutorstream.limits"
STREAM_RETRY_SECONDS = 1.0
_REDIS_DOWN = (RedisError, OSError)

StateListener = Callable[[bool], Awaitable[None]]  # called with True when degraded, False when recovered


class LimiterBackend(Protocol):
    async def admit(
        self, rate_key: str, cell: Cell | None, lease_key: str, max_leases: int, lease_id: str
    ) -> Admission: ...

    async def release(self, lease_key: str, lease_id: str) -> None: ...

    async def peek(self, keyed: list[tuple[str, Cell]]) -> list[Decision]: ...


def rate_key(user_id: str, rpc_class: RpcClass) -> str:
    # The {user} hash tag keeps one user's keys in one slot should Redis ever be a cluster.
    return f"tutorstream:{{{user_id}}}:rate:{rpc_class.value}"


def lease_key(user_id: str, kind: StreamKind) -> str:
    return f"tutorstream:{{{user_id}}}:streams:{kind.value}"


@dataclass(frozen=True)
class RateStatus:
    rpc_class: str
    limit_per_minute: int
    remaining: int
    reset_time: datetime


class _Admission:
    """One call's pass through the gate, kept while the call runs (a stream's for hours): a slotted object
    rather than a generator-based context manager, which would keep a generator, its frame and the event
    loop's weak reference to it."""

    __slots__ = ("gate", "lease", "method", "principal")

    def __init__(self, gate: LimitsGate, principal: Principal, method: str) -> None:
        self.gate = gate
        self.principal = principal
        self.method = method
        self.lease: tuple[LimiterBackend, str, str] | None = None  # the stream slot taken: backend, key, id

    async def __aenter__(self) -> None:
        await self.gate._enter(self)

    async def __aexit__(self, *exc_info: object) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            await asyncio.shield(LimitsGate._release(*lease))


class LimitsGate:
    """Implements `server.core.interceptors.RpcGate`."""

    def __init__(
        self,
        policy: LimitPolicy,
        *,
        redis: Redis | None = None,
        lease_seconds: float = 30.0,
        probe_seconds: float = 1.0,
        listener: StateListener | None = None,
    ) -> None:
        self._policy = policy
        self._redis = redis
        self._shared = RedisLimiter(redis, lease_seconds=lease_seconds) if redis is not None else None
        self._local = LocalLimiter()
        self._probe_seconds = probe_seconds
        self._listener = listener
        self._degraded = False
        self._probe: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """True when limits are enforced across replicas right now."""
        return self._shared is not None and not self._degraded

    @property
    def degraded(self) -> bool:
        return self._degraded

    async def check_redis(self) -> None:
        """At startup: begin in outage mode if Redis does not answer."""
        if self._redis is None:
            return
        try:
            await self._redis.ping()
        except _REDIS_DOWN as exc:
            await self._mark_down(exc)

    def admit(self, principal: Principal, method: str) -> _Admission:
        return _Admission(self, principal, method)

    async def _enter(self, admission: _Admission) -> None:
        principal, method = admission.principal, admission.method
        limits = self._policy.for_tier(principal.tier.value)
        rate = limits.rates[rpc_class_for(method)]
        kind = stream_kind_for(method)
        max_leases = limits.streams[kind] if kind is not None else 0
        if not rate.enabled and max_leases == 0:
            return
        user_id = principal.user_id
        cell = Cell.of(rate) if rate.enabled else None
        leases = lease_key(user_id, kind) if kind is not None and max_leases > 0 else ""
        lease_id = uuid.uuid4().hex if leases else ""
        backend, decision = await self._admit(rate_key(user_id, rate.rpc_class), cell, leases, max_leases, lease_id)
        if decision.outcome is Outcome.RATE_LIMITED:
            metrics.count_limiter_rejection(f"rate_{rate.rpc_class.value}")
            raise _rate_limited(principal, rate, decision.retry_after / MICROS)
        if decision.outcome is Outcome.TOO_MANY_STREAMS and kind is not None:
            metrics.count_limiter_rejection(f"streams_{kind.value}")
            raise _too_many_streams(principal, kind, max_leases)
        if leases:
            admission.lease = (backend, leases, lease_id)

    async def rate_status(self, user_id: str, tier: str) -> list[RateStatus]:
        """What is left of each reported rate limit for `user_id` (nothing is consumed)."""
        limits = self._policy.for_tier(tier)
        rates = [limits.rates[rpc_class] for rpc_class in REPORTED_CLASSES]
        keyed = [(rate_key(user_id, rate.rpc_class), Cell.of(rate)) for rate in rates if rate.enabled]
        decisions = iter(await self._peek(keyed) if keyed else [])
        now = datetime.now(UTC)
        statuses: list[RateStatus] = []
        for rate in rates:
            if not rate.enabled:
                statuses.append(RateStatus(rate.rpc_class.value, 0, 0, now))
                continue
            decision = next(decisions)
            statuses.append(
                RateStatus(
                    rpc_class=rate.rpc_class.value,
                    limit_per_minute=rate.per_minute,
                    remaining=decision.remaining,
                    reset_time=now + timedelta(microseconds=decision.reset_after),
                )
            )
        return statuses

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        await stop_task(probe)
        if self._shared is not None:
            await self._shared.close()

    # --- backend selection and outage mode ---------------------------------------------------

    async def _admit(
        self, key: str, cell: Cell | None, leases: str, max_leases: int, lease_id: str
    ) -> tuple[LimiterBackend, Admission]:
        if self._shared is not None and not self._degraded:
            try:
                return self._shared, await self._shared.admit(key, cell, leases, max_leases, lease_id)
            except _REDIS_DOWN as exc:
                await self._mark_down(exc)
        return self._local, self._local.admit_now(key, cell, leases, max_leases, lease_id)

    async def _peek(self, keyed: list[tuple[str, Cell]]) -> list[Decision]:
        if self._shared is not None and not self._degraded:
            try:
                return await self._shared.peek(keyed)
            except _REDIS_DOWN as exc:
                await self._mark_down(exc)
        return await self._local.peek(keyed)

    @staticmethod
    async def _release(backend: LimiterBackend, leases: str, lease_id: str) -> None:
        try:
            await backend.release(leases, lease_id)
        except _REDIS_DOWN as exc:
            log.debug("stream slot release failed (the lease expires on its own): %s", type(exc).__name__)

    async def _mark_down(self, exc: BaseException) -> None:
        if self._degraded:
            return
        self._degraded = True
        log.warning(
            "Redis unreachable (%s): rate and stream limits fall back to per-process limiters until it is back",
            type(exc).__name__,
        )
        self._probe = asyncio.get_running_loop().create_task(self._probe_until_back(), name="limits-redis-probe")
        await self._notify(True)

    async def _probe_until_back(self) -> None:
        assert self._redis is not None
        while True:
            await asyncio.sleep(self._probe_seconds)
            try:
                await self._redis.ping()
            except _REDIS_DOWN:
                continue
            self._degraded = False
            log.warning("Redis reachable again: rate and stream limits are shared across replicas again")
            await self._notify(False)
            return

    async def _notify(self, degraded: bool) -> None:
        if self._listener is None:
            return
        try:
            await self._listener(degraded)
        except Exception:
            log.exception("limits state listener failed")


def _rate_limited(principal: Principal, rate: RateLimit, retry_after: float) -> QuotaExceeded:
    period = f"{rate.period_seconds:g} s"
    description = f"at most {rate.limit} {rate.rpc_class.value} calls per {period} for the {principal.tier.value} tier"
    return QuotaExceeded(
        f"rate limit exceeded: {description}; retry in {retry_after:.1f} s",
        retry_after_seconds=retry_after,
        violations=[QuotaViolation(f"users/{principal.user_id}/rate_limits/{rate.rpc_class.value}", description)],
        reason="RATE_LIMITED",
        metadata={
            "rpc_class": rate.rpc_class.value,
            "limit": str(rate.limit),
            "period_seconds": f"{rate.period_seconds:g}",
            "tier": principal.tier.value,
        },
    )


def _too_many_streams(principal: Principal, kind: StreamKind, max_leases: int) -> QuotaExceeded:
    description = f"at most {max_leases} concurrent {kind.value} streams per user"
    return QuotaExceeded(
        f"too many open streams: {description}",
        retry_after_seconds=STREAM_RETRY_SECONDS,
        violations=[QuotaViolation(f"users/{principal.user_id}/streams/{kind.value}", description)],
        reason="TOO_MANY_STREAMS",
        metadata={"stream": kind.value, "limit": str(max_leases), "tier": principal.tier.value},
    )
