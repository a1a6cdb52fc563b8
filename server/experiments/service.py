"""Experiments on the tutor (`courses/{course}/experiments/{experiment}`): create as a draft, start, stop, and
report outcomes per arm. Instructors of the course and services only; a student is PERMISSION_DENIED, an
instructor of another course finds no experiment (NOT_FOUND) and may not create one (PERMISSION_DENIED).

Outcomes, each counted from a student's first exposure to the stop (or now), on the experiment's videos:

- `first_attempt_correct` (proportion of answers): a student's first answer to each quiz question.
- `mastery_gain` (mean per student who answered): over the concepts those answers touched, BKT mastery after
  the last answer minus mastery before the exposure (the prior when there was none).
- `video_completion` (mean per student who watched): share of their watch sessions that covered at least
  90 % of the video.
- `rewatches` (mean per exposed student, zeros included): seeks back by more than `REWATCH_MIN_BACK_SECONDS`
  on the experiment's videos, the rewatch signal of the confusion heatmap (every rewatch, not only those into
  the video's confusion peaks, which are computed over all students).
- `ai_interactions` and `ai_cost_usd` (mean per exposed student, zeros included): everything the tutor did
  for them, in any course.
"""

from __future__ import annotations

import math
import secrets
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from server.core.names import require_id
from server.core.pagination import decode_page_token, encode_page_token, page_size
from server.core.values import REWATCH_MIN_BACK_SECONDS
from server.experiments import repository as repo
from server.experiments.assignment import LEVER_ARMS, Lever
from server.experiments.domain import Arm, ExperimentView, OutcomeView, ReportView
from server.experiments.models import Experiment
from server.experiments.stats import MIN_SAMPLE, compare_means, compare_proportions
from server.transcripts.courses import not_taught, require_instructor_role, teaches

MAX_DISPLAY_NAME = 200
MAX_VIDEOS = 100
MAX_WEIGHT = 1000.0
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
ACTION = "run experiments"


def _view(row: Experiment, exposures: dict[str, int]) -> ExperimentView:
    return ExperimentView(
        course_id=row.course_id,
        experiment_id=row.experiment_id,
        display_name=row.display_name,
        lever=Lever(row.lever),
        arms=tuple(Arm(str(arm["name"]), float(arm["weight"])) for arm in row.arms),
        video_ids=tuple(row.video_ids),
        state=row.state,
        created_by=row.created_by,
        create_time=row.create_time,
        start_time=row.start_time,
        stop_time=row.stop_time,
        exposures=exposures,
    )


def _check_arms(lever: Lever, arms: Sequence[Arm]) -> None:
    allowed = LEVER_ARMS[lever]
    names = " and ".join(f"`{name}`" for name in sorted(allowed))
    if len(arms) != len(allowed):
        raise InvalidArgument.field("experiment.arms", f"the {lever.value} lever takes {len(allowed)} arms: {names}")
    seen: set[str] = set()
    for index, arm in enumerate(arms):
        if arm.name not in allowed or arm.name in seen:
            raise InvalidArgument.field(f"experiment.arms[{index}].name", f"must be one of {names}, each once")
        seen.add(arm.name)
        if not math.isfinite(arm.weight) or arm.weight <= 0 or arm.weight > MAX_WEIGHT:
            raise InvalidArgument.field(
                f"experiment.arms[{index}].weight", f"must be a positive number of at most {MAX_WEIGHT:g}"
            )


class ExperimentService:
    def __init__(self, database: Database, *, mastery_prior: float) -> None:
        """`mastery_prior`: the mastery model's probability for a concept with no answer yet (the agents' BKT
        prior, handed in where the server is assembled)."""
        self._db = database
        self._mastery_prior = mastery_prior

    # --- access ------------------------------------------------------------------------------------

    async def _course_videos(self, session: AsyncSession, principal: Principal, course_id: str) -> list[str]:
        """The course's videos, for a caller who may create experiments in it."""
        require_instructor_role(principal, ACTION)
        require_id(course_id, "parent")
        videos = await repo.course_videos(session, course_id)
        if not videos:
            raise NotFound(f"courses/{course_id} not found (a course needs a transcript)")
        if not await teaches(session, principal, course_id):
            raise not_taught(course_id)
        return videos

    async def _experiment(
        self, session: AsyncSession, principal: Principal, course_id: str, experiment_id: str, *, lock: bool = False
    ) -> Experiment:
        require_instructor_role(principal, ACTION)
        missing = NotFound(f"courses/{course_id}/experiments/{experiment_id} not found")
        if not await teaches(session, principal, course_id):
            raise missing
        row = await repo.get_experiment(session, course_id, experiment_id, lock=lock)
        if row is None:
            raise missing
        return row

    async def _with_exposures(self, session: AsyncSession, row: Experiment) -> ExperimentView:
        exposures = await repo.exposure_counts(session, row.course_id, [row.experiment_id])
        return _view(row, exposures.get(row.experiment_id, {}))

    # --- lifecycle ---------------------------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        course_id: str,
        experiment_id: str,
        *,
        display_name: str,
        lever: str,
        arms: Sequence[Arm],
        video_ids: Sequence[str],
    ) -> ExperimentView:
        require_instructor_role(principal, ACTION)
        require_id(experiment_id, "experiment_id")
        if len(display_name) > MAX_DISPLAY_NAME:
            raise InvalidArgument.field("experiment.display_name", f"must be at most {MAX_DISPLAY_NAME} characters")
        try:
            chosen = Lever(lever)
        except ValueError:
            raise InvalidArgument.field(
                "experiment.lever", "is required: INTERVENTIONS, HINT_LADDER or NO_SPOILERS"
            ) from None
        _check_arms(chosen, arms)
        if len(video_ids) > MAX_VIDEOS:
            raise InvalidArgument.field("experiment.video_ids", f"must name at most {MAX_VIDEOS} videos")
        async with self._db.transaction() as session:
            videos = set(await self._course_videos(session, principal, course_id))
            for index, video_id in enumerate(video_ids):
                if video_id not in videos or video_id in video_ids[:index]:
                    raise InvalidArgument.field(
                        f"experiment.video_ids[{index}]",
                        f"`{video_id[:128]}` is not a video of course `{course_id}` (or is named twice)",
                    )
            row = await repo.add_experiment(
                session,
                course_id,
                experiment_id,
                display_name=display_name,
                lever=chosen.value,
                arms=[{"name": arm.name, "weight": arm.weight} for arm in arms],
                video_ids=list(video_ids),
                salt=secrets.token_hex(32),
                created_by=principal.user_id,
            )
            if row is None:
                raise AlreadyExists(f"courses/{course_id}/experiments/{experiment_id} already exists")
            return _view(row, {})

    async def get(self, principal: Principal, course_id: str, experiment_id: str) -> ExperimentView:
        async with self._db.session() as session:
            return await self._with_exposures(
                session, await self._experiment(session, principal, course_id, experiment_id)
            )

    async def list(
        self, principal: Principal, course_id: str, *, size: int, token: str
    ) -> tuple[list[ExperimentView], str]:
        require_instructor_role(principal, ACTION)
        require_id(course_id, "parent")
        limit = page_size(size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        scope = f"courses/{course_id}/experiments"
        after = decode_page_token(token, scope, (datetime, str))
        async with self._db.session() as session:
            if not await teaches(session, principal, course_id):
                raise NotFound(f"courses/{course_id} not found")
            rows = await repo.list_experiments(session, course_id, after=after, limit=limit + 1)
            exposures = await repo.exposure_counts(session, course_id, [row.experiment_id for row in rows[:limit]])
        views = [_view(row, exposures.get(row.experiment_id, {})) for row in rows[:limit]]
        next_token = ""
        if len(rows) > limit:
            next_token = encode_page_token(scope, [rows[limit - 1].create_time, rows[limit - 1].experiment_id])
        return views, next_token

    async def start(self, principal: Principal, course_id: str, experiment_id: str) -> ExperimentView:
        async with self._db.transaction() as session:
            await repo.lock_course_experiments(session, course_id)
            row = await self._experiment(session, principal, course_id, experiment_id, lock=True)
            if row.state != "draft":
                raise FailedPrecondition(
                    f"courses/{course_id}/experiments/{experiment_id} is {row.state}; only a draft starts "
                    "(an experiment runs once)",
                    reason="EXPERIMENT_NOT_DRAFT",
                )
            running = await repo.running_on_lever(session, course_id, row.lever)
            if running is not None:
                raise FailedPrecondition(
                    f"experiment `{running}` already runs on the {row.lever} lever of course `{course_id}`; "
                    "stop it first",
                    reason="EXPERIMENT_CONFLICT",
                    metadata={"experiment": f"courses/{course_id}/experiments/{running}"},
                )
            await repo.set_state(session, row, "running")
            return await self._with_exposures(session, row)

    async def stop(self, principal: Principal, course_id: str, experiment_id: str) -> ExperimentView:
        async with self._db.transaction() as session:
            row = await self._experiment(session, principal, course_id, experiment_id, lock=True)
            if row.state != "running":
                raise FailedPrecondition(
                    f"courses/{course_id}/experiments/{experiment_id} is {row.state}, not running",
                    reason="EXPERIMENT_NOT_RUNNING",
                )
            await repo.set_state(session, row, "stopped")
            return await self._with_exposures(session, row)

    # --- report ------------------------------------------------------------------------------------

    async def report(self, principal: Principal, course_id: str, experiment_id: str) -> ReportView:
        async with self._db.session() as session:
            row = await self._experiment(session, principal, course_id, experiment_id)
            if row.state == "draft":
                raise FailedPrecondition(
                    f"courses/{course_id}/experiments/{experiment_id} has not started; nothing to report yet",
                    reason="EXPERIMENT_NOT_STARTED",
                )
            view = await self._with_exposures(session, row)
            videos = list(view.video_ids) or await repo.course_videos(session, course_id)
            rows = await repo.outcome_rows(
                session,
                course_id,
                experiment_id,
                videos=videos,
                until=row.stop_time or datetime.now(UTC),
                rewatch_back=REWATCH_MIN_BACK_SECONDS,
            )
        arm_names = [arm.name for arm in view.arms]
        control = arm_names[0]
        outcomes: list[OutcomeView] = []

        correct = {name: (0, 0) for name in arm_names}
        for answer in rows.first_answers:
            correct[answer.arm] = (int(answer.correct), int(answer.n))
        outcomes.append(
            _outcome(
                "first_attempt_correct",
                "Share of first answers to quiz questions on the experiment's videos that were correct",
                "proportion",
                arm_names,
                lambda arm: compare_proportions(*correct[control], *correct[arm]),
            )
        )
        gains = _mastery_gains(rows.mastery_snapshots, arm_names, self._mastery_prior)
        completions = _per_arm(arm_names, [(r.arm, float(r.share)) for r in rows.completion])
        interactions = _per_arm(arm_names, [(r.arm, float(r.interactions)) for r in rows.usage])
        costs = _per_arm(arm_names, [(r.arm, float(r.cost)) for r in rows.usage])
        rewatches = _per_arm(arm_names, [(r.arm, float(r.rewatches)) for r in rows.rewatches])
        for metric, description, values in (
            ("mastery_gain", "Mastery gained per student on the concepts their answers touched", gains),
            ("video_completion", "Share of a student's watch sessions that covered 90 % of the video", completions),
            (
                "rewatches",
                "Rewatches per exposed student (seeks back by more than 2 s, the heatmap's rewatch signal)",
                rewatches,
            ),
            ("ai_interactions", "AI interactions per exposed student", interactions),
            ("ai_cost_usd", "Upstream model cost per exposed student (USD)", costs),
        ):
            outcomes.append(
                _outcome(
                    metric,
                    description,
                    "mean",
                    arm_names,
                    lambda arm, values=values: compare_means(values[control], values[arm]),
                )
            )
        return ReportView(view, tuple(outcomes), tuple(_notes(view, outcomes)))


def _outcome(metric: str, description: str, kind: str, arms: list[str], compare: Any) -> OutcomeView:
    comparisons = [(arm, compare(arm)) for arm in arms[1:]]
    estimates = [(arms[0], comparisons[0][1].control)] + [
        (arm, comparison.treatment) for arm, comparison in comparisons
    ]
    return OutcomeView(metric, description, kind, tuple(estimates), tuple(comparisons))


def _per_arm(arms: list[str], values: Sequence[tuple[str, float]]) -> dict[str, list[float]]:
    grouped: dict[str, list[float]] = {arm: [] for arm in arms}
    for arm, value in values:
        grouped.setdefault(arm, []).append(value)
    return grouped


def _mastery_gains(rows: Sequence[Any], arms: list[str], prior: float) -> dict[str, list[float]]:
    """Per student: mean over the concepts touched after exposure of (mastery after the last answer − mastery
    just before the exposure, the BKT prior when the concept had no answer before)."""
    gains: dict[str, list[float]] = {arm: [] for arm in arms}
    by_user: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_user[row.user_id].append(row)
    for attempts in by_user.values():
        before: dict[str, float] = {}
        after: dict[str, float] = {}
        touched: set[str] = set()
        for attempt in attempts:  # ordered by time
            for entry in attempt.mastery or ():
                concept, probability = str(entry.get("concept", "")), float(entry.get("probability", prior))
                if attempt.create_time < attempt.exposure_time:
                    before[concept] = probability
                else:
                    after[concept] = probability
                    if attempt.in_scope:
                        touched.add(concept)
        if touched:
            gain = sum(after[concept] - before.get(concept, prior) for concept in touched) / len(touched)
            gains.setdefault(attempts[0].arm, []).append(gain)
    return gains


def _notes(view: ExperimentView, outcomes: Sequence[OutcomeView]) -> list[str]:
    notes: list[str] = []
    if not view.exposures:
        notes.append("not enough data: no student has been exposed yet")
    for outcome in outcomes:
        short = [f"{arm} {estimate.n}" for arm, estimate in outcome.arms if estimate.n < MIN_SAMPLE]
        if short:
            notes.append(
                f"not enough data for {outcome.metric}: each arm needs {MIN_SAMPLE} "
                f"{'answers' if outcome.kind == 'proportion' else 'students'} ({', '.join(short)})"
            )
    notes.append(
        "first_attempt_correct counts answers, and one student's answers are not independent: its intervals "
        "are narrower than a per-student analysis would give"
    )
    return notes
