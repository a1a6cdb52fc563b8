"""`tutorstream-server worker`: a process that only runs background jobs; and which tasks exist — every
process that defers or runs jobs builds its queue with `open_job_queue`, so the server and worker processes
agree on task names. Wiring that touches every domain lives here, above them, beside `app.py`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from server.analytics.jobs import register_analytics_jobs
from server.config import Settings
from server.core.db import Database
from server.embeddings.base import Embedder
from server.embeddings.factory import build_embedder
from server.jobs.queue import JobQueue
from server.jobs.worker import JobWorker
from server.transcripts.asr_ingest import register_media_transcription
from server.transcripts.jobs import register_transcript_jobs

logger = logging.getLogger(__name__)


async def open_job_queue(settings: Settings, database: Database, embedder: Embedder) -> JobQueue:
    """A queue with every domain's tasks registered, opened, with each domain's startup checks done."""
    queue = JobQueue(settings, database.url)
    transcripts = register_transcript_jobs(queue, database, embedder, settings)
    register_media_transcription(transcripts, queue, database, settings)
    register_analytics_jobs(queue, database, settings)
    await queue.open()
    try:
        await transcripts.prepare()
    except BaseException:
        await queue.close()
        raise
    return queue


@dataclass
class JobProcess:
    """What a process that runs jobs outside the server holds: the database, the embedder, the queue."""

    database: Database
    embedder: Embedder
    queue: JobQueue


@contextlib.asynccontextmanager
async def job_process(settings: Settings) -> AsyncIterator[JobProcess]:
    """Open (migrating first when MIGRATE_ON_START) and, on the way out, close what a job process holds."""
    database = await Database.from_settings(settings)
    embedder = build_embedder(settings)
    try:
        if settings.migrate_on_start:
            await database.run_migrations()
        queue = await open_job_queue(settings, database, embedder)
        try:
            yield JobProcess(database, embedder, queue)
        finally:
            await queue.close()
    finally:
        await embedder.aclose()
        await database.dispose()


async def run_worker_process(settings: Settings) -> None:
    """Run jobs until SIGTERM/SIGINT; then running jobs get JOB_SHUTDOWN_GRACE_SECONDS to finish."""
    async with job_process(settings) as process:
        worker = JobWorker(process.queue, settings)
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
