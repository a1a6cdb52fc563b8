"""Analytics for one learner: client interactions, ratings, the learner's analytics, insights (listing and
dismissing; computing them is the insights job), and deleting everything stored about a user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update

from server.analytics.insights import GENERATE_TASK, queueing_lock
from server.analytics.interactions import AIInteraction, record_interaction
from server.analytics.models import Insight
from server.analytics.retention import delete_user_data
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from server.core.names import require_id
from server.core.pagination import decode_page_token, encode_page_token, page_size
from server.core.users import ensure_user
from server.jobs.queue import AlreadyEnqueued, JobQueue

MAX_TRIGGER_CHARS = 100
MAX_ATTRIBUTES = 20
MAX_ATTRIBUTE_CHARS = 200
MAX_REASON_CHARS = 1000
DEFAULT_INSIGHTS_PAGE = 20
MAX_INSIGHTS_PAGE = 100


@dataclass(frozen=True, slots=True)
class Place:
    course_id: str = ""
    video_id: str = ""
    position_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentCount:
    agent_type: str
    count: int
    rating_count: int
    average_rating: float


@dataclass(frozen=True, slots=True)
class MasteryStat:
    concept: str
    probability: float
    attempts: int


@dataclass(frozen=True, slots=True)
class UserAnalytics:
    agents: list[AgentCount]
    watch_seconds: float
    quiz_answers: int
    quiz_accuracy: float
    mastery: list[MasteryStat]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    interventions_received: int
    interventions_accepted: int


@dataclass(frozen=True, slots=True)
class InsightPage:
    insights: list[Insight]
    next_page_token: str


_USER_ANALYTICS = text(
    """
    SELECT
      (SELECT coalesce(sum(watched_seconds), 0) FROM watch_sessions
        WHERE user_id = :user AND (CAST(:course AS text) = '' OR course_id = :course)) AS watch_seconds,
      (SELECT count(*) FROM quiz_attempts a JOIN quizzes q ON q.id = a.quiz_id
        JOIN generated_quizzes g ON g.id = q.generated_quiz_id
        WHERE a.user_id = :user AND a.counted
          AND (CAST(:course AS text) = '' OR g.course_id = :course)) AS quiz_answers,
      (SELECT count(*) FROM quiz_attempts a JOIN quizzes q ON q.id = a.quiz_id
        JOIN generated_quizzes g ON g.id = q.generated_quiz_id
        WHERE a.user_id = :user AND a.counted AND a.correct AND (CAST(:course AS text) = '' OR g.course_id = :course))
        AS quiz_correct,
      (SELECT coalesce(sum(prompt_tokens), 0) FROM ai_interactions
        WHERE user_id = :user AND (CAST(:course AS text) = '' OR course_id = :course)) AS prompt_tokens,
      (SELECT coalesce(sum(completion_tokens), 0) FROM ai_interactions
        WHERE user_id = :user AND (CAST(:course AS text) = '' OR course_id = :course)) AS completion_tokens,
      (SELECT coalesce(sum(cost_usd), 0) FROM ai_interactions
        WHERE user_id = :user AND (CAST(:course AS text) = '' OR course_id = :course)) AS cost_usd,
      (SELECT count(*) FROM interventions
        WHERE user_id = :user AND status = 'delivered'
          AND (CAST(:course AS text) = '' OR course_id = :course)) AS received,
      (SELECT count(*) FROM intervention_acks k JOIN interventions i ON i.id = k.intervention_id
        WHERE k.user_id = :user AND k.action = 'accepted'
          AND (CAST(:course AS text) = '' OR i.course_id = :course)) AS accepted
    """
)


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
    ) -> AIInteraction:
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
            interaction_id = await record_interaction(
                session,
                user_id=principal.user_id,
                agent_type="client",
                trigger=trigger,
                course_id=place.course_id,
                video_id=place.video_id,
                position_seconds=place.position_seconds,
                attributes=dict(attributes),
            )
            row = await session.get(AIInteraction, interaction_id)
            assert row is not None
            await session.refresh(row)
            return row

    async def rate(self, principal: Principal, interaction_id: str, rating: int, reason: str) -> AIInteraction:
        """Rate the caller's interaction once. Another user's interaction answers NOT_FOUND (checked before
        the rating is validated); a second rating is FAILED_PRECONDITION (reason ALREADY_RATED)."""
        async with self._db.transaction() as session:
            row = await session.get(AIInteraction, interaction_id, with_for_update=True)
            if row is None or row.user_id != principal.user_id:
                raise NotFound(f"interaction `{interaction_id}` not found")
            if not 1 <= rating <= 5:
                raise InvalidArgument.field("rating", "must be 1 to 5")
            if len(reason) > MAX_REASON_CHARS:
                raise InvalidArgument.field("reason", f"must be at most {MAX_REASON_CHARS} characters")
            if row.rating is not None:
                raise FailedPrecondition(f"interaction `{interaction_id}` is already rated", reason="ALREADY_RATED")
            await session.execute(
                update(AIInteraction)
                .where(AIInteraction.id == interaction_id)
                .values(rating=rating, rating_reason=reason, rate_time=func.now())
            )
            await session.refresh(row)
            return row

    # --- the learner's analytics -------------------------------------------------------------------

    async def user_analytics(self, user_id: str, course_id: str) -> UserAnalytics:
        if course_id:
            require_id(course_id, "course_id")
        params: dict[str, Any] = {"user": user_id, "course": course_id}
        async with self._db.session() as session:
            agents = (
                await session.execute(
                    select(
                        AIInteraction.agent_type,
                        func.count(),
                        func.count(AIInteraction.rating),
                        func.coalesce(func.avg(AIInteraction.rating), 0.0),
                    )
                    .where(AIInteraction.user_id == user_id)
                    .where((AIInteraction.course_id == course_id) if course_id else text("true"))
                    .group_by(AIInteraction.agent_type)
                    .order_by(AIInteraction.agent_type)
                )
            ).all()
            totals = (await session.execute(_USER_ANALYTICS, params)).one()
            mastery = (
                await session.execute(
                    text(
                        "SELECT concept, probability, attempts FROM concept_mastery WHERE user_id = :user "
                        "ORDER BY probability, concept"
                    ),
                    params,
                )
            ).all()
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
                queued = (
                    await session.execute(
                        text(
                            "SELECT id FROM procrastinate_jobs WHERE queueing_lock = :lock AND status = 'todo' "
                            "ORDER BY id DESC LIMIT 1"
                        ),
                        {"lock": lock},
                    )
                ).scalar_one_or_none()
            if queued is None:
                return await self.generate_insights(principal, course_id)
            job_id = int(queued)
        return str(job_id)

    async def list_insights(
        self, user_id: str, course_id: str, show_dismissed: bool, requested_size: int, token: str
    ) -> InsightPage:
        size = page_size(requested_size, default=DEFAULT_INSIGHTS_PAGE, maximum=MAX_INSIGHTS_PAGE)
        scope = f"insights:{user_id}:{course_id}:{int(show_dismissed)}"
        after = decode_page_token(token, scope, (datetime, str))
        statement = select(Insight).where(Insight.user_id == user_id)
        if course_id:
            statement = statement.where(Insight.course_id == course_id)
        if not show_dismissed:
            statement = statement.where(Insight.dismiss_time.is_(None))
        if after is not None:
            moment = after[0]
            statement = statement.where(
                (Insight.create_time < moment) | ((Insight.create_time == moment) & (Insight.id < after[1]))
            )
        statement = statement.order_by(Insight.create_time.desc(), Insight.id.desc()).limit(size + 1)
        async with self._db.session() as session:
            rows = list((await session.execute(statement)).scalars())
        next_token = ""
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1]
            next_token = encode_page_token(scope, [last.create_time, last.id])
        return InsightPage(rows, next_token)

    async def dismiss_insight(self, principal: Principal, insight_id: str) -> Insight:
        """Hide the caller's insight (dismissing again changes nothing)."""
        async with self._db.transaction() as session:
            row = await session.get(Insight, insight_id, with_for_update=True)
            if row is None or row.user_id != principal.user_id:
                raise NotFound(f"insight `{insight_id}` not found")
            if row.dismiss_time is None:
                await session.execute(update(Insight).where(Insight.id == insight_id).values(dismiss_time=func.now()))
                await session.refresh(row)
            return row

    # --- deletion ----------------------------------------------------------------------------------

    async def delete_user(self, user_id: str) -> dict[str, int]:
        """Delete every row about `user_id` (already authorized) and return the counts by kind."""
        if self._forget_user is not None:
            self._forget_user(user_id)
        counts = await delete_user_data(self._db, user_id)
        if self._preferences_deleted is not None:
            await self._preferences_deleted(user_id)
        return counts
