"""Background work of the analytics domain, registered on the shared job queue (server/jobs): the insights
job (queued by GenerateInsights) and the periodic retention job.

Retention is queued by the workers' maintenance sweep at most every RETENTION_INTERVAL_SECONDS per worker
(and right after a worker starts); its queueing lock keeps a single copy queued however many workers there
are, and running it twice in a row is harmless (it deletes what is due).
"""

from __future__ import annotations

import logging
import time

from server.analytics.insights import GENERATE_TASK, InsightGenerator
from server.analytics.retention import run_retention
from server.config import Settings
from server.core.db import Database
from server.jobs.queue import AlreadyEnqueued, JobQueue

log = logging.getLogger("tutorstream.analytics")

QUEUE = "analytics"
RETENTION_TASK = "analytics.retention"


class AnalyticsJobs:
    def __init__(self, database: Database, queue: JobQueue, settings: Settings) -> None:
        self._db = database
        self._queue = queue
        self._settings = settings
        self._insights = InsightGenerator(database, settings)
        self._next_retention = 0.0

    def register(self) -> None:
        self._queue.register(GENERATE_TASK, self.generate_insights, queue=QUEUE)
        self._queue.register(RETENTION_TASK, self.retention, queue=QUEUE)
        self._queue.add_maintenance("analytics.schedule_retention", self.schedule_retention)

    async def generate_insights(self, user_id: str, course_id: str) -> None:
        visible = await self._insights.run(user_id, course_id)
        log.info("insights computed: %d visible", visible)

    async def retention(self) -> None:
        await run_retention(self._db, self._settings.interaction_retention_days)

    async def schedule_retention(self) -> None:
        now = time.monotonic()
        if now < self._next_retention:
            return
        self._next_retention = now + self._settings.retention_interval_seconds
        try:
            await self._queue.defer(RETENTION_TASK, queueing_lock=RETENTION_TASK)
        except AlreadyEnqueued:
            return


def register_analytics_jobs(queue: JobQueue, database: Database, settings: Settings) -> AnalyticsJobs:
    jobs = AnalyticsJobs(database, queue, settings)
    jobs.register()
    return jobs
