"""Analytics for one learner: client interactions, ratings, the learner's analytics, insights (listing and
dismissing; computing them is the insights job), and deleting everything stored about a user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from server.analytics import repository as repo
from server.analytics.domain import (
    AgentCount,
    InsightPage,
    InsightView,
    InteractionView,
    MasteryStat,
    Place,
    UserAnalytics,
    insight_view,
    interaction_view,
)
from server.analytics.insights import GENERATE_TASK, queueing_lock
from server.analytics.retention import delete_user_data
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from server.core.names import require_id, resolve_user
from server.core.pagination import decode_page_token, encode_page_token, page_size
from server.core.users import ensure_user
from server.jobs.queue import AlreadyEnqueued, JobQueue

MAX_TRIGGER_CHARS = 100
MAX_ATTRIBUTES = 20
MAX_ATTRIBUTE_CHARS = 200
MAX_REASON_CHARS = 1000
DEFAULT_INSIGHTS_PAGE = 20
MAX_INSIGHTS_PAGE = 100


def _check_place(place: Place) -> None:
    if place.course_id:
        require_id(place.course_id, "learning_context.course_id")
    if place.video_id:
        require_id(place.video_id, "learning_context.video_id")
    if not 0 <= place.position_seconds < 7 * 24 * 3600:
        raise InvalidArgument.field("learning_context.position_seconds", "must be a non-negative number of seconds")


class AnalyticsService:
    def __init__(
        self,
        database: Database,
        jobs: JobQueue,
        *,
        forget_user: Callable[[str], None] | None = None,
        preferences_deleted: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._db = database
        self._jobs = jobs
        # Drops what this process holds in memory about a deleted user (their loaded watch sessions).
        self._forget_user = forget_user
        self._preferences_deleted = preferences_deleted

    # --- interactions ------------------------------------------------------------------------------

    async def record_client_interaction(
        self, principal: Principal, trigger: str, place: Place, attributes: dict[str, str]
    ) -> InteractionView:
        if not trigger or len(trigger) > MAX_TRIGGER_CHARS:
            raise InvalidArgument.field("trigger", f"must be 1 to {MAX_TRIGGER_CHARS} characters")
        if len(attributes) > MAX_ATTRIBUTES:
            raise InvalidArgument.field("attributes", f"at most {MAX_ATTRIBUTES} entries")
        for key, value in attributes.items():
            if not key or len(key) > MAX_ATTRIBUTE_CHARS or len(value) > MAX_ATTRIBUTE_CHARS:
                raise InvalidArgument.field(
                    "attributes", f"keys must be 1 and values at most {MAX_ATTRIBUTE_CHARS} characters"
                )
        _check_place(place)
        async with self._db.transaction() as session:
            await ensure_user(session, principal)
            interaction_id = await repo.record_interaction(
                session,
                user_id=principal.user_id,
                agent_type="client",
                trigger=trigger,
                course_id=place.course_id,
                video_id=place.video_id,
                position_seconds=place.position_seconds,
                attributes=dict(attributes),
            )
            return interaction_view(await repo.stored_interaction(session, interaction_id))

    async def rate(self, principal: Principal, interaction_id: str, rating: int, reason: str) -> InteractionView:
        """Rate the caller's interaction once. Another user's interaction answers NOT_FOUND (checked before
        the rating is validated); a second rating is FAILED_PRECONDITION (reason ALREADY_RATED)."""
        async with self._db.transaction() as session:
            row = await repo.get_interaction(session, interaction_id, lock=True)
            if row is None or row.user_id != principal.user_id:
                raise NotFound(f"interaction `{interaction_id}` not found")
            if not 1 <= rating <= 5:
                raise InvalidArgument.field("rating", "must be 1 to 5")
            if len(reason) > MAX_REASON_CHARS:
                raise InvalidArgument.field("reason", f"must be at most {MAX_REASON_CHARS} characters")
            if row.rating is not None:
                raise FailedPrecondition(f"interaction `{interaction_id}` is already rated", reason="ALREADY_RATED")
            await repo.rate_interaction(session, row, rating, reason)
            return interaction_view(row)

    # --- the learner's analytics -------------------------------------------------------------------

    async def user_analytics(self, user_id: str, course_id: str) -> UserAnalytics:
        if course_id:
            require_id(course_id, "course_id")
        async with self._db.session() as session:
            agents = await repo.agent_counts(session, user_id, course_id)
            totals = await repo.user_totals(session, user_id, course_id)
            mastery = await repo.user_mastery(session, user_id)
        answers = int(totals.quiz_answers)
        return UserAnalytics(
            agents=[AgentCount(str(a), int(n), int(rated), float(avg)) for a, n, rated, avg in agents],
            watch_seconds=float(totals.watch_seconds),
            quiz_answers=answers,
            quiz_accuracy=(int(totals.quiz_correct) / answers) if answers else 0.0,
            mastery=[MasteryStat(str(m.concept), float(m.probability), int(m.attempts)) for m in mastery],
            prompt_tokens=int(totals.prompt_tokens),
            completion_tokens=int(totals.completion_tokens),
            cost_usd=float(totals.cost_usd),
            interventions_received=int(totals.received),
            interventions_accepted=int(totals.accepted),
        )

    # --- insights ----------------------------------------------------------------------------------

    async def generate_insights(self, principal: Principal, course_id: str) -> str:
        """Queue the insights job for the caller; while one is queued, asking again returns its id."""
        if course_id:
            require_id(course_id, "course_id")
        lock = queueing_lock(principal.user_id, course_id)
        async with self._db.transaction() as session:
            await ensure_user(session, principal)
        try:
            job_id = await self._jobs.defer(
                GENERATE_TASK, queueing_lock=lock, user_id=principal.user_id, course_id=course_id
            )
        except AlreadyEnqueued:
            async with self._db.session() as session:
                queued = await repo.queued_job_id(session, lock)
            if queued is None:
                return await self.generate_insights(principal, course_id)
            job_id = queued
        return str(job_id)

    async def list_insights(
        self, user_id: str, course_id: str, show_dismissed: bool, requested_size: int, token: str
    ) -> InsightPage:
        size = page_size(requested_size, default=DEFAULT_INSIGHTS_PAGE, maximum=MAX_INSIGHTS_PAGE)
        scope = f"insights:{user_id}:{course_id}:{int(show_dismissed)}"
        after = decode_page_token(token, scope, (datetime, str))
        async with self._db.session() as session:
            rows = await repo.list_insights(
                session, user_id, course_id, show_dismissed=show_dismissed, after=after, limit=size + 1
            )
        next_token = ""
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            next_token = encode_page_token(scope, [last.create_time, last.id])
        return InsightPage([insight_view(row) for row in rows], next_token)

    async def dismiss_insight(self, principal: Principal, insight_id: str) -> InsightView:
        """Hide the caller's insight (dismissing again changes nothing)."""
        async with self._db.transaction() as session:
            row = await repo.get_insight(session, insight_id, lock=True)
            if row is None or row.user_id != principal.user_id:
                raise NotFound(f"insight `{insight_id}` not found")
            if row.dismiss_time is None:
                await repo.dismiss_insight(session, row)
            return insight_view(row)

    # --- deletion ----------------------------------------------------------------------------------

    async def delete_user(self, principal: Principal, user: str) -> dict[str, int]:
        """Delete every row about `user` (`me`, or anyone for a service) and return the counts by kind; another
        user's data answers like a missing user."""
        user_id = resolve_user(principal, user, "user")
        if self._forget_user is not None:
            self._forget_user(user_id)
        counts = await delete_user_data(self._db, user_id)
        if self._preferences_deleted is not None:
            await self._preferences_deleted(user_id)
        return counts
