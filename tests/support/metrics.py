"""Reading the server's Prometheus counters in process (tests run the server in the test's own process)."""

from __future__ import annotations

from prometheus_client import REGISTRY


def counter_value(name: str, **labels: str) -> float:
    """The counter's current value for `labels` (0 before its first increment)."""
    return REGISTRY.get_sample_value(f"{name}_total", labels) or 0.0
