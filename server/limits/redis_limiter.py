"""Rate and stream limits shared by every replica through Redis: one EVALSHA per admission.

The admission script checks the user's stream slots (a sorted set of leases scored by expiry time),
then the GCRA rate limit (one TAT per user and class), and books both only when both pass, all
atomically inside Redis using Redis's own clock (`TIME`), so replicas with skewed clocks agree.
redis-py's Script object sends EVALSHA and falls back to loading the script on NOSCRIPT (after a
Redis restart or failover). Leases of live streams are renewed in one round trip per tick; the
leases of a crashed replica expire after `stream_lease_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.core.tasks import stop_task
from server.limits.gcra import (
    ADMITTED_UNLIMITED,
    MICROS,
    TOO_MANY_STREAMS,
    Admission,
    Cell,
    Decision,
    Outcome,
    gcra,
)

log = logging.getLogger("tutorstream.limits")

# KEYS[1] rate key, KEYS[2] lease key.
# ARGV: interval (us, 0 = no rate limit), limit, max leases (0 = none), lease id, lease ttl (us).
# Returns {1, remaining, reset_after} | {0, retry_after, reset_after} | {2, 0, 0}.
ADMIT_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local max_leases = tonumber(ARGV[3])
if max_leases > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= max_leases then
    return {2, 0, 0}
  end
end
local remaining = -1
local reset_after = 0
if interval > 0 then
  local period = interval * tonumber(ARGV[2])
  local tat = now
  local stored = redis.call('GET', KEYS[1])
  if stored then
    tat = math.max(tonumber(stored), now)
  end
  local new_tat = tat + interval
  local allow_at = new_tat - period
  if now < allow_at then
    return {0, allow_at - now, tat - now}
  end
  remaining = math.floor((period - (new_tat - now)) / interval)
  reset_after = new_tat - now
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(reset_after / 1000))
end
if max_leases > 0 then
  local ttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], string.format('%d', now + ttl), ARGV[4])
  redis.call('PEXPIRE', KEYS[2], math.ceil(ttl / 1000))
end
return {1, remaining, reset_after}
"""

# KEYS: lease keys; ARGV[1] lease ttl (us), ARGV[i + 1] the lease id in KEYS[i].
RENEW_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local ttl = tonumber(ARGV[1])
local expiry = string.format('%d', now + ttl)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, ARGV[i + 1])
  redis.call('PEXPIRE', key, math.ceil(ttl / 1000))
end
return #KEYS
"""


class RedisLimiter:
    def __init__(self, redis: Redis, *, lease_seconds: float) -> None:
        self._redis = redis
        self._admit = redis.register_script(ADMIT_SCRIPT)
        self._renew = redis.register_script(RENEW_SCRIPT)
        self._lease_ttl = round(lease_seconds * MICROS)
        self._renew_every = lease_seconds / 3
        self._held: dict[str, str] = {}  # lease id -> lease key
        self._renewer: asyncio.Task[None] | None = None

    async def admit(
        self, rate_key: str, cell: Cell | None, lease_key: str, max_leases: int, lease_id: str
    ) -> Admission:
        interval, limit = (cell.interval, cell.limit) if cell is not None else (0, 0)
        keys = [rate_key or lease_key, lease_key or rate_key]
        args: list[Any] = [interval, limit, max_leases, lease_id, self._lease_ttl]
        code, value, _ = await self._admit(keys=keys, args=args)
        if code == 2:
            return TOO_MANY_STREAMS
        if code == 0:
            return Admission(Outcome.RATE_LIMITED, retry_after=int(value))
        if max_leases > 0:
            self._held[lease_id] = lease_key
            self._ensure_renewer()
        return Admission(Outcome.ADMITTED, remaining=int(value)) if cell is not None else ADMITTED_UNLIMITED

    async def release(self, lease_key: str, lease_id: str) -> None:
        self._held.pop(lease_id, None)
        await self._redis.zrem(lease_key, lease_id)

    async def peek(self, keyed: list[tuple[str, Cell]]) -> list[Decision]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.mget([key for key, _ in keyed])
            (seconds, micros), stored = await pipe.execute()
        now = int(seconds) * MICROS + int(micros)
        return [
            gcra(int(value) if value is not None else None, now, cell, cost=0)[0]
            for value, (_, cell) in zip(stored, keyed, strict=True)
        ]

    async def renew_now(self) -> None:
        """Push the expiry of every stream lease this process holds (one round trip)."""
        held = list(self._held.items())
        if held:
            await self._renew(keys=[key for _, key in held], args=[self._lease_ttl, *(lease for lease, _ in held)])

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop(), name="limits-lease-renewer")

    async def _renew_loop(self) -> None:
        while self._held:
            await asyncio.sleep(self._renew_every)
            try:
                await self.renew_now()
            except (RedisError, OSError) as exc:
                log.debug("stream lease renewal failed: %s", type(exc).__name__)

    async def close(self) -> None:
        renewer, self._renewer = self._renewer, None
        await stop_task(renewer)
