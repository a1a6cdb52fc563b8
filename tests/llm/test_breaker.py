"""CircuitBreaker state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from server.llm.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, cooldown_seconds=30.0, clock=clock)


def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()


def test_starts_closed_and_allows_calls(breaker: CircuitBreaker) -> None:
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))
    assert breaker.retry_after_seconds() == 0.0


def test_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()

    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_seconds() == pytest.approx(30.0)


def test_a_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_stays_open_until_the_cooldown_elapses(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(29.9)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after_seconds() == pytest.approx(0.1)

    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_lets_exactly_one_trial_through(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()
    assert not breaker.allow()


def test_successful_trial_closes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.allow() and breaker.allow()


def test_failed_trial_reopens_with_a_fresh_cooldown(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow()
    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.advance(29)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_an_abandoned_trial_does_not_wedge_the_breaker(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow()  # the trial's caller never reports back (it was cancelled, say)
    clock.advance(10)
    assert not breaker.allow()
    clock.advance(20)
    assert breaker.allow()


def test_single_failure_threshold(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cooldown_seconds=5.0, clock=clock)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.advance(5)
    assert breaker.allow()
    assert not breaker.allow()


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (-1, 1.0), (1, -0.5)])
def test_rejects_nonsense_configuration(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=threshold, cooldown_seconds=cooldown)
