"""GCRA (generic cell rate algorithm) and the in-process limiter built on it.

A limit of `limit` calls per `period` is one "theoretical arrival time" (TAT) per key: each admitted
call pushes the TAT forward by `interval = period / limit`; a call is admitted while the TAT stays
within `period` of now. So a quiet user may burst `limit` calls, after which calls are admitted at
the steady rate. All times are integer microseconds. The Redis Lua script in `redis_limiter` is the
same arithmetic, so both backends admit exactly the same sequences.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

from server.limits.policy import RateLimit

MICROS = 1_000_000


@dataclass(frozen=True)
class Cell:
    """A rate limit in the integer microseconds the algorithm works in."""

    interval: int
    limit: int

    @property
    def period(self) -> int:
        return self.interval * self.limit

    @classmethod
    def of(cls, rate: RateLimit) -> Cell:
        return cls(interval=max(1, round(rate.period_seconds * MICROS / rate.limit)), limit=rate.limit)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int  # microseconds until a call would be admitted (0 when allowed)
    reset_after: int  # microseconds until the full limit is available again


def gcra(tat: int | None, now: int, cell: Cell, cost: int = 1) -> tuple[Decision, int]:
    """Decide one call of `cost` (0 peeks) at `now`; returns the decision and the TAT to store."""
    current = now if tat is None or tat < now else tat
    new_tat = current + cell.interval * cost
    allow_at = new_tat - cell.period
    if now < allow_at:
        return Decision(False, 0, allow_at - now, current - now), current
    remaining = (cell.period - (new_tat - now)) // cell.interval
    return Decision(True, remaining, 0, new_tat - now), new_tat


class Outcome(Enum):
    ADMITTED = "admitted"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_STREAMS = "too_many_streams"


@dataclass(frozen=True)
class Admission:
    outcome: Outcome
    retry_after: int = 0  # microseconds
    remaining: int = -1  # calls left in the rate limit; -1 when no rate limit applied


ADMITTED_UNLIMITED = Admission(Outcome.ADMITTED)
TOO_MANY_STREAMS = Admission(Outcome.TOO_MANY_STREAMS)


def now_micros() -> int:
    return time.monotonic_ns() // 1000


class LocalLimiter:
    """The same limits inside one process (no Redis, or Redis is down). Single-threaded: every
    operation completes without awaiting, so the event loop makes check-and-update atomic."""

    _SWEEP_EVERY = 4096

    def __init__(self) -> None:
        self._tats: dict[str, int] = {}
        self._leases: dict[str, set[str]] = {}
        self._calls = 0

    async def admit(
        self, rate_key: str, cell: Cell | None, lease_key: str, max_leases: int, lease_id: str
    ) -> Admission:
        return self.admit_now(rate_key, cell, lease_key, max_leases, lease_id)

    def admit_now(self, rate_key: str, cell: Cell | None, lease_key: str, max_leases: int, lease_id: str) -> Admission:
        holders = self._leases.get(lease_key) if max_leases > 0 else None
        if holders is not None and len(holders) >= max_leases:
            return TOO_MANY_STREAMS
        admission = ADMITTED_UNLIMITED
        if cell is not None:
            now = now_micros()
            decision, tat = gcra(self._tats.get(rate_key), now, cell)
            if not decision.allowed:
                return Admission(Outcome.RATE_LIMITED, retry_after=decision.retry_after)
            self._tats[rate_key] = tat
            admission = Admission(Outcome.ADMITTED, remaining=decision.remaining)
            self._sweep(now)
        if max_leases > 0:
            self._leases.setdefault(lease_key, set()).add(lease_id)
        return admission

    async def release(self, lease_key: str, lease_id: str) -> None:
        holders = self._leases.get(lease_key)
        if holders is not None:
            holders.discard(lease_id)
            if not holders:
                del self._leases[lease_key]

    async def peek(self, keyed: list[tuple[str, Cell]]) -> list[Decision]:
        now = now_micros()
        return [gcra(self._tats.get(key), now, cell, cost=0)[0] for key, cell in keyed]

    def _sweep(self, now: int) -> None:
        self._calls += 1
        if self._calls % self._SWEEP_EVERY == 0:
            self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
