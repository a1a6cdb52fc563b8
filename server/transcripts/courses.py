"""Course ownership: who may change a course's transcripts and read its analytics.

- Services may do anything; students nothing (PERMISSION_DENIED, `INSTRUCTOR_ROLE_REQUIRED`).
- An instructor teaches a course when the course is in their token's `courses` claim (as an LMS issues it) or
  when they hold a grant on it (`course_instructors`).
- The first instructor to ingest into a course nobody knows yet (no grants, transcripts or ingest jobs) becomes
  its owner. A course only services ingested (the demo course) has no owner until a service grants one.
- Owners and services grant and revoke instructors; a course keeps at least one owner once it has one.

Transcripts are readable by every signed-in user, so a course with transcripts is public: writing to one you
do not teach is PERMISSION_DENIED (`COURSE_NOT_TAUGHT`). Its instructor list is not public: for someone who
does not teach the course it answers like a missing one (NOT_FOUND).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from server.core.auth import Principal, Role
from server.core.db import Database
from server.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from server.core.names import require_id
from server.core.pagination import decode_page_token, encode_page_token, page_size
from server.transcripts.models import CourseInstructor
from server.transcripts.repository import courses as repo

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class CourseRole(StrEnum):
    OWNER = "owner"
    INSTRUCTOR = "instructor"


@dataclass(frozen=True)
class InstructorView:
    course_id: str
    user_id: str
    role: CourseRole
    granted_by: str
    create_time: datetime


def _view(row: CourseInstructor) -> InstructorView:
    return InstructorView(row.course_id, row.user_id, CourseRole(row.role), row.granted_by, row.create_time)


def require_instructor_role(principal: Principal, action: str) -> None:
    if principal.role not in (Role.INSTRUCTOR, Role.SERVICE):
        raise PermissionDenied(f"only instructors and services may {action}", reason="INSTRUCTOR_ROLE_REQUIRED")


def not_taught(course_id: str) -> PermissionDenied:
    return PermissionDenied(
        f"you do not teach course `{course_id}`; an owner of the course can add you as an instructor",
        reason="COURSE_NOT_TAUGHT",
        metadata={"course": f"courses/{course_id}"},
    )


async def _grant(session: AsyncSession, course_id: str, user_id: str) -> CourseRole | None:
    role = await repo.grant_of(session, course_id, user_id)
    return None if role is None else CourseRole(role)


async def teaches(session: AsyncSession, principal: Principal, course_id: str) -> bool:
    """Whether the caller may change the course and read its analytics."""
    if principal.role is Role.SERVICE:
        return True
    if principal.role is not Role.INSTRUCTOR:
        return False
    if principal.courses is not None and course_id in principal.courses:
        return True
    return await _grant(session, course_id, principal.user_id) is not None


async def require_teacher(session: AsyncSession, principal: Principal, course_id: str, action: str) -> None:
    """PERMISSION_DENIED unless the caller teaches the course (see the module docstring)."""
    require_instructor_role(principal, action)
    if not await teaches(session, principal, course_id):
        raise not_taught(course_id)


async def require_writable(session: AsyncSession, principal: Principal, course_id: str, action: str) -> None:
    """The early check of a write that may create a course: PERMISSION_DENIED unless the caller teaches the
    course or nobody knows it yet (the write's transaction then claims it with `claim_or_require_teacher`)."""
    require_instructor_role(principal, action)
    if not await teaches(session, principal, course_id) and await repo.course_known(session, course_id):
        raise not_taught(course_id)


async def claim_or_require_teacher(session: AsyncSession, principal: Principal, course_id: str, action: str) -> None:
    """For writes that may create a course (ingest, transcription): an instructor writing to a course nobody
    knows becomes its owner, in the caller's transaction; otherwise as `require_teacher`."""
    require_instructor_role(principal, action)
    if principal.role is Role.SERVICE:
        return
    await repo.lock_course(session, course_id)
    if await _grant(session, course_id, principal.user_id) is not None:
        return
    if not await repo.course_known(session, course_id):
        await repo.claim_course(session, course_id, principal.user_id, role=CourseRole.OWNER.value)
        return
    if not await teaches(session, principal, course_id):
        raise not_taught(course_id)


class CourseInstructorService:
    """The instructors of a course (`courses/{course}/instructors/{user}`)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def _require_visible(self, session: AsyncSession, principal: Principal, course_id: str) -> None:
        require_instructor_role(principal, "manage course instructors")
        if not await teaches(session, principal, course_id):
            raise NotFound(f"courses/{course_id} not found")

    async def _require_owner(self, session: AsyncSession, principal: Principal, course_id: str) -> None:
        await self._require_visible(session, principal, course_id)
        if principal.role is not Role.SERVICE and await _grant(session, course_id, principal.user_id) != (
            CourseRole.OWNER
        ):
            raise PermissionDenied(
                f"only owners of course `{course_id}` may add or remove its instructors", reason="COURSE_OWNER_REQUIRED"
            )

    async def list(
        self, principal: Principal, course_id: str, *, size: int, token: str
    ) -> tuple[list[InstructorView], str]:
        require_id(course_id, "parent")
        limit = page_size(size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        scope = f"courses/{course_id}/instructors"
        after = decode_page_token(token, scope, (str,))
        async with self._db.session() as session:
            await self._require_visible(session, principal, course_id)
            rows = await repo.list_instructors(
                session, course_id, after=after[0] if after is not None else None, limit=limit + 1
            )
        views = [_view(row) for row in rows[:limit]]
        next_token = encode_page_token(scope, [views[-1].user_id]) if len(rows) > limit else ""
        return views, next_token

    async def add(self, principal: Principal, course_id: str, user_id: str, role: str) -> InstructorView:
        require_id(course_id, "parent")
        require_id(user_id, "user_id")
        try:
            course_role = CourseRole(role)
        except ValueError:
            raise InvalidArgument.field("role", "is required: OWNER or INSTRUCTOR") from None
        async with self._db.transaction() as session:
            await repo.lock_course(session, course_id)
            await self._require_owner(session, principal, course_id)
            row = await repo.insert_grant(
                session, course_id, user_id, role=course_role.value, granted_by=principal.user_id
            )
            if row is None:
                raise AlreadyExists(
                    f"courses/{course_id}/instructors/{user_id} already exists; remove it first to change its role",
                    reason="INSTRUCTOR_EXISTS",
                )
            return _view(row)

    async def remove(self, principal: Principal, course_id: str, user_id: str) -> None:
        async with self._db.transaction() as session:
            await repo.lock_course(session, course_id)
            await self._require_owner(session, principal, course_id)
            role = await _grant(session, course_id, user_id)
            if role is None:
                raise NotFound(f"courses/{course_id}/instructors/{user_id} not found")
            if role is CourseRole.OWNER:
                owners = await repo.count_with_role(session, course_id, CourseRole.OWNER.value)
                if owners <= 1:
                    raise FailedPrecondition(
                        f"`{user_id}` is the last owner of course `{course_id}`; add another owner first",
                        reason="LAST_OWNER",
                    )
            await repo.delete_grant(session, course_id, user_id)
