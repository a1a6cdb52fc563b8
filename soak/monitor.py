"""Samples of the server's resident memory and asyncio task count, and the flatness judgement on them.

Both are sampled at a fixed interval while the load runs (RSS from /proc/<pid>/status VmRSS, the task
count from the server's Prometheus endpoint, `tutorstream_asyncio_tasks`), and at quiet points, when the
clients hold back and nothing is in flight. See the package docstring for the rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field

import httpx

from soak.server import ServerProcess

QUIET_SETTLE_SECONDS = 3.0
QUIET_SAMPLES = 5
QUIET_SAMPLE_GAP_SECONDS = 0.3


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    rss_bytes: int
    tasks: int | None


@dataclass(frozen=True, slots=True)
class Flatness:
    """One series judged: medians of the first and the last window after the warm-up, and the extremes."""

    name: str
    first: float
    last: float
    low: float
    high: float
    samples: int
    tolerance: float

    @property
    def drift(self) -> float:
        return self.last / self.first - 1.0 if self.first else float("inf")

    @property
    def passed(self) -> bool:
        return self.samples > 0 and abs(self.drift) <= self.tolerance


@dataclass
class Sampler:
    server: ServerProcess
    interval: float
    samples: list[Sample] = field(default_factory=list)
    quiet_points: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    async def sample(self, http: httpx.AsyncClient) -> Sample:
        tasks = await self.server.asyncio_tasks(http)
        return Sample(time.monotonic() - self.started, self.server.rss_bytes(), tasks)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient() as http:
            while not stop.is_set():
                self.samples.append(await self.sample(http))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)

    async def quiet_point(self) -> Sample:
        """With no call in flight: let the server settle (buffered writes go out every second), then the
        median of a few samples."""
        await asyncio.sleep(QUIET_SETTLE_SECONDS)
        taken: list[Sample] = []
        async with httpx.AsyncClient() as http:
            for _ in range(QUIET_SAMPLES):
                taken.append(await self.sample(http))
                await asyncio.sleep(QUIET_SAMPLE_GAP_SECONDS)
        counts = [sample.tasks for sample in taken if sample.tasks is not None]
        point = Sample(
            taken[0].at,
            int(statistics.median(sample.rss_bytes for sample in taken)),
            int(statistics.median(counts)) if counts else None,
        )
        self.quiet_points.append(point)
        return point


def windows(samples: list[Sample], warmup: float, window: float) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """(all samples after the warm-up, the first `window` seconds of them, the last `window` seconds)."""
    steady = [sample for sample in samples if sample.at >= warmup]
    if not steady:
        return [], [], []
    first = [sample for sample in steady if sample.at < steady[0].at + window]
    last = [sample for sample in steady if sample.at > steady[-1].at - window]
    return steady, first, last


def judge(name: str, values: list[float], first: list[float], last: list[float], tolerance: float) -> Flatness:
    if not values or not first or not last:
        return Flatness(name, 0.0, 0.0, 0.0, 0.0, 0, tolerance)
    return Flatness(
        name,
        statistics.median(first),
        statistics.median(last),
        min(values),
        max(values),
        len(values),
        tolerance,
    )


def flatness(
    samples: list[Sample], quiet_points: list[Sample], steady_from: float, window: float, tolerance: float
) -> tuple[Flatness, Flatness]:
    """RSS: medians of the first and last window of samples under load after `steady_from`. Tasks: the
    first and the last quiet point (nothing in flight); their extremes under load are shown for context."""
    steady, first, last = windows(samples, steady_from, window)
    rss = judge(
        "RSS under load (MiB)",
        [s.rss_bytes / 2**20 for s in steady],
        [s.rss_bytes / 2**20 for s in first],
        [s.rss_bytes / 2**20 for s in last],
        tolerance,
    )
    quiet_tasks = [float(point.tasks) for point in quiet_points if point.tasks is not None]
    under_load = [float(s.tasks) for s in steady if s.tasks is not None]
    if len(quiet_tasks) < 2 or not under_load:
        return rss, Flatness("asyncio tasks at rest", 0.0, 0.0, 0.0, 0.0, 0, tolerance)
    tasks = Flatness(
        "asyncio tasks at rest",
        quiet_tasks[0],
        quiet_tasks[-1],
        min(under_load),
        max(under_load),
        len(quiet_tasks),
        tolerance,
    )
    return rss, tasks
