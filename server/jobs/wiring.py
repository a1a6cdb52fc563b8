"""Which tasks exist: every process that defers or runs jobs builds its queue here, so the server and
`tutorstream-server worker` processes agree on task names."""

from __future__ import annotations

from server.analytics.jobs import register_analytics_jobs
from server.config import Settings
from server.core.db import Database
from server.embeddings.base import Embedder
from server.jobs.queue import JobQueue
from server.transcripts.asr_ingest import register_media_transcription
from server.transcripts.jobs import register_transcript_jobs


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
