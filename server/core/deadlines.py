"""Deadlines for the work behind an RPC: its upstream calls end a margin before the RPC's own deadline, so what
was produced is stored and the status is ours (DEADLINE_EXCEEDED with details), not a transport cancellation."""

from __future__ import annotations

import time


def deadline_from(time_remaining: float | None, *, margin: float) -> float | None:
    """An absolute `time.monotonic()` deadline `margin` seconds (at most a tenth of the time left) before the
    RPC's; None when the RPC has no deadline."""
    if time_remaining is None:
        return None
    return time.monotonic() + time_remaining - min(margin, time_remaining * 0.1)
