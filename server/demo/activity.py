"""Synthetic activity on the demo course, so the instructor dashboard shows something on a fresh install.

Everything written here is made up and marked as such: the students are `synthetic-student-NN` (every id this
module writes starts with `synthetic-`), the tutor's answers are model `synthetic` and say they are synthetic.
64 students watch each of the four lectures once, between two weeks and two days ago; at a few hard stretches
per lecture (listed below) some of them seek back, pause, ask for a hint or ask the tutor a question whose
answer cites the stretch, and rate some answers. Two other messages were flagged for profanity. A stopped
experiment on proactive interventions has every student exposed (arms alternate by student), and students in
the `interventions` arm finish their lectures a little more often.

The rows go in directly, in one transaction, with a fixed random seed; the experiment is written last and
marks the activity as present, so seeding again does nothing (`seed_demo_activity` returns False).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.analytics.models import AIInteraction, FlaggedInteraction
from server.chat.models import ChatSession, StoredMessage
from server.core.db import Database
from server.core.models import User
from server.demo import DemoCourse, load_demo_course
from server.experiments.models import Experiment, ExperimentExposure
from server.progress.models import VideoEventRow, WatchSession

PREFIX = "synthetic-"
STUDENTS = 64
EXPERIMENT_ID = f"{PREFIX}proactive-tutor"
RANDOM_SEED = 101
MODEL = "synthetic"
# The share of a lecture's watch sessions that reach its end, by experiment arm.
COMPLETION = {"interventions": 0.72, "holdout": 0.5}
STARS = (1, 2, 3, 4, 5)
STAR_WEIGHTS = (0.05, 0.1, 0.2, 0.35, 0.3)


@dataclass(frozen=True)
class HardStretch:
    start: float
    end: float
    questions: tuple[str, ...]


HARD_STRETCHES: dict[str, tuple[HardStretch, ...]] = {
    "flexbox-layout": (
        HardStretch(
            95.0,
            125.0,
            (
                "Why does align-items move things vertically in a row but horizontally in a column?",
                "What is the difference between justify-content and align-items?",
            ),
        ),
        HardStretch(
            295.0,
            325.0,
            ("Why doesn't flex-grow: 2 make the item twice as wide?", "What does flex-basis do compared to width?"),
        ),
        HardStretch(415.0, 440.0, ("Why does my flex item overflow instead of shrinking?",)),
    ),
    "async-javascript": (
        HardStretch(
            195.0,
            225.0,
            (
                "Why does a resolved promise run before a setTimeout with zero delay?",
                "What is the microtask queue?",
            ),
        ),
        HardStretch(285.0, 305.0, ("Why do I get a pending promise instead of the value?",)),
        HardStretch(385.0, 410.0, ("Why doesn't fetch reject on a 404?",)),
    ),
    "react-state-effects": (
        HardStretch(75.0, 100.0, ("Why does console.log still show the old count after setCount?",)),
        HardStretch(
            240.0,
            280.0,
            ("Why is count stuck at zero inside setInterval?", "When do I need a cleanup function?"),
        ),
        HardStretch(305.0, 335.0, ("Why can't the effect function itself be async?",)),
    ),
    "http-caching": (
        HardStretch(60.0, 90.0, ("What is the difference between an ETag and Last-Modified?",)),
        HardStretch(108.0, 130.0, ("Does no-cache mean the browser never caches the response?",)),
        HardStretch(180.0, 205.0, ("Why put a content hash in the file name?",)),
    ),
}
FLAGGED = (
    ("flexbox-layout", 110.0, "This damn centering still doesn't work, what the hell"),
    ("async-javascript", 200.0, "this crap makes no sense at all"),
)


def student_id(index: int) -> str:
    return f"{PREFIX}student-{index + 1:02d}"


def synthetic_id() -> str:
    return f"{PREFIX}{uuid.uuid4().hex}"


class _Rows:
    """The rows of every table, collected before one insert per table."""

    def __init__(self, course: DemoCourse, rng: random.Random, start: datetime, stop: datetime) -> None:
        self.course = course
        self.rng = rng
        self.start = start
        self.stop = stop
        self.tables: dict[type[Any], list[dict[str, Any]]] = {
            model: [] for model in (User, WatchSession, VideoEventRow, ChatSession, AIInteraction, FlaggedInteraction)
        }
        self.questions: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []

    def moment(self) -> datetime:
        return self.start + (self.stop - self.start) * self.rng.uniform(0.02, 0.98)

    def event(self, session: dict[str, Any], kind: str, position: float, at: datetime, **extra: Any) -> None:
        self.tables[VideoEventRow].append(
            {
                "watch_session_id": session["id"],
                "user_id": session["user_id"],
                "video_id": session["video_id"],
                "event_id": synthetic_id(),
                "type": kind,
                "position_seconds": position,
                "seek_from_seconds": extra.get("seek_from"),
                "seek_to_seconds": extra.get("seek_to"),
                "event_time": at,
                "receive_time": at,
            }
        )

    def interaction(self, user: str, agent: str, video_id: str, position: float, at: datetime) -> dict[str, Any]:
        rated = self.rng.random() < 0.5
        row = {
            "id": synthetic_id(),
            "user_id": user,
            "agent_type": agent,
            "trigger": "user",
            "course_id": self.course.course_id,
            "video_id": video_id,
            "position_seconds": position,
            "model": MODEL,
            "rating": self.rng.choices(STARS, STAR_WEIGHTS)[0] if rated else None,
            "rate_time": at if rated else None,
            "create_time": at,
        }
        self.tables[AIInteraction].append(row)
        return row

    def conversation(
        self, user: str, video_id: str, stretch: HardStretch, question: str, at: datetime, *, cited: bool = True
    ) -> str:
        """A chat session with one question and an answer (citing the stretch when `cited`); returns the
        question's name."""
        session_id = synthetic_id()
        position = self.rng.uniform(stretch.start, stretch.end)
        self.tables[ChatSession].append(
            {
                "id": session_id,
                "user_id": user,
                "title": "Synthetic demo conversation",
                "course_id": self.course.course_id,
                "video_id": video_id,
                "position_seconds": position,
                "create_time": at,
                "update_time": at,
            }
        )
        interaction = self.interaction(user, "chat", video_id, position, at)
        question_id = synthetic_id()
        self.questions.append(
            {"id": question_id, "session_id": session_id, "role": "user", "content": question, "create_time": at}
        )
        self.answers.append(
            {
                "id": synthetic_id(),
                "session_id": session_id,
                "role": "assistant",
                "content": "A synthetic answer for the demo dashboard: the cited part of the lecture explains it.",
                "model": MODEL,
                "finish_reason": "stop",
                "citations": [
                    {
                        "video_id": video_id,
                        "start_seconds": stretch.start,
                        "end_seconds": stretch.end,
                        "chunk_id": "",
                        "quoted_text": "",
                    }
                ]
                if cited
                else [],
                "interaction_id": interaction["id"],
                "create_time": at + timedelta(seconds=3),
            }
        )
        return f"sessions/{session_id}/messages/{question_id}"

    def watch(self, user: str, arm: str, video_id: str, duration: float) -> None:
        at = self.moment()
        completed = self.rng.random() < COMPLETION[arm]
        session = {
            "id": synthetic_id(),
            "user_id": user,
            "video_id": video_id,
            "course_id": self.course.course_id,
            "duration_seconds": duration,
            "watched_seconds": duration * (self.rng.uniform(0.92, 1.0) if completed else self.rng.uniform(0.2, 0.8)),
            "create_time": at,
            "update_time": at + timedelta(seconds=duration),
        }
        self.tables[WatchSession].append(session)
        for _ in range(2):
            position = self.rng.uniform(0.0, duration)
            self.event(session, "paused", position, at + timedelta(seconds=position))
        for stretch in HARD_STRETCHES[video_id]:
            when = at + timedelta(seconds=stretch.end)
            if self.rng.random() < 0.6:
                landing = self.rng.uniform(stretch.start, stretch.end - 5.0)
                self.event(session, "seeked", landing, when, seek_from=stretch.end + 10.0, seek_to=landing)
            if self.rng.random() < 0.5:
                self.event(session, "paused", self.rng.uniform(stretch.start, stretch.end), when)
            if self.rng.random() < 0.3:
                self.interaction(user, "hint", video_id, self.rng.uniform(stretch.start, stretch.end), when)
            if self.rng.random() < 0.35:
                self.conversation(user, video_id, stretch, self.rng.choice(stretch.questions), when)

    def flag(self, user: str, video_id: str, position: float, words: str) -> None:
        stretch = next(s for s in HARD_STRETCHES[video_id] if s.start <= position < s.end)
        at = self.moment()
        # Its answer cites nothing, so the flagged words stay out of the questions instructors browse.
        message = self.conversation(user, video_id, stretch, words, at, cited=False)
        self.tables[FlaggedInteraction].append(
            {
                "id": synthetic_id(),
                "user_id": user,
                "course_id": self.course.course_id,
                "video_id": video_id,
                "surface": "chat",
                "message": message,
                "category": "profanity",
                "score": 0.9,
                "detector": "offline-heuristic",
                "excerpt": words,
                "create_time": at,
            }
        )


async def demo_activity_present(session: AsyncSession, course_id: str) -> bool:
    found = await session.execute(
        select(Experiment.experiment_id).where(
            Experiment.course_id == course_id, Experiment.experiment_id == EXPERIMENT_ID
        )
    )
    return found.scalar_one_or_none() is not None


async def seed_demo_activity(database: Database) -> bool:
    """Write the synthetic activity unless it is there already; True when it was written now."""
    course = load_demo_course()
    now = datetime.now(UTC).replace(microsecond=0)
    start, stop = now - timedelta(days=14), now - timedelta(days=2)
    rows = _Rows(course, random.Random(RANDOM_SEED), start, stop)
    arms = ("interventions", "holdout")
    for index in range(STUDENTS):
        user = student_id(index)
        rows.tables[User].append({"id": user, "create_time": start, "last_seen_time": stop})
        for video in course.videos:
            rows.watch(user, arms[index % 2], video.video_id, video.duration_seconds)
    for index, (video_id, position, words) in enumerate(FLAGGED):
        rows.flag(student_id(index * 7), video_id, position, words)
    async with database.transaction() as session:
        # Replicas starting together take turns; the second finds the activity in place.
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('demo-activity'))"))
        if await demo_activity_present(session, course.course_id):
            return False
        for model, values in rows.tables.items():
            await session.execute(insert(model), values)
        # Questions first: an answer must come after its question in message order.
        await session.execute(insert(StoredMessage), rows.questions)
        await session.execute(insert(StoredMessage), rows.answers)
        await session.execute(
            insert(Experiment).values(
                course_id=course.course_id,
                experiment_id=EXPERIMENT_ID,
                display_name="Proactive interventions vs none (synthetic data)",
                lever="interventions",
                arms=[{"name": arm, "weight": 1.0} for arm in arms],
                state="stopped",
                salt=uuid.uuid4().hex,
                created_by=f"{PREFIX}instructor",
                create_time=start,
                start_time=start,
                stop_time=stop,
            )
        )
        await session.execute(
            insert(ExperimentExposure),
            [
                {
                    "course_id": course.course_id,
                    "experiment_id": EXPERIMENT_ID,
                    "user_id": student_id(index),
                    "arm": arms[index % 2],
                    "exposure_time": start,
                }
                for index in range(STUDENTS)
            ],
        )
    return True
