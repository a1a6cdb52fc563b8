"""The bundled demo course, ingested through the normal ingest service and jobs (as the service role), and its
synthetic activity for the instructor dashboard (`server/demo/activity.py`)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid

from sqlalchemy import func, select

from server.config import Settings
from server.core.auth import Principal, Role, Tier
from server.core.db import Database
from server.demo import DemoCourse, load_demo_course
from server.demo.activity import seed_demo_activity
from server.jobs.worker import JobWorker
from server.transcripts.domain import JobView
from server.transcripts.models import Transcript
from server.transcripts.search import TranscriptSearch
from server.transcripts.service import IngestRequest, TranscriptService
from server.worker import job_process

logger = logging.getLogger(__name__)

SEED_PRINCIPAL = Principal(user_id="tutorstream-seed", role=Role.SERVICE, tier=Tier.SERVICE)


async def demo_course_present(database: Database) -> bool:
    course = load_demo_course()
    async with database.session() as session:
        count = (
            await session.execute(
                select(func.count()).select_from(Transcript).where(Transcript.course_id == course.course_id)
            )
        ).scalar_one()
    return int(count) >= len(course.videos)


async def seed_demo_course(service: TranscriptService, *, wait: bool = True) -> list[JobView]:
    """Ingest every demo video; with `wait`, return the jobs once they have all ended. Unchanged videos
    finish at once (content hash), so seeding twice does no work the second time."""
    return await seed_course(service, load_demo_course(), wait=wait)


async def seed_course(service: TranscriptService, course: DemoCourse, *, wait: bool = True) -> list[JobView]:
    """Ingest every video of a course in the demo's layout (see `seed_demo_course`)."""
    jobs: list[JobView] = []
    for video in course.videos:
        digest = hashlib.sha256(video.vtt.encode()).hexdigest()[:12]
        request = IngestRequest(
            request_id=f"seed-{video.video_id}-{digest}-{uuid.uuid4().hex[:8]}",
            video_id=video.video_id,
            course_id=course.course_id,
            title=video.title,
            format="webvtt",
            content=video.vtt,
            language="en",
            duration_seconds=video.duration_seconds,
        )
        jobs.append(await service.ingest(SEED_PRINCIPAL, request))
    if not wait:
        return jobs
    finished: list[JobView] = []
    for job in jobs:
        last = job
        async for update in service.watch_job(SEED_PRINCIPAL, job.job_id):
            last = update
        finished.append(last)
    return finished


async def seed_demo_if_absent(service: TranscriptService, database: Database) -> None:
    """`serve` with SEED_DEMO_ON_START: queue the demo course and write its synthetic activity, each unless it
    is already there (never raises)."""
    try:
        if not await demo_course_present(database):
            jobs = await seed_demo_course(service, wait=False)
            logger.info("demo course queued for ingest: %s", ", ".join(job.video_id for job in jobs))
        if await seed_demo_activity(database):
            logger.info("synthetic activity written for the demo course")
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("seeding the demo course failed")


async def seed_demo_main(settings: Settings) -> list[JobView]:
    """`tutorstream-server seed-demo`: ingest the demo course and wait for it, then write its synthetic activity
    unless it is there. Jobs run in this process unless RUN_WORKERS_IN_PROCESS is false (then running `worker`
    processes pick them up)."""
    async with job_process(settings) as process:
        worker = JobWorker(process.queue, settings) if settings.run_workers_in_process else None
        try:
            if worker is not None:
                await worker.start()
            search = TranscriptSearch(process.database, process.embedder)
            service = TranscriptService(process.database, search, process.queue, settings)
            jobs = await seed_demo_course(service, wait=True)
            await seed_demo_activity(process.database)
            return jobs
        finally:
            if worker is not None:
                await worker.stop()
