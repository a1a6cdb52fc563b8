"""The background job queue: procrastinate on the application's PostgreSQL.

Domains register their tasks here by name; the same registrations exist in the server process (which defers
jobs, and runs workers unless told not to) and in `tutorstream-server worker` processes. Jobs can be
deferred inside the caller's SQLAlchemy transaction, so a job row and its queue entry commit together.

Robustness: a worker that is killed mid-job stops sending heartbeats; `retry_stalled()` (run periodically by
every worker, see server.jobs.worker) puts such jobs back in the queue. A worker that shuts down gracefully
lets running jobs finish for `JOB_SHUTDOWN_GRACE_SECONDS`, then aborts them, and an aborted job is retried.
Tasks must therefore be idempotent: running one twice gives the same result as running it once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import procrastinate
from procrastinate import exceptions as procrastinate_exceptions
from procrastinate.psycopg_connector import PsycopgConnector
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.core.db import libpq_conninfo

logger = logging.getLogger(__name__)

TaskFunction = Callable[..., Awaitable[None]]
Maintenance = Callable[[], Awaitable[None]]

AlreadyEnqueued = procrastinate_exceptions.AlreadyEnqueued
# Finished queue entries are kept this long (for inspection), then deleted. Domain tables (e.g. ingest_jobs)
# keep their own records.
FINISHED_JOB_RETENTION_HOURS = 72


class JobQueue:
    """A procrastinate App plus the maintenance hooks every worker runs periodically."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self._settings = settings
        self.app = procrastinate.App(
            connector=PsycopgConnector(
                conninfo=libpq_conninfo(database_url), min_size=1, max_size=settings.job_pool_size
            )
        )
        self._tasks: dict[str, Any] = {}
        self._queues: set[str] = set()
        self._maintenance: list[tuple[str, Maintenance]] = []
        self._open = False

    @property
    def queues(self) -> list[str]:
        return sorted(self._queues)

    @property
    def maintenance(self) -> list[tuple[str, Maintenance]]:
        return list(self._maintenance)

    def register(self, name: str, func: TaskFunction, *, queue: str) -> None:
        """Register `func` as task `name`. A job that fails with an exception, or is aborted by a worker
        shutdown, is retried up to JOB_MAX_ATTEMPTS times; tasks report their own domain failures."""
        strategy = procrastinate.RetryStrategy(max_attempts=self._settings.job_max_attempts, wait=1, exponential_wait=2)
        self._tasks[name] = self.app.task(name=name, queue=queue, retry=strategy)(func)
        self._queues.add(queue)

    def add_maintenance(self, name: str, hook: Maintenance) -> None:
        """`hook` runs every JOB_SWEEP_SECONDS in every worker (it must tolerate running concurrently)."""
        self._maintenance.append((name, hook))

    async def open(self) -> None:
        if not self._open:
            await self.app.open_async()
            self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self.app.close_async()

    async def defer(
        self,
        name: str,
        *,
        session: AsyncSession | None = None,
        lock: str | None = None,
        queueing_lock: str | None = None,
        **kwargs: Any,
    ) -> int:
        """Queue a job of task `name`; with `session`, inside that session's transaction (it commits or rolls
        back with it). Jobs with the same `lock` run one at a time, in the order they were deferred."""
        options: dict[str, Any] = {"lock": lock, "queueing_lock": queueing_lock}
        if session is not None:
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            options["connection"] = raw.driver_connection
        job_id: int = await self._tasks[name].configure(**options).defer_async(**kwargs)
        return job_id

    async def retry_stalled(self) -> int:
        """Put jobs of workers without a recent heartbeat back in the queue; returns how many."""
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=self._settings.job_stalled_seconds)
        retried = 0
        for job in stalled:
            try:
                await manager.retry_job(job)
            except procrastinate_exceptions.ConnectorException:
                # Another worker retried it first.
                continue
            retried += 1
            logger.warning("retrying job %s (%s) of a stalled worker", job.id, job.task_name)
        return retried

    async def delete_finished(self, older_than_hours: int = FINISHED_JOB_RETENTION_HOURS) -> None:
        """Drop queue entries that ended (in any way) more than `older_than_hours` ago."""
        await self.app.job_manager.delete_old_jobs(
            nb_hours=older_than_hours, include_failed=True, include_cancelled=True, include_aborted=True
        )
