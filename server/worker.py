"""`tutorstream-server worker`: a process that only runs background jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from server.config import Settings
from server.core.db import Database
from server.embeddings.factory import build_embedder
from server.jobs.wiring import open_job_queue
from server.jobs.worker import JobWorker

logger = logging.getLogger(__name__)


async def run_worker_process(settings: Settings) -> None:
    """Run jobs until SIGTERM/SIGINT; then running jobs get JOB_SHUTDOWN_GRACE_SECONDS to finish."""
    database = await Database.from_settings(settings)
    embedder = build_embedder(settings)
    try:
        if settings.migrate_on_start:
            await database.run_migrations()
        queue = await open_job_queue(settings, database, embedder)
        try:
            worker = JobWorker(queue, settings)
            await worker.start()
            stop_requested = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop_requested.set)
            waiter = asyncio.create_task(stop_requested.wait())
            runner = asyncio.create_task(worker.wait())
            try:
                await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                logger.info("worker shutting down")
                await worker.stop()
                if runner.done() and not runner.cancelled():
                    with contextlib.suppress(asyncio.CancelledError):
                        runner.result()
                else:
                    runner.cancel()
        finally:
            await queue.close()
    finally:
        await embedder.aclose()
        await database.dispose()
