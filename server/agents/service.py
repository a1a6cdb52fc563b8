"""The agents' domain service (`runtime.agents`): hints, quizzes and answers, reflections, learning paths and
review pointers, for the AgentService RPCs and for interventions.

Every call is recorded as an AI interaction (agent type, trigger, model, tokens, cost, latency, cached,
confidence). Model calls go through `StructuredCaller` (PII redaction, token-budget reservations, JSON
schema output validated in code); without a model, or when it is down or keeps answering badly, each agent
has an offline path built from the course's own transcripts.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.agents.answers import AnswerAgent
from server.agents.base import AgentDeps
from server.agents.corpus import CorpusCache
from server.agents.domain import (
    USER_TRIGGER,
    AnswerResult,
    HintResult,
    LearningPathResult,
    QuizResult,
    ReflectionResult,
    ReviewResult,
)
from server.agents.hints import HintAgent
from server.agents.learning_path import LearningPathAgent
from server.agents.preferences import PreferencesService
from server.agents.quizzes import QuizAgent, QuizRequest
from server.agents.reflection import ReflectionAgent
from server.agents.review import ReviewAgent
from server.config import Settings
from server.core.auth import Principal
from server.core.db import Database
from server.experiments.assignment import Assignments
from server.limits.budget import TokenBudget
from server.llm.moderation import Moderator
from server.llm.router import LLMRouter
from server.llm.structured import StructuredCaller
from server.transcripts.search import TranscriptSearch
from server.transcripts.sentences import SentenceStore

__all__ = [
    "AgentsService",
    "AnswerResult",
    "HintResult",
    "LearningPathResult",
    "QuizRequest",
    "QuizResult",
    "ReflectionResult",
    "ReviewResult",
]

INTERVENTION_TRIGGER = "intervention"


class AgentsService:
    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        search: TranscriptSearch,
        sentences: SentenceStore,
        llm: LLMRouter,
        budget: TokenBudget,
        preferences: PreferencesService,
        moderator: Moderator,
    ) -> None:
        deps = AgentDeps(
            settings=settings,
            database=database,
            search=search,
            sentences=sentences,
            caller=StructuredCaller(settings, llm, budget, moderator),
            preferences=preferences,
            corpora=CorpusCache(search, sentences),
            moderator=moderator,
            assignments=Assignments(database),
        )
        self._hints = HintAgent(deps)
        self._quizzes = QuizAgent(deps)
        self._answers = AnswerAgent(deps)
        self._reflections = ReflectionAgent(deps)
        self._paths = LearningPathAgent(deps)
        self._reviews = ReviewAgent(deps)

    async def hint_for(
        self,
        principal: Principal,
        *,
        video_id: str,
        course_id: str,
        position_seconds: float,
        selected_range: tuple[float, float] | None,
        struggle: str,
        trigger: str,
        deadline: float | None = None,
    ) -> HintResult:
        return await self._hints.hint(
            principal,
            video_id=video_id,
            course_id=course_id,
            position_seconds=position_seconds,
            selected_range=selected_range,
            struggle=struggle,
            trigger=trigger,
            deadline=deadline,
        )

    async def quiz_for(
        self,
        principal: Principal,
        *,
        video_id: str,
        start_seconds: float,
        end_seconds: float,
        question_count: int,
        difficulty: str,
        trigger: str,
        deadline: float | None = None,
    ) -> QuizResult:
        request = QuizRequest(video_id, difficulty, question_count, range=(start_seconds, end_seconds))
        return await self._quizzes.generate(principal, request, trigger=trigger, deadline=deadline)

    async def generate_quiz(
        self, principal: Principal, request: QuizRequest, *, trigger: str = USER_TRIGGER, deadline: float | None = None
    ) -> QuizResult:
        return await self._quizzes.generate(principal, request, trigger=trigger, deadline=deadline)

    async def submit_answer(
        self, principal: Principal, *, quiz_id: str, question_id: str, selected_index: int, attempt_id: str
    ) -> AnswerResult:
        return await self._answers.submit(
            principal,
            quiz_id=quiz_id,
            question_id=question_id,
            selected_index=selected_index,
            attempt_id=attempt_id,
        )

    async def reflection_for(
        self,
        principal: Principal,
        *,
        video_id: str,
        course_id: str,
        position_seconds: float,
        completed_topics: Sequence[str] = (),
        learning_objectives: Sequence[str] = (),
        trigger: str = USER_TRIGGER,
        deadline: float | None = None,
    ) -> ReflectionResult:
        return await self._reflections.reflect(
            principal,
            video_id=video_id,
            course_id=course_id,
            position_seconds=position_seconds,
            completed_topics=completed_topics,
            learning_objectives=learning_objectives,
            trigger=trigger,
            deadline=deadline,
        )

    async def learning_path_for(
        self,
        principal: Principal,
        *,
        course_id: str,
        struggling_concepts: Sequence[str] = (),
        completed_concepts: Sequence[str] = (),
        goals: Sequence[str] = (),
        trigger: str = USER_TRIGGER,
        deadline: float | None = None,
    ) -> LearningPathResult:
        return await self._paths.plan(
            principal,
            course_id=course_id,
            struggling=struggling_concepts,
            completed=completed_concepts,
            goals=goals,
            trigger=trigger,
            deadline=deadline,
        )

    async def review_for(
        self,
        principal: Principal,
        *,
        video_id: str,
        course_id: str,
        position_seconds: float,
        trigger: str = INTERVENTION_TRIGGER,
    ) -> ReviewResult:
        return await self._reviews.review(
            principal, video_id=video_id, course_id=course_id, position_seconds=position_seconds, trigger=trigger
        )
