"""A consecutive-failure circuit breaker with a single half-open trial.

closed ──N consecutive failures──► open ──cooldown elapsed──► half-open (one trial call)
   ▲                                 ▲                              │
   └──────────── success ────────────┼──────────────────────────────┤
                                     └────────── failure ───────────┘

Pure and deterministic: time comes from the injected `clock`, so tests drive it with a fake one. It is meant
to be used from one event loop (no locking): `allow()` before the call, then exactly one of
`record_success()` / `record_failure()` after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown_seconds < 0:
            raise ValueError("cooldown_seconds must not be negative")
        self._threshold = failure_threshold
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        # When the half-open trial was handed out; None while no trial is in flight.
        self._trial_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """The state as of now: an open breaker whose cooldown has elapsed reads as half-open."""
        if self._state is BreakerState.OPEN and self._cooldown_elapsed():
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    def retry_after_seconds(self) -> float:
        """Time until an open breaker lets a trial call through (0.0 when calls are allowed now)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - self._clock())

    def allow(self) -> bool:
        """May a call go upstream now? In half-open, only the first caller gets the trial."""
        if self._state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if self._state is BreakerState.OPEN:
            if not self._cooldown_elapsed():
                return False
            self._state = BreakerState.HALF_OPEN
            self._trial_started_at = now
            return True
        # Half-open. A trial whose outcome was never recorded (its caller was cancelled, say) must not wedge
        # the breaker: after another cooldown the next caller gets a fresh trial.
        if self._trial_started_at is None or now - self._trial_started_at >= self._cooldown:
            self._trial_started_at = now
            return True
        return False

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._trial_started_at = None

    def record_failure(self) -> None:
        self._consecutive_failures += 1
        if self._state is BreakerState.CLOSED and self._consecutive_failures < self._threshold:
            return
        # Threshold reached, or a half-open trial failed: (re)open and restart the cooldown.
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._trial_started_at = None

    def _cooldown_elapsed(self) -> bool:
        return self._clock() - self._opened_at >= self._cooldown
