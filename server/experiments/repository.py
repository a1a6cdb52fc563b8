"""SQL of the experiments domain. Functions take the caller's session and flush, never commit: the services own
the transaction. Arm assignment's two statements take an autocommit connection instead: each commits on its
own, without a transaction's round trips."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from server.core.pagination import newest_first
from server.experiments.models import Experiment, ExperimentExposure

# A watch session covering this share of its video counts as completing it.
COMPLETED_SHARE = 0.9

_COURSE_VIDEOS = text("SELECT video_id FROM transcripts WHERE course_id = :course ORDER BY video_id")


async def course_videos(session: AsyncSession, course_id: str) -> list[str]:
    """The videos of the course's transcripts, by id."""
    return [str(video) for video in (await session.execute(_COURSE_VIDEOS, {"course": course_id})).scalars()]


# --- experiments -------------------------------------------------------------------------------------------


async def get_experiment(
    session: AsyncSession, course_id: str, experiment_id: str, *, lock: bool = False
) -> Experiment | None:
    statement = select(Experiment).where(Experiment.course_id == course_id, Experiment.experiment_id == experiment_id)
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def exposure_counts(
    session: AsyncSession, course_id: str, experiment_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Students exposed so far, by experiment and arm."""
    counted: dict[str, dict[str, int]] = defaultdict(dict)
    rows = await session.execute(
        select(ExperimentExposure.experiment_id, ExperimentExposure.arm, func.count())
        .where(ExperimentExposure.course_id == course_id, ExperimentExposure.experiment_id.in_(experiment_ids))
        .group_by(ExperimentExposure.experiment_id, ExperimentExposure.arm)
    )
    for experiment_id, arm, count in rows:
        counted[experiment_id][arm] = int(count)
    return counted


async def add_experiment(
    session: AsyncSession,
    course_id: str,
    experiment_id: str,
    *,
    display_name: str,
    lever: str,
    arms: list[dict[str, Any]],
    video_ids: list[str],
    salt: str,
    created_by: str,
) -> Experiment | None:
    """The new draft, or None when the course already has an experiment of that id."""
    inserted = await session.execute(
        insert(Experiment)
        .values(
            course_id=course_id,
            experiment_id=experiment_id,
            display_name=display_name,
            lever=lever,
            arms=arms,
            video_ids=video_ids,
            salt=salt,
            created_by=created_by,
        )
        .on_conflict_do_nothing()
        .returning(Experiment)
    )
    return inserted.scalar_one_or_none()


async def list_experiments(
    session: AsyncSession, course_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[Experiment]:
    """Newest first; `after` is the (create_time, experiment_id) of the last experiment of the previous page."""
    statement = newest_first(
        select(Experiment).where(Experiment.course_id == course_id),
        Experiment.create_time,
        Experiment.experiment_id,
        after=after,
        limit=limit,
    )
    return list((await session.execute(statement)).scalars())


async def lock_course_experiments(session: AsyncSession, course_id: str) -> None:
    """Serialize the starts of the course's experiments until the transaction ends."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('experiments'), hashtext(:course))"), {"course": course_id}
    )


async def running_on_lever(session: AsyncSession, course_id: str, lever: str) -> str | None:
    """The id of the course's experiment running on `lever`, if any."""
    statement = select(Experiment.experiment_id).where(
        Experiment.course_id == course_id, Experiment.lever == lever, Experiment.state == "running"
    )
    return (await session.execute(statement)).scalar_one_or_none()


_STATE_TIMES = {"running": "start_time", "stopped": "stop_time"}


async def set_state(session: AsyncSession, row: Experiment, state: str) -> None:
    """Move the experiment to `running` or `stopped`, stamping its start or stop time, and read the row back."""
    await session.execute(
        update(Experiment)
        .where(Experiment.course_id == row.course_id, Experiment.experiment_id == row.experiment_id)
        .values({"state": state, _STATE_TIMES[state]: func.now()})
    )
    await session.refresh(row)


# --- assignment --------------------------------------------------------------------------------------------

_RUNNING = text(
    "SELECT experiment_id, arms, salt FROM experiments "
    "WHERE course_id = :course AND lever = :lever AND state = 'running'"
)
# First exposure wins: the insert does nothing when the student already has an arm, which is then read.
_EXPOSE = text(
    """
    WITH inserted AS (
        INSERT INTO experiment_exposures (course_id, experiment_id, user_id, arm)
        VALUES (:course, :experiment, :user, :arm)
        ON CONFLICT DO NOTHING
        RETURNING arm
    )
    SELECT arm FROM inserted
    UNION ALL
    SELECT arm FROM experiment_exposures
    WHERE course_id = :course AND experiment_id = :experiment AND user_id = :user
    LIMIT 1
    """
)


async def running_experiment(connection: AsyncConnection, course_id: str, lever: str) -> Any:
    """(experiment_id, arms, salt) of the course's experiment running on `lever`, or None."""
    return (await connection.execute(_RUNNING, {"course": course_id, "lever": lever})).one_or_none()


async def expose(connection: AsyncConnection, course_id: str, experiment_id: str, user_id: str, arm: str) -> str | None:
    """Record the student's arm unless they already have one; the arm stored, or None (`Assignments.expose`
    says when)."""
    params = {"course": course_id, "experiment": experiment_id, "user": user_id, "arm": arm}
    stored = (await connection.execute(_EXPOSE, params)).scalar_one_or_none()
    return None if stored is None else str(stored)


# --- the report --------------------------------------------------------------------------------------------


_FIRST_ANSWERS = text(
    """
    SELECT e.arm, count(*) AS n, count(*) FILTER (WHERE a.correct) AS correct
    FROM experiment_exposures e
    JOIN quiz_attempts a ON a.user_id = e.user_id AND a.counted
        AND a.create_time >= e.exposure_time AND a.create_time <= :until
    JOIN generated_quizzes g ON g.id = a.generated_quiz_id AND g.video_id = ANY(:videos)
    WHERE e.course_id = :course AND e.experiment_id = :experiment
    GROUP BY e.arm
    """
)
_MASTERY_SNAPSHOTS = text(
    """
    SELECT e.user_id, e.arm, e.exposure_time, a.create_time, a.mastery, g.video_id = ANY(:videos) AS in_scope
    FROM experiment_exposures e
    JOIN quiz_attempts a ON a.user_id = e.user_id AND a.counted AND a.create_time <= :until
    JOIN generated_quizzes g ON g.id = a.generated_quiz_id
    WHERE e.course_id = :course AND e.experiment_id = :experiment
    ORDER BY e.user_id, a.create_time, a.id
    """
)
_COMPLETION = text(
    f"""
    SELECT e.arm, avg(CASE WHEN w.watched_seconds >= {COMPLETED_SHARE} * w.duration_seconds THEN 1.0 ELSE 0.0 END)
        AS share
    FROM experiment_exposures e
    JOIN watch_sessions w ON w.user_id = e.user_id AND w.video_id = ANY(:videos) AND w.duration_seconds > 0
        AND w.create_time >= e.exposure_time AND w.create_time <= :until
    WHERE e.course_id = :course AND e.experiment_id = :experiment
    GROUP BY e.user_id, e.arm
    """
)
_REWATCHES = text(
    """
    SELECT e.arm,
        (SELECT count(*) FROM video_events v
         WHERE v.user_id = e.user_id AND v.video_id = ANY(:videos) AND v.type = 'seeked'
           AND v.seek_to_seconds < v.seek_from_seconds - :rewatch_back
           AND v.receive_time >= e.exposure_time AND v.receive_time <= :until) AS rewatches
    FROM experiment_exposures e
    WHERE e.course_id = :course AND e.experiment_id = :experiment
    """
)
_USAGE = text(
    """
    SELECT e.arm,
        (SELECT count(*) FROM ai_interactions i
         WHERE i.user_id = e.user_id AND i.create_time >= e.exposure_time AND i.create_time <= :until)
            AS interactions,
        (SELECT coalesce(sum(u.cost_usd), 0) FROM usage_records u
         WHERE u.user_id = e.user_id AND u.create_time >= e.exposure_time AND u.create_time <= :until) AS cost
    FROM experiment_exposures e
    WHERE e.course_id = :course AND e.experiment_id = :experiment
    """
)


@dataclass(frozen=True)
class OutcomeRows:
    """What the report counts, per exposed student from their first exposure to `until`."""

    first_answers: Sequence[Any]
    mastery_snapshots: Sequence[Any]
    completion: Sequence[Any]
    usage: Sequence[Any]
    rewatches: Sequence[Any]


async def outcome_rows(
    session: AsyncSession,
    course_id: str,
    experiment_id: str,
    *,
    videos: list[str],
    until: datetime,
    rewatch_back: float,
) -> OutcomeRows:
    params: dict[str, Any] = {"course": course_id, "experiment": experiment_id, "videos": videos, "until": until}
    return OutcomeRows(
        first_answers=(await session.execute(_FIRST_ANSWERS, params)).all(),
        mastery_snapshots=(await session.execute(_MASTERY_SNAPSHOTS, params)).all(),
        completion=(await session.execute(_COMPLETION, params)).all(),
        usage=(await session.execute(_USAGE, params)).all(),
        rewatches=(await session.execute(_REWATCHES, {**params, "rewatch_back": rewatch_back})).all(),
    )
