"""SQL of course ownership (`course_instructors`): grants, whether a course is known, and the per-course lock."""

from __future__ import annotations

from sqlalchemy import delete, exists, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.transcripts.models import CourseInstructor, IngestJob, Transcript


async def lock_course(session: AsyncSession, course_id: str) -> None:
    """Serialise ownership changes of one course until the transaction ends."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('courses'), hashtext(:course))"), {"course": course_id}
    )


async def grant_of(session: AsyncSession, course_id: str, user_id: str) -> str | None:
    """The user's role in the course, or None when they hold no grant on it."""
    return (
        await session.execute(
            select(CourseInstructor.role).where(
                CourseInstructor.course_id == course_id, CourseInstructor.user_id == user_id
            )
        )
    ).scalar_one_or_none()


async def course_known(session: AsyncSession, course_id: str) -> bool:
    """Whether the course has a grant, a transcript or an ingest job."""
    statement = select(
        or_(
            exists().where(CourseInstructor.course_id == course_id),
            exists().where(Transcript.course_id == course_id),
            exists().where(IngestJob.course_id == course_id),
        )
    )
    return bool((await session.execute(statement)).scalar_one())


async def claim_course(session: AsyncSession, course_id: str, user_id: str, *, role: str) -> None:
    """The user becomes the first holder of a grant on the course (granted by themselves)."""
    await session.execute(
        insert(CourseInstructor).values(course_id=course_id, user_id=user_id, role=role, granted_by=user_id)
    )


async def list_instructors(
    session: AsyncSession, course_id: str, *, after: str | None, limit: int
) -> list[CourseInstructor]:
    """The course's grants by user id, those after `after` (a user id) when given."""
    statement = (
        select(CourseInstructor)
        .where(CourseInstructor.course_id == course_id)
        .order_by(CourseInstructor.user_id)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(CourseInstructor.user_id > after)
    return list((await session.execute(statement)).scalars())


async def insert_grant(
    session: AsyncSession, course_id: str, user_id: str, *, role: str, granted_by: str
) -> CourseInstructor | None:
    """Grant `role` on the course unless the user already holds a grant on it (then None)."""
    inserted = await session.execute(
        insert(CourseInstructor)
        .values(course_id=course_id, user_id=user_id, role=role, granted_by=granted_by)
        .on_conflict_do_nothing(index_elements=[CourseInstructor.course_id, CourseInstructor.user_id])
        .returning(CourseInstructor)
    )
    return inserted.scalar_one_or_none()


async def count_with_role(session: AsyncSession, course_id: str, role: str) -> int:
    statement = select(func.count()).where(CourseInstructor.course_id == course_id, CourseInstructor.role == role)
    return int((await session.execute(statement)).scalar_one())


async def delete_grant(session: AsyncSession, course_id: str, user_id: str) -> None:
    await session.execute(
        delete(CourseInstructor).where(CourseInstructor.course_id == course_id, CourseInstructor.user_id == user_id)
    )
