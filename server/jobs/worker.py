"""A job worker: procrastinate's worker loop plus the periodic maintenance sweep, as one start/stop unit.

The server runs one inside its process (RUN_WORKERS_IN_PROCESS); `tutorstream-server worker` runs one as
its whole job. Several may run against the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time

from server.config import Settings
from server.jobs.queue import JobQueue

logger = logging.getLogger(__name__)

CLEANUP_INTERVAL_SECONDS = 3600.0


class JobWorker:
    def __init__(self, queue: JobQueue, settings: Settings, *, name: str | None = None) -> None:
        self._queue = queue
        self._settings = settings
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self._worker_task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None
        self._last_cleanup: float | None = None

    @property
    def running(self) -> bool:
        return self._worker_task is not None and not self._worker_task.done()

    async def start(self) -> None:
        if self._worker_task is not None:
            return
        settings = self._settings
        self._worker_task = asyncio.create_task(
            self._queue.app.run_worker_async(
                queues=self._queue.queues,
                name=self.name,
                concurrency=settings.job_concurrency,
                fetch_job_polling_interval=settings.job_poll_seconds,
                abort_job_polling_interval=settings.job_poll_seconds,
                shutdown_graceful_timeout=settings.job_shutdown_grace_seconds,
                install_signal_handlers=False,
                update_heartbeat_interval=settings.job_heartbeat_seconds,
                stalled_worker_timeout=settings.job_stalled_seconds,
            ),
            name=f"job-worker-{self.name}",
        )
        self._sweep_task = asyncio.create_task(self._sweep_forever(), name=f"job-sweep-{self.name}")
        logger.info("job worker %s started on queues %s", self.name, ",".join(self._queue.queues))

    async def stop(self) -> None:
        """Stop fetching jobs; running jobs get JOB_SHUTDOWN_GRACE_SECONDS, then are aborted (and retried
        by whichever worker runs next)."""
        sweep, self._sweep_task = self._sweep_task, None
        worker, self._worker_task = self._worker_task, None
        for task in (sweep, worker):
            if task is None or task.done():
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        logger.info("job worker %s stopped", self.name)

    async def wait(self) -> None:
        """Until the worker loop ends (it only ends by stop() or a fatal error, which is raised here)."""
        if self._worker_task is not None:
            await self._worker_task

    async def sweep(self) -> None:
        """One maintenance pass: retry jobs of stalled workers, then each domain's hook; about hourly, also
        delete old finished queue entries."""
        try:
            await self._queue.retry_stalled()
        except Exception:
            logger.exception("job sweep: retrying stalled jobs failed")
        if self._last_cleanup is None or time.monotonic() - self._last_cleanup >= CLEANUP_INTERVAL_SECONDS:
            self._last_cleanup = time.monotonic()
            try:
                await self._queue.delete_finished()
            except Exception:
                logger.exception("job sweep: deleting old finished jobs failed")
        for name, hook in self._queue.maintenance:
            try:
                await hook()
            except Exception:
                logger.exception("job sweep: %s failed", name)

    async def _sweep_forever(self) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(self._settings.job_sweep_seconds)
