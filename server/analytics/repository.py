"""SQL of the analytics domain. Functions take the caller's session and flush, never commit: the services own
the transaction.

Longer than 400 lines because it is all of the domain's SQL, and half of it is statements written out as text
and tuned by hand (the learner's totals, the insights job's reads, a video's confusion signals, the list of
what deleting a user removes); they read best whole, one per function, in the one module that holds SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.analytics.domain import AGENT_TYPES, Finding
from server.analytics.models import AIInteraction, AuditRead, FlaggedInteraction, Insight
from server.core.models import User
from server.core.pagination import newest_first


async def get_user(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


# --- AI interactions -------------------------------------------------------------------------------------


async def record_interaction(
    session: AsyncSession,
    *,
    user_id: str,
    agent_type: str,
    trigger: str,
    course_id: str = "",
    video_id: str = "",
    position_seconds: float = 0.0,
    model: str = "",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost_usd: float = 0.0,
    latency_ms: int = 0,
    cached: bool = False,
    confidence: float | None = None,
    attributes: dict[str, str] | None = None,
) -> str:
    """Insert one interaction in the caller's transaction (flushed, not committed); returns its id.

    The user row must exist (`ensure_user`) before the flush.
    """
    if agent_type not in AGENT_TYPES:
        raise ValueError(f"unknown agent_type {agent_type!r}; expected one of {', '.join(AGENT_TYPES)}")
    interaction_id = uuid.uuid4().hex
    session.add(
        AIInteraction(
            id=interaction_id,
            user_id=user_id,
            agent_type=agent_type,
            trigger=trigger,
            course_id=course_id,
            video_id=video_id,
            position_seconds=position_seconds,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            cached=cached,
            confidence=confidence,
            attributes=dict(attributes or {}),
        )
    )
    await session.flush()
    return interaction_id


async def stored_interaction(session: AsyncSession, interaction_id: str) -> AIInteraction:
    """The interaction just recorded in this session, with the values the database filled in."""
    row = await session.get(AIInteraction, interaction_id)
    assert row is not None
    await session.refresh(row)
    return row


async def get_interaction(session: AsyncSession, interaction_id: str, *, lock: bool = False) -> AIInteraction | None:
    return await session.get(AIInteraction, interaction_id, with_for_update=lock)


async def rate_interaction(session: AsyncSession, row: AIInteraction, rating: int, reason: str) -> None:
    """Store the rating and read the row back (its `rate_time` is the database's)."""
    await session.execute(
        update(AIInteraction)
        .where(AIInteraction.id == row.id)
        .values(rating=rating, rating_reason=reason, rate_time=func.now())
    )
    await session.refresh(row)


# --- one learner's analytics -------------------------------------------------------------------------------

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


async def agent_counts(session: AsyncSession, user_id: str, course_id: str) -> Sequence[Row[str, int, int, float]]:
    """(agent type, interactions, ratings, average rating) of the user, in the course when one is given."""
    statement = (
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
    rows: Sequence[Row[str, int, int, float]] = (await session.execute(statement)).all()
    return rows


async def user_totals(session: AsyncSession, user_id: str, course_id: str) -> Any:
    return (await session.execute(_USER_ANALYTICS, {"user": user_id, "course": course_id})).one()


async def user_mastery(session: AsyncSession, user_id: str) -> Sequence[Any]:
    statement = text(
        "SELECT concept, probability, attempts FROM concept_mastery WHERE user_id = :user ORDER BY probability, concept"
    )
    return (await session.execute(statement, {"user": user_id})).all()


# --- insights ----------------------------------------------------------------------------------------------


async def queued_job_id(session: AsyncSession, queueing_lock: str) -> int | None:
    """The newest job still waiting under `queueing_lock`."""
    queued = (
        await session.execute(
            text(
                "SELECT id FROM procrastinate_jobs WHERE queueing_lock = :lock AND status = 'todo' "
                "ORDER BY id DESC LIMIT 1"
            ),
            {"lock": queueing_lock},
        )
    ).scalar_one_or_none()
    return None if queued is None else int(queued)


async def list_insights(
    session: AsyncSession,
    user_id: str,
    course_id: str,
    *,
    show_dismissed: bool,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Insight]:
    """Newest first; `after` is the (create_time, id) of the last insight of the previous page."""
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
    statement = statement.order_by(Insight.create_time.desc(), Insight.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


async def get_insight(session: AsyncSession, insight_id: str, *, lock: bool = False) -> Insight | None:
    return await session.get(Insight, insight_id, with_for_update=lock)


async def dismiss_insight(session: AsyncSession, row: Insight) -> None:
    """Mark the insight dismissed now and read the row back."""
    await session.execute(update(Insight).where(Insight.id == row.id).values(dismiss_time=func.now()))
    await session.refresh(row)


async def dismissed_fingerprints(session: AsyncSession, user_id: str) -> set[str]:
    statement = select(Insight.fingerprint).where(Insight.user_id == user_id, Insight.dismiss_time.is_not(None))
    return set((await session.execute(statement)).scalars())


async def delete_visible_insights(session: AsyncSession, user_id: str, course_id: str) -> None:
    """The user's insights not dismissed, in the course when one is given (every course otherwise)."""
    scope = delete(Insight).where(Insight.user_id == user_id, Insight.dismiss_time.is_(None))
    if course_id:
        scope = scope.where(Insight.course_id == course_id)
    await session.execute(scope)


async def add_insights(session: AsyncSession, user_id: str, findings: Iterable[Finding], model: str) -> None:
    for finding in findings:
        session.add(
            Insight(
                id=uuid.uuid4().hex,
                user_id=user_id,
                kind=finding.kind,
                course_id=finding.course_id,
                concept=finding.concept,
                title=finding.title,
                detail=finding.detail,
                citations=finding.citations,
                score=finding.score,
                fingerprint=finding.fingerprint,
                model=model,
            )
        )
    await session.flush()


_MASTERY = text(
    """
    SELECT m.concept, m.probability, m.attempts, m.correct FROM concept_mastery m
    WHERE m.user_id = :user AND (CAST(:course AS text) = '' OR EXISTS (
        SELECT 1 FROM quiz_items i JOIN generated_quizzes g ON g.id = i.generated_quiz_id
        WHERE g.course_id = :course AND i.concepts @> jsonb_build_array(m.concept)))
    ORDER BY m.probability, m.concept
    """
)
_WRONG_ANSWER_SOURCES = text(
    """
    SELECT DISTINCT ON (i.chunk_id) i.video_id, i.start_seconds, i.end_seconds, i.chunk_id, i.quoted_text
    FROM quiz_attempts a
    JOIN quiz_items i ON i.generated_quiz_id = a.generated_quiz_id AND i.question_id = a.question_id
    WHERE a.user_id = :user AND NOT a.correct AND i.concepts @> jsonb_build_array(CAST(:concept AS text))
    ORDER BY i.chunk_id LIMIT 2
    """
)
# The learner's struggle signals per (video, bin): backward seeks landing there, pauses, hint interventions.
_STRETCHES = text(
    """
    WITH signals AS (
        SELECT e.video_id, floor(e.seek_to_seconds / :bin) AS bin
        FROM video_events e JOIN watch_sessions w ON w.id = e.watch_session_id
        WHERE e.user_id = :user AND e.type = 'seeked' AND e.seek_to_seconds < e.seek_from_seconds - :rewatch_back
          AND (CAST(:course AS text) = '' OR w.course_id = :course)
        UNION ALL
        SELECT e.video_id, floor(e.position_seconds / :bin)
        FROM video_events e JOIN watch_sessions w ON w.id = e.watch_session_id
        WHERE e.user_id = :user AND e.type = 'paused' AND (CAST(:course AS text) = '' OR w.course_id = :course)
        UNION ALL
        SELECT i.video_id, floor(i.start_seconds / :bin)
        FROM interventions i
        WHERE i.user_id = :user AND i.type IN ('hint', 'review')
          AND (CAST(:course AS text) = '' OR i.course_id = :course)
    )
    SELECT s.video_id, s.bin, count(*) AS signals, coalesce(t.title, '') AS title, coalesce(t.course_id, '') AS course
    FROM signals s LEFT JOIN transcripts t ON t.video_id = s.video_id
    GROUP BY s.video_id, s.bin, t.title, t.course_id
    HAVING count(*) >= :minimum
    ORDER BY count(*) DESC, s.video_id, s.bin
    LIMIT :limit
    """
)
_HABITS = text(
    """
    SELECT
      (SELECT coalesce(sum(watched_seconds), 0) FROM watch_sessions
        WHERE user_id = :user AND (CAST(:course AS text) = '' OR course_id = :course)) AS watched,
      coalesce(p.auto_hints_enabled, true) AS hints, coalesce(p.quiz_frequency, 'medium') AS quizzes
    FROM (SELECT 1) AS one LEFT JOIN preferences p ON p.user_id = :user
    """
)
_DISMISSALS = text(
    """
    SELECT i.type, count(DISTINCT i.id) AS delivered,
      count(DISTINCT k.intervention_id) FILTER (WHERE k.action = 'dismissed') AS dismissed
    FROM interventions i LEFT JOIN intervention_acks k ON k.intervention_id = i.id
    WHERE i.user_id = :user AND i.status = 'delivered' AND (CAST(:course AS text) = '' OR i.course_id = :course)
    GROUP BY i.type
    """
)


async def concept_mastery(session: AsyncSession, user_id: str, course_id: str) -> Sequence[Any]:
    return (await session.execute(_MASTERY, {"user": user_id, "course": course_id})).all()


async def wrong_answer_sources(session: AsyncSession, user_id: str, concept: str) -> Sequence[Any]:
    """Up to two stretches of lecture behind the questions on `concept` the user got wrong."""
    return (await session.execute(_WRONG_ANSWER_SOURCES, {"user": user_id, "concept": concept})).all()


async def struggle_stretches(
    session: AsyncSession,
    user_id: str,
    course_id: str,
    *,
    bin_seconds: float,
    minimum: int,
    limit: int,
    rewatch_back: float,
) -> Sequence[Any]:
    params = {
        "user": user_id,
        "course": course_id,
        "bin": bin_seconds,
        "minimum": minimum,
        "limit": limit,
        "rewatch_back": rewatch_back,
    }
    return (await session.execute(_STRETCHES, params)).all()


async def habits(session: AsyncSession, user_id: str, course_id: str) -> Any:
    return (await session.execute(_HABITS, {"user": user_id, "course": course_id})).one()


async def dismissals(session: AsyncSession, user_id: str, course_id: str) -> Sequence[Any]:
    return (await session.execute(_DISMISSALS, {"user": user_id, "course": course_id})).all()


async def video_chunks(session: AsyncSession, video_id: str) -> Sequence[Any]:
    statement = text(
        "SELECT id, video_id, start_seconds, end_seconds, text FROM transcript_chunks "
        "WHERE video_id = :video ORDER BY start_seconds"
    )
    return (await session.execute(statement, {"video": video_id})).all()


# --- one video's analytics ---------------------------------------------------------------------------------

_HELP_OUTCOME = text(
    """
    SELECT EXISTS (
            SELECT 1 FROM ai_interactions h
            WHERE h.user_id = a.user_id AND h.video_id = :video AND h.agent_type IN ('chat', 'hint')
              AND h.position_seconds BETWEEN q.start_seconds - :slack AND q.end_seconds + :slack
              AND h.create_time < a.create_time
        ) AS helped,
        count(*) AS n, count(*) FILTER (WHERE a.correct) AS correct
    FROM quiz_attempts a
    JOIN quiz_items q ON q.generated_quiz_id = a.generated_quiz_id AND q.question_id = a.question_id
    WHERE q.video_id = :video AND a.counted
    GROUP BY 1
    """
)
_SIGNALS = text(
    """
    WITH signals AS (
        SELECT 'rewatches' AS kind, floor(seek_to_seconds / :bin)::int AS bin, user_id
        FROM video_events
        WHERE video_id = :video AND type = 'seeked' AND seek_to_seconds < seek_from_seconds - :rewatch_back
        UNION ALL
        SELECT 'pauses', floor(position_seconds / :bin)::int, user_id
        FROM video_events WHERE video_id = :video AND type = 'paused'
        UNION ALL
        SELECT 'hints', b, i.user_id
        FROM interventions i,
            generate_series(floor(i.start_seconds / :bin)::int,
                            floor(greatest(i.start_seconds, i.end_seconds - 0.001) / :bin)::int) AS b
        WHERE i.video_id = :video AND i.type = 'hint' AND i.status = 'delivered'
        UNION ALL
        SELECT 'hints', floor(position_seconds / :bin)::int, user_id
        FROM ai_interactions WHERE video_id = :video AND agent_type = 'hint' AND trigger = 'user'
        UNION ALL
        SELECT 'wrong_answers', b, a.user_id
        FROM quiz_attempts a
        JOIN quiz_items q ON q.generated_quiz_id = a.generated_quiz_id AND q.question_id = a.question_id,
            generate_series(floor(q.start_seconds / :bin)::int,
                            floor(greatest(q.start_seconds, q.end_seconds - 0.001) / :bin)::int) AS b
        WHERE q.video_id = :video AND a.counted AND NOT a.correct
    )
    SELECT bin,
        count(*) FILTER (WHERE kind = 'rewatches') AS rewatches,
        count(*) FILTER (WHERE kind = 'pauses') AS pauses,
        count(*) FILTER (WHERE kind = 'hints') AS hints,
        count(*) FILTER (WHERE kind = 'wrong_answers') AS wrong_answers,
        array_agg(DISTINCT user_id) AS students
    FROM signals WHERE bin >= 0 GROUP BY bin ORDER BY bin
    """
)
_AGENTS = text(
    """
    SELECT agent_type, count(*) AS n, count(rating) AS rated, coalesce(avg(rating), 0) AS average
    FROM ai_interactions WHERE video_id = :video GROUP BY agent_type ORDER BY agent_type
    """
)
_RATINGS = text(
    "SELECT rating, count(*) AS n FROM ai_interactions WHERE video_id = :video AND rating IS NOT NULL GROUP BY rating"
)
_INTERVENTIONS = text(
    """
    SELECT i.type,
        count(DISTINCT i.id) AS delivered,
        count(DISTINCT k.intervention_id) FILTER (WHERE k.action = 'accepted') AS accepted,
        count(DISTINCT k.intervention_id) FILTER (WHERE k.action = 'dismissed') AS dismissed
    FROM interventions i LEFT JOIN intervention_acks k ON k.intervention_id = i.id
    WHERE i.video_id = :video AND i.status = 'delivered'
    GROUP BY i.type
    """
)


async def reported_course(session: AsyncSession, video_id: str) -> str:
    """The course the video's viewers last reported watching it in ("" when none did)."""
    reported = await session.execute(
        text(
            "SELECT course_id FROM watch_sessions WHERE video_id = :video AND course_id <> '' "
            "ORDER BY create_time DESC LIMIT 1"
        ),
        {"video": video_id},
    )
    return reported.scalar_one_or_none() or ""


async def viewer_count(session: AsyncSession, video_id: str) -> int:
    statement = text("SELECT count(DISTINCT user_id) FROM watch_sessions WHERE video_id = :video")
    return int((await session.execute(statement, {"video": video_id})).scalar_one())


async def confusion_signals(
    session: AsyncSession, video_id: str, *, bin_seconds: float, rewatch_back: float
) -> list[Any]:
    """Per segment of `bin_seconds` with any signal: the count of each signal and the students behind them."""
    params = {"video": video_id, "bin": bin_seconds, "rewatch_back": rewatch_back}
    return list((await session.execute(_SIGNALS, params)).all())


async def intervention_stats(session: AsyncSession, video_id: str) -> Sequence[Any]:
    return (await session.execute(_INTERVENTIONS, {"video": video_id})).all()


async def video_agent_counts(session: AsyncSession, video_id: str) -> Sequence[Any]:
    return (await session.execute(_AGENTS, {"video": video_id})).all()


async def rating_counts(session: AsyncSession, video_id: str) -> Sequence[Any]:
    return (await session.execute(_RATINGS, {"video": video_id})).all()


async def help_outcomes(session: AsyncSession, video_id: str, slack_seconds: float) -> Sequence[Any]:
    """First answers to the video's questions, split by whether the student asked for help near them first."""
    return (await session.execute(_HELP_OUTCOME, {"video": video_id, "slack": slack_seconds})).all()


# --- flagged interactions ----------------------------------------------------------------------------------


async def add_flag(
    session: AsyncSession,
    *,
    user_id: str,
    course_id: str,
    video_id: str,
    surface: str,
    message: str,
    category: str,
    score: float,
    detector: str,
    excerpt: str,
) -> None:
    await session.execute(
        insert(FlaggedInteraction).values(
            id=uuid.uuid4().hex,
            user_id=user_id,
            course_id=course_id,
            video_id=video_id,
            surface=surface,
            message=message,
            category=category,
            score=score,
            detector=detector,
            excerpt=excerpt,
        )
    )


async def list_flags(
    session: AsyncSession, course_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[FlaggedInteraction]:
    """Newest first; `after` is the (create_time, id) of the last flag of the previous page."""
    statement = newest_first(
        select(FlaggedInteraction).where(FlaggedInteraction.course_id == course_id),
        FlaggedInteraction.create_time,
        FlaggedInteraction.id,
        after=after,
        limit=limit,
    )
    return list((await session.execute(statement)).scalars())


async def record_audit_read(session: AsyncSession, reader: str, resource: str, items: int) -> None:
    await session.execute(insert(AuditRead).values(id=uuid.uuid4().hex, reader=reader, resource=resource, items=items))


# --- deletion and retention --------------------------------------------------------------------------------

# Every table that names a user, children before parents, as (kind reported, statement). Keep in step with
# the migrations: tests/analytics/test_retention.py fails when a table with a user column is missing here.
USER_DELETIONS: tuple[tuple[str, str], ...] = (
    (
        "messages",
        "DELETE FROM chat_messages m USING chat_sessions s WHERE m.session_id = s.id AND s.user_id = :user",
    ),
    (
        "references",
        "DELETE FROM chat_references r USING chat_sessions s WHERE r.session_id = s.id AND s.user_id = :user",
    ),
    ("sessions", "DELETE FROM chat_sessions WHERE user_id = :user"),
    ("acknowledgements", "DELETE FROM intervention_acks WHERE user_id = :user"),
    ("interventions", "DELETE FROM interventions WHERE user_id = :user"),
    ("events", "DELETE FROM video_events WHERE user_id = :user"),
    ("watch_sessions", "DELETE FROM watch_sessions WHERE user_id = :user"),
    ("quiz_attempts", "DELETE FROM quiz_attempts WHERE user_id = :user"),
    ("quizzes", "DELETE FROM quizzes WHERE user_id = :user"),
    ("mastery", "DELETE FROM concept_mastery WHERE user_id = :user"),
    ("preferences", "DELETE FROM preferences WHERE user_id = :user"),
    ("insights", "DELETE FROM insights WHERE user_id = :user"),
    ("interactions", "DELETE FROM ai_interactions WHERE user_id = :user"),
    ("usage", "DELETE FROM usage_records WHERE user_id = :user"),
    ("token_budgets", "DELETE FROM token_budgets WHERE user_id = :user"),
    ("token_reservations", "DELETE FROM token_reservations WHERE user_id = :user"),
    # Their roles in courses go (a course whose last owner leaves has none until a service grants one); roles
    # they granted stay, without their id.
    ("course_roles", "DELETE FROM course_instructors WHERE user_id = :user"),
    ("course_grants", "UPDATE course_instructors SET granted_by = '' WHERE granted_by = :user"),
    ("experiment_exposures", "DELETE FROM experiment_exposures WHERE user_id = :user"),
    ("flagged_interactions", "DELETE FROM flagged_interactions WHERE user_id = :user"),
    ("experiments_created", "UPDATE experiments SET created_by = '' WHERE created_by = :user"),
    # Finished ingest requests keep the uploaded text under the requester's id; a running one is course
    # content in the making and finishes (its row then goes with the next deletion request).
    ("ingest_jobs", "DELETE FROM ingest_jobs WHERE requested_by = :user AND state NOT IN ('queued', 'running')"),
    # Background jobs queued or run for the user carry the id in their arguments.
    ("jobs", "DELETE FROM procrastinate_jobs WHERE args ->> 'user_id' = :user AND status <> 'doing'"),
    ("users", "DELETE FROM users WHERE id = :user"),
)


async def _rowcount(session: AsyncSession, statement: str, params: dict[str, object]) -> int:
    result = await session.execute(text(statement), params)
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_user_rows(session: AsyncSession, user_id: str) -> dict[str, int]:
    """Delete every row that names `user_id`; rows deleted by kind."""
    return {kind: await _rowcount(session, statement, {"user": user_id}) for kind, statement in USER_DELETIONS}


async def delete_old_interactions(session: AsyncSession, retention_days: int, batch: int) -> int:
    """Delete up to `batch` interactions older than `retention_days`; how many went."""
    return await _rowcount(
        session,
        "DELETE FROM ai_interactions WHERE id IN (SELECT id FROM ai_interactions "
        "WHERE create_time < now() - make_interval(days => :days) LIMIT :batch)",
        {"days": max(0, retention_days), "batch": batch},
    )


async def delete_expired_generated_quizzes(session: AsyncSession, batch: int) -> int:
    """Delete up to `batch` expired generated quizzes no student's quiz refers to; how many went."""
    return await _rowcount(
        session,
        "DELETE FROM generated_quizzes WHERE id IN (SELECT g.id FROM generated_quizzes g "
        "WHERE g.expire_time < now() AND NOT EXISTS (SELECT 1 FROM quizzes q WHERE q.generated_quiz_id = g.id) "
        "LIMIT :batch)",
        {"batch": batch},
    )
