"""SQL of the agents domain. Functions take the caller's session; they flush, never commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.agents.models import ConceptMastery, GeneratedQuiz, Preference, Quiz, QuizAttempt, QuizItem
from server.analytics.models import AIInteraction

MAX_FORBIDDEN_ITEMS = 2000


async def find_generated(session: AsyncSession, cache_key: str) -> GeneratedQuiz | None:
    """The newest unexpired generated quiz for this cache key."""
    statement = (
        select(GeneratedQuiz)
        .where(GeneratedQuiz.cache_key == cache_key, GeneratedQuiz.expire_time > func.now())
        .order_by(GeneratedQuiz.create_time.desc())
        .limit(1)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def stems_on_overlapping(
    session: AsyncSession, video_id: str, start: float, end: float, *, other_than: str
) -> frozenset[str]:
    """Stems of the unexpired quizzes on stretches of the video overlapping [start, end], but the one cached
    under `other_than` (the same request, made again)."""
    statement = (
        select(QuizItem.stem)
        .join(GeneratedQuiz, GeneratedQuiz.id == QuizItem.generated_quiz_id)
        .where(
            GeneratedQuiz.video_id == video_id,
            GeneratedQuiz.start_seconds < end,
            GeneratedQuiz.end_seconds > start,
            GeneratedQuiz.expire_time > func.now(),
            GeneratedQuiz.cache_key != other_than,
        )
    )
    return frozenset((await session.execute(statement)).scalars())


async def items_of(session: AsyncSession, generated_quiz_id: str) -> list[QuizItem]:
    statement = select(QuizItem).where(QuizItem.generated_quiz_id == generated_quiz_id).order_by(QuizItem.position)
    return list((await session.execute(statement)).scalars())


async def get_item(session: AsyncSession, generated_quiz_id: str, question_id: str) -> QuizItem | None:
    return await session.get(QuizItem, (generated_quiz_id, question_id))


async def get_quiz(session: AsyncSession, quiz_id: str, user_id: str) -> Quiz | None:
    """The user's quiz; another user's quiz is None, exactly like a missing one."""
    statement = select(Quiz).where(Quiz.id == quiz_id, Quiz.user_id == user_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def get_attempt(session: AsyncSession, user_id: str, attempt_id: str) -> QuizAttempt | None:
    statement = select(QuizAttempt).where(QuizAttempt.user_id == user_id, QuizAttempt.attempt_id == attempt_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_attempt(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert unless the user already used this attempt id (then False; a concurrent insert is waited for)."""
    statement = (
        insert(QuizAttempt)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[QuizAttempt.user_id, QuizAttempt.attempt_id])
        .returning(QuizAttempt.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def record_result(
    session: AsyncSession, attempt_id: str, *, counted: bool, mastery: list[dict[str, Any]]
) -> None:
    """Store whether the attempt (by row id) counted and the mastery it left."""
    await session.execute(
        update(QuizAttempt).where(QuizAttempt.id == attempt_id).values(counted=counted, mastery=mastery)
    )


async def answered_before(
    session: AsyncSession, user_id: str, generated_quiz_id: str, question_id: str, *, other_than: str
) -> bool:
    statement = select(func.count()).where(
        QuizAttempt.user_id == user_id,
        QuizAttempt.generated_quiz_id == generated_quiz_id,
        QuizAttempt.question_id == question_id,
        QuizAttempt.id != other_than,
    )
    return bool((await session.execute(statement)).scalar_one())


async def lock_mastery(
    session: AsyncSession, user_id: str, concepts: Sequence[str], initial: float
) -> dict[str, ConceptMastery]:
    """The user's mastery rows for these concepts, created at `initial` when new, locked for update."""
    if not concepts:
        return {}
    await session.execute(
        insert(ConceptMastery)
        .values([{"user_id": user_id, "concept": concept, "probability": initial} for concept in concepts])
        .on_conflict_do_nothing(index_elements=[ConceptMastery.user_id, ConceptMastery.concept])
    )
    statement = (
        select(ConceptMastery)
        .where(ConceptMastery.user_id == user_id, ConceptMastery.concept.in_(list(concepts)))
        .order_by(ConceptMastery.concept)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.concept: row for row in (await session.execute(statement)).scalars()}


async def mastery_of(
    session: AsyncSession, user_id: str, concepts: Sequence[str] | None = None
) -> list[ConceptMastery]:
    statement = select(ConceptMastery).where(ConceptMastery.user_id == user_id)
    if concepts is not None:
        statement = statement.where(ConceptMastery.concept.in_(list(concepts)))
    return list((await session.execute(statement.order_by(ConceptMastery.probability))).scalars())


async def forbidden_answers(session: AsyncSession, video_id: str, ranges: Sequence[tuple[float, float]]) -> list[str]:
    """The correct options of every quiz question on these stretches of the video (any student's quiz)."""
    if not ranges:
        return []
    overlapping = [
        or_(
            and_(QuizItem.start_seconds < end, QuizItem.end_seconds > start),
            and_(GeneratedQuiz.start_seconds < end, GeneratedQuiz.end_seconds > start),
        )
        for start, end in ranges
    ]
    statement = (
        select(QuizItem.options, QuizItem.correct_index)
        .join(GeneratedQuiz, GeneratedQuiz.id == QuizItem.generated_quiz_id)
        .where(GeneratedQuiz.video_id == video_id, or_(*overlapping))
        .limit(MAX_FORBIDDEN_ITEMS)
    )
    answers: list[str] = []
    for options, correct_index in (await session.execute(statement)).all():
        if isinstance(options, list) and 0 <= correct_index < len(options):
            answer = str(options[correct_index])
            if answer not in answers:
                answers.append(answer)
    return answers


@dataclass(frozen=True)
class HelpSpot:
    """Where a student got help (hints, interventions, chat with a playhead). `trigger` says who started it:
    "user" when the student asked, an intervention reason ("REWATCH", ...) when the tutor stepped in."""

    video_id: str
    position_seconds: float
    agent_type: str
    trigger: str
    create_time: datetime


async def help_spots(
    session: AsyncSession, user_id: str, *, video_ids: Sequence[str], agent_types: Sequence[str], limit: int = 200
) -> list[HelpSpot]:
    if not video_ids:
        return []
    statement = (
        select(
            AIInteraction.video_id,
            AIInteraction.position_seconds,
            AIInteraction.agent_type,
            AIInteraction.trigger,
            AIInteraction.create_time,
        )
        .where(
            AIInteraction.user_id == user_id,
            AIInteraction.video_id.in_(list(video_ids)),
            AIInteraction.agent_type.in_(list(agent_types)),
        )
        .order_by(AIInteraction.create_time.desc())
        .limit(limit)
    )
    return [HelpSpot(*row) for row in (await session.execute(statement)).all()]


async def quizzed_concepts(
    session: AsyncSession, user_id: str, *, video_id: str = "", course_id: str = ""
) -> list[str]:
    """Concepts of questions the user answered, on one video or in one course, most recent first."""
    statement = (
        select(QuizItem.concepts, func.max(QuizAttempt.create_time).label("last"))
        .join(
            QuizAttempt,
            and_(
                QuizAttempt.generated_quiz_id == QuizItem.generated_quiz_id,
                QuizAttempt.question_id == QuizItem.question_id,
            ),
        )
        .join(GeneratedQuiz, GeneratedQuiz.id == QuizItem.generated_quiz_id)
        .where(QuizAttempt.user_id == user_id)
        .group_by(QuizItem.concepts)
        .order_by(func.max(QuizAttempt.create_time).desc())
    )
    if video_id:
        statement = statement.where(GeneratedQuiz.video_id == video_id)
    if course_id:
        statement = statement.where(GeneratedQuiz.course_id == course_id)
    concepts: list[str] = []
    for names, _ in (await session.execute(statement)).all():
        for name in names or []:
            if isinstance(name, str) and name not in concepts:
                concepts.append(name)
    return concepts


async def last_hint_level(
    session: AsyncSession, user_id: str, video_id: str, moment: str, *, within_seconds: float
) -> int:
    """The rung of this student's latest hint for this moment in the last `within_seconds` (0: none)."""
    statement = (
        select(AIInteraction.attributes["level"].astext)
        .where(
            AIInteraction.user_id == user_id,
            AIInteraction.agent_type == "hint",
            AIInteraction.video_id == video_id,
            AIInteraction.attributes["moment"].astext == moment,
            AIInteraction.create_time > func.now() - func.make_interval(0, 0, 0, 0, 0, 0, within_seconds),
        )
        .order_by(AIInteraction.create_time.desc())
        .limit(1)
    )
    level = (await session.execute(statement)).scalar_one_or_none()
    return int(level) if level is not None and level.isdigit() else 0


async def get_preference(session: AsyncSession, user_id: str) -> Preference | None:
    return await session.get(Preference, user_id)


async def save_preference(session: AsyncSession, user_id: str, changes: dict[str, Any]) -> Preference:
    """Insert the user's preferences with `changes`, or apply `changes` to the stored ones; the stored row."""
    statement = insert(Preference).values(user_id=user_id, **changes)
    if changes:
        statement = statement.on_conflict_do_update(
            index_elements=[Preference.user_id], set_={**changes, "update_time": func.now()}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=[Preference.user_id])
    await session.execute(statement)
    return (await session.execute(select(Preference).where(Preference.user_id == user_id))).scalar_one()
