"""One soak run: bring up the stack, seed lectures, run the load with the fault schedule, then judge."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.config import Settings
from soak.ledger import Ledger
from soak.load import (
    COURSE_ID,
    AgentWorker,
    AnalyticsWorker,
    ChatWorker,
    Gate,
    IngestWorker,
    Pacing,
    Worker,
    ingest,
    lecture_id,
    transcript_vtt,
)
from soak.monitor import Sample, Sampler, flatness
from soak.result import SoakResult
from soak.server import JWT_SECRET, ServerProcess
from soak.upstream import FaultyUpstream
from soak.verify import verify
from soak.watching import PublishWorker, WatchWorker
from tests.support.clients import Client, connect, token_for
from tests.support.postgres import create_migrated_database, start_embedded_for_tests
from tests.support.redis_server import RedisServer

SETUP_ATTEMPTS = 5
DRAIN_SECONDS = 90.0


@dataclass(frozen=True)
class SoakConfig:
    seconds: float = 600.0
    seed: int = 20251123
    chat_workers: int = 4
    agent_workers: int = 2
    publish_workers: int = 1
    watch_workers: int = 2
    analytics_workers: int = 1
    ingest_workers: int = 1
    lectures: int = 3
    redis_down_seconds: float = 3.0
    tolerance: float = 0.10
    pacing: Pacing = field(default_factory=Pacing)

    @property
    def warmup(self) -> float:
        return max(10.0, 0.2 * self.seconds)

    @property
    def window(self) -> float:
        return max(5.0, 0.2 * (self.seconds - self.warmup))

    @property
    def sample_interval(self) -> float:
        return min(5.0, max(0.5, self.seconds / 120.0))


@contextlib.contextmanager
def database(workdir: Path, database_url: str | None) -> Iterator[str]:
    """The given database, or a fresh migrated one on an embedded PostgreSQL of the run's own."""
    if database_url is not None:
        yield database_url
        return
    embedded = start_embedded_for_tests(workdir)
    try:
        yield create_migrated_database(embedded.admin_url, "soak")
    finally:
        embedded.stop()


@contextlib.asynccontextmanager
async def clients(target: str) -> AsyncIterator[Callable[[str, str], Client]]:
    settings = Settings(_env_file=None, jwt_secret=JWT_SECRET)
    opened: list[Client] = []

    def open_client(user_id: str, role: str = "student") -> Client:
        """Instructors teach the soak's course, as the `courses` claim an LMS issues says."""
        courses = [COURSE_ID] if role == "instructor" else None
        client = connect(target, token_for(settings, user_id, role, courses=courses), user_id)
        opened.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in opened:
            await client.close()


async def restart_redis(redis: RedisServer, at: float, down: float, faults: dict[str, float], ledger: Ledger) -> None:
    """Stop Redis at `at` seconds into the load, start it again on the same port `down` seconds later."""
    await asyncio.sleep(at)
    await asyncio.to_thread(redis.stop)
    stopped = time.monotonic()
    await asyncio.sleep(down)
    await asyncio.to_thread(redis.start)
    ledger.redis_back_at = time.monotonic()
    faults["redis restarts"] = faults.get("redis restarts", 0) + 1
    faults["redis down (s)"] = round(time.monotonic() - stopped, 1)
    faults["redis stopped at (s into the load)"] = round(at, 1)


async def seed_lectures(client: Client, ledger: Ledger, lectures: int) -> None:
    for index in range(lectures):
        for _ in range(SETUP_ATTEMPTS):
            if await ingest(client, ledger, lecture_id(index), transcript_vtt(index, "lecture")):
                break
        else:
            raise RuntimeError(f"could not ingest {lecture_id(index)} in {SETUP_ATTEMPTS} attempts")


async def first_quiet_point(sampler: Sampler, gate: Gate, workers: int, warmup: float) -> float:
    """After the warm-up, hold the clients for a quiet point; returns when the steady phase starts (s)."""
    await asyncio.sleep(warmup)
    await gate.close(workers)
    try:
        await sampler.quiet_point()
    finally:
        gate.open()
    return time.monotonic() - sampler.started


def samples_csv(samples: Sequence[Sample], quiet_points: Sequence[Sample] = ()) -> str:
    rows = [("under load", sample) for sample in samples] + [("at rest", point) for point in quiet_points]
    lines = ["phase,seconds,rss_mib,asyncio_tasks"]
    lines += [f"{phase},{s.at:.1f},{s.rss_bytes / 2**20:.1f},{s.tasks}" for phase, s in rows]
    return "\n".join(lines) + "\n"


def write_samples(path: Path, sampler: Sampler) -> None:
    path.write_text(samples_csv(sampler.samples, sampler.quiet_points))


async def drain(tasks: list[asyncio.Task[None]]) -> bool:
    """Wait for the workers to finish their last call; True when all did within DRAIN_SECONDS."""
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return not pending


async def run_soak(config: SoakConfig, workdir: Path, database_url: str | None = None) -> SoakResult:
    """Run the soak in `workdir` (logs, server data); on `database_url` if given (a migrated, empty database),
    else on an embedded PostgreSQL of its own."""
    upstream = FaultyUpstream(config.seed).start()
    redis = RedisServer().start()
    try:
        with database(workdir, database_url) as url:
            server = ServerProcess(
                workdir, database_url=url, redis_url=redis.url, upstream_url=upstream.base_url, api_key=upstream.api_key
            )
            server.start()
            try:
                return await _run(config, server, redis, upstream, url)
            finally:
                server.kill()
    finally:
        redis.stop()
        upstream.stop()


async def _run(
    config: SoakConfig, server: ServerProcess, redis: RedisServer, upstream: FaultyUpstream, database_url: str
) -> SoakResult:
    await server.wait_serving()
    ledger = Ledger()
    faults: dict[str, float] = {}
    async with clients(server.target) as open_client:
        await seed_lectures(open_client("soak-instructor", "instructor"), ledger, config.lectures)
        stop = asyncio.Event()
        gate = Gate()
        workers: list[Worker] = []
        kinds: list[tuple[type[Worker], int, str]] = [
            (ChatWorker, config.chat_workers, "student"),
            (AgentWorker, config.agent_workers, "student"),
            (PublishWorker, config.publish_workers, "student"),
            (WatchWorker, config.watch_workers, "student"),
            (AnalyticsWorker, config.analytics_workers, "student"),
            (IngestWorker, config.ingest_workers, "instructor"),
        ]
        for kind, count, role in kinds:
            for index in range(count):
                name = f"soak-{kind.__name__.removesuffix('Worker').lower()}-{index}"
                workers.append(
                    kind(name, open_client(name, role), ledger, stop, gate, config.seed, config.pacing, config.lectures)
                )
        sampler = Sampler(server, config.sample_interval)
        started = time.monotonic()
        tasks = [asyncio.create_task(_named(worker.name, worker.run())) for worker in workers]
        steady = asyncio.create_task(first_quiet_point(sampler, gate, len(workers), config.warmup))
        background = [
            steady,
            asyncio.create_task(sampler.run(stop)),
            asyncio.create_task(restart_redis(redis, config.seconds / 2, config.redis_down_seconds, faults, ledger)),
        ]
        try:
            await _watch_until(tasks, config.seconds)
        finally:
            stop.set()
            seconds_run = time.monotonic() - started
            drained = await drain(tasks)
            await asyncio.gather(*background)
        await sampler.quiet_point()
        health = await server.health()
    exit_code = server.terminate()
    tallies = await asyncio.to_thread(verify, database_url, ledger)
    steady_at = steady.result()
    rss, tasks_series = flatness(sampler.samples, sampler.quiet_points, steady_at, config.window, config.tolerance)
    await asyncio.to_thread(write_samples, server.log_path.parent / "samples.csv", sampler)
    log_levels, log_errors = server.log_levels()
    faults.update(upstream.counts())
    return SoakResult(
        seconds_planned=config.seconds,
        seconds_run=seconds_run,
        warmup_seconds=config.warmup,
        window_seconds=config.window,
        statuses=ledger.statuses,
        tallies=tallies,
        rss=rss,
        tasks=tasks_series,
        faults=faults,
        notes=ledger.notes,
        ok_after_redis_restart=ledger.ok_after_redis_restart,
        health_at_end=health,
        exit_code=exit_code,
        drained=drained,
        log_levels=log_levels,
        log_errors=log_errors,
        samples=list(sampler.samples),
        steady_at=steady_at,
    )


async def _named(name: str, work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except Exception as error:
        raise RuntimeError(f"soak worker {name} failed") from error


async def _watch_until(tasks: list[asyncio.Task[None]], seconds: float) -> None:
    """Let the load run for `seconds`; a worker that fails (a bug in the soak itself) ends the run early."""
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()
