"""SubmitQuizAnswer: score an answer, store it idempotently, update the student's mastery.

The first submission of an attempt id is stored with its result; resubmitting the same attempt id returns
that result again (the mastery snapshot included), and the same id with a different answer is ALREADY_EXISTS
(ATTEMPT_ID_REUSED). Only a student's first answer to a question updates mastery: the correct option is
revealed with the result, so later answers to the same question are no evidence (stored with `counted`
false). Another student's quiz answers NOT_FOUND, exactly like a missing quiz, before anything in the request
is validated (AIP-211).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.agents import repository as repo
from server.agents.base import AgentDeps
from server.agents.domain import AnswerResult, MasteryView
from server.agents.mastery import P_INIT, normalize_concepts
from server.agents.mastery import update as bkt_update
from server.agents.models import ConceptMastery, QuizAttempt, QuizItem
from server.core.auth import Principal
from server.core.errors import AlreadyExists, InvalidArgument, NotFound
from server.core.users import ensure_user
from server.core.values import Citation

ATTEMPT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


def _citation(item: QuizItem) -> Citation:
    return Citation(item.video_id, item.start_seconds, item.end_seconds, item.chunk_id, item.quoted_text)


class AnswerAgent:
    def __init__(self, deps: AgentDeps) -> None:
        self._deps = deps

    async def submit(
        self, principal: Principal, *, quiz_id: str, question_id: str, selected_index: int, attempt_id: str
    ) -> AnswerResult:
        user_id = principal.user_id
        async with self._deps.database.transaction() as session:
            quiz = await repo.get_quiz(session, quiz_id, user_id)
            if quiz is None:
                raise NotFound(f"quizzes/{quiz_id} not found", reason="QUIZ_NOT_FOUND")
            if not ATTEMPT_ID.match(attempt_id):
                raise InvalidArgument.field("attempt_id", "is required: 1 to 128 characters of [A-Za-z0-9_.:-]")
            if not 0 <= selected_index <= 3:
                raise InvalidArgument.field("selected_index", "must be between 0 and 3")
            item = await repo.get_item(session, quiz.generated_quiz_id, question_id) if question_id else None
            if item is None:
                known = ", ".join(i.question_id for i in await repo.items_of(session, quiz.generated_quiz_id))
                raise InvalidArgument.field("question_id", f"{question_id!r} is not a question of this quiz ({known})")
            # Locks the user's row: one answer of a student at a time, so `counted` and mastery stay exact.
            await ensure_user(session, principal)
            existing = await repo.get_attempt(session, user_id, attempt_id)
            if existing is not None:
                return self._replay(existing, quiz_id, item, selected_index)
            row_id = uuid.uuid4().hex
            correct = selected_index == item.correct_index
            values = {
                "id": row_id,
                "user_id": user_id,
                "attempt_id": attempt_id,
                "quiz_id": quiz_id,
                "generated_quiz_id": quiz.generated_quiz_id,
                "question_id": question_id,
                "selected_index": selected_index,
                "correct": correct,
                "counted": False,
            }
            if not await repo.insert_attempt(session, values):
                raced = await repo.get_attempt(session, user_id, attempt_id)
                if raced is None:
                    raise RuntimeError("quiz attempt vanished after a conflicting insert")
                return self._replay(raced, quiz_id, item, selected_index)
            counted = not await repo.answered_before(
                session, user_id, quiz.generated_quiz_id, question_id, other_than=row_id
            )
            concepts = normalize_concepts(list(item.concepts))
            mastery = await self._update_mastery(session, user_id, concepts, correct) if counted else None
            if mastery is None:
                mastery = [_mastery_json(row) for row in await repo.mastery_of(session, user_id, concepts)]
            await repo.record_result(session, row_id, counted=counted, mastery=mastery)
        return AnswerResult(
            attempt_id=attempt_id,
            correct=correct,
            correct_index=item.correct_index,
            explanation=item.explanation,
            citation=_citation(item),
            mastery=tuple(_mastery_view(entry) for entry in mastery),
        )

    @staticmethod
    async def _update_mastery(
        session: AsyncSession, user_id: str, concepts: list[str], correct: bool
    ) -> list[dict[str, Any]]:
        rows = await repo.lock_mastery(session, user_id, concepts, P_INIT)
        now = datetime.now(UTC)
        for concept in concepts:
            row = rows[concept]
            row.probability = bkt_update(row.probability, correct)
            row.attempts += 1
            row.correct += int(correct)
            row.update_time = now
        await session.flush()
        return [_mastery_json(rows[concept]) for concept in concepts]

    @staticmethod
    def _replay(existing: QuizAttempt, quiz_id: str, item: QuizItem, selected_index: int) -> AnswerResult:
        same = (existing.quiz_id, existing.question_id, existing.selected_index) == (
            quiz_id,
            item.question_id,
            selected_index,
        )
        if not same:
            raise AlreadyExists(
                f"attempt_id {existing.attempt_id!r} was already used for a different answer",
                reason="ATTEMPT_ID_REUSED",
            )
        return AnswerResult(
            attempt_id=existing.attempt_id,
            correct=existing.correct,
            correct_index=item.correct_index,
            explanation=item.explanation,
            citation=_citation(item),
            mastery=tuple(_mastery_view(entry) for entry in existing.mastery),
        )


def _mastery_json(row: ConceptMastery) -> dict[str, Any]:
    return {
        "concept": row.concept,
        "probability": float(row.probability),
        "attempts": int(row.attempts),
        "correct": int(row.correct),
        "update_time": row.update_time.isoformat() if row.update_time is not None else "",
    }


def _mastery_view(entry: dict[str, Any]) -> MasteryView:
    stamp = entry.get("update_time")
    return MasteryView(
        concept=str(entry.get("concept", "")),
        probability=float(entry.get("probability", 0.0)),
        attempts=int(entry.get("attempts", 0)),
        correct=int(entry.get("correct", 0)),
        update_time=datetime.fromisoformat(stamp) if isinstance(stamp, str) and stamp else None,
    )
