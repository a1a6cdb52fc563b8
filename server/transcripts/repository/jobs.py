"""SQL of ingest jobs (`ingest_jobs`): creating, starting, progressing, finishing and recovering them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from server.transcripts.models import IngestJob

ACTIVE_STATES = ("queued", "running")
TERMINAL_STATES = ("succeeded", "failed")


async def get_job(session: AsyncSession, job_id: str, *, with_content: bool = False) -> IngestJob | None:
    statement = select(IngestJob).where(IngestJob.id == job_id)
    if with_content:
        statement = statement.options(undefer(IngestJob.content))
    return (await session.execute(statement)).scalar_one_or_none()


async def find_job_by_request(session: AsyncSession, requested_by: str, request_id: str) -> IngestJob | None:
    statement = select(IngestJob).where(IngestJob.requested_by == requested_by, IngestJob.request_id == request_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_job(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert unless (requested_by, request_id) exists; True when this call inserted it."""
    statement = (
        pg_insert(IngestJob)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_ingest_jobs_requested_by")
        .returning(IngestJob.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def update_job(session: AsyncSession, job_id: str, **values: Any) -> None:
    await session.execute(update(IngestJob).where(IngestJob.id == job_id).values(**values, update_time=func.now()))


async def start_job(session: AsyncSession, job_id: str, *, stage: str) -> IngestJob | None:
    """Mark a job RUNNING at `stage` and count the attempt, in one statement; the job with its content, or
    None when it has ended (or kept no content to work on)."""
    columns = list(inspect(IngestJob).columns)
    row = (
        await session.execute(
            update(IngestJob)
            .where(IngestJob.id == job_id, IngestJob.state.in_(ACTIVE_STATES), IngestJob.content.is_not(None))
            .values(
                state="running",
                stage=stage,
                completed_units=0,
                total_units=0,
                attempts=IngestJob.attempts + 1,
                update_time=func.now(),
            )
            .returning(*columns)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    return IngestJob(**{column.key: value for column, value in zip(columns, row, strict=True)})


async def finish_job(session: AsyncSession, job_id: str, *, total_units: int, warnings: Sequence[str] = ()) -> bool:
    """Mark an active job SUCCEEDED with what it repaired or left out (and drop its content); False when it
    had already ended."""
    result = await session.execute(
        update(IngestJob)
        .where(IngestJob.id == job_id, IngestJob.state.in_(ACTIVE_STATES))
        .values(
            state="succeeded",
            stage="done",
            completed_units=total_units,
            total_units=total_units,
            error_message="",
            warnings=list(warnings),
            content=None,
            update_time=func.now(),
        )
        .returning(IngestJob.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def has_active_job(session: AsyncSession, video_id: str, *, other_than: str | None = None) -> bool:
    statement = select(func.count()).where(IngestJob.video_id == video_id, IngestJob.state.in_(ACTIVE_STATES))
    if other_than is not None:
        statement = statement.where(IngestJob.id != other_than)
    return bool((await session.execute(statement)).scalar_one())


async def lost_jobs(session: AsyncSession, older_than_seconds: float) -> list[tuple[str, str, int, int | None]]:
    """Active jobs whose queue entry is gone or finished: (id, video_id, attempts, queue job id)."""
    rows = await session.execute(
        text(
            "SELECT j.id, j.video_id, j.attempts, j.queue_job_id FROM ingest_jobs j "
            "LEFT JOIN procrastinate_jobs q ON q.id = j.queue_job_id "
            "WHERE j.state IN ('queued', 'running') "
            "AND j.update_time < now() - make_interval(secs => :older_than) "
            "AND (q.id IS NULL OR q.status IN ('succeeded', 'failed', 'aborted', 'cancelled')) "
            "ORDER BY j.create_time LIMIT 100"
        ),
        {"older_than": older_than_seconds},
    )
    return [(row.id, row.video_id, int(row.attempts), row.queue_job_id) for row in rows]


async def claim_lost_job(session: AsyncSession, job_id: str, queue_job_id: int | None) -> bool:
    """Lock a lost job (until the transaction ends) if it is still active with the same queue entry and no
    other sweep holds it; False otherwise."""
    claimed = (
        await session.execute(
            select(IngestJob.id)
            .where(
                IngestJob.id == job_id,
                IngestJob.state.in_(ACTIVE_STATES),
                IngestJob.queue_job_id.is_not_distinct_from(queue_job_id),
            )
            .with_for_update(skip_locked=True)
        )
    ).first()
    return claimed is not None


async def active_job_ids(session: AsyncSession, job_ids: Sequence[str]) -> set[str]:
    """Which of these jobs are still active."""
    return set(
        (
            await session.execute(
                select(IngestJob.id).where(IngestJob.id.in_(list(job_ids)), IngestJob.state.in_(ACTIVE_STATES))
            )
        ).scalars()
    )
