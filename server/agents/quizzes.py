"""GenerateQuiz: generated quizzes, shared through a PostgreSQL cache, and each student's own quiz of them.

Longer than 400 lines because the agent is one flow read top to bottom: the quiz's scope, the single-flight
cache, generation with its retry and offline fallback, storing the shared quiz and issuing the student's copy.
Its rules and its offline generator are already modules of their own (`quiz_rules`, `quiz_offline`).

Generation: with a model, one structured-output call (strict JSON schema) whose questions are validated in
code (`quiz_rules`); invalid output gets one retry with the problems listed, then the offline generator
(`quiz_offline`) answers. Without a model (or with the breaker open) the offline generator answers at once.

Sharing and ownership: generated quizzes are shared content (`generated_quizzes`, `quiz_items`), cached by
(video, range or chunk ids, difficulty, question count, model, prompt version, and a fingerprint of the
transcript chunks used) until `quiz_cache_ttl_seconds` has passed. Every GenerateQuiz call, cached or not,
creates the caller's own `quizzes/{quiz}` row pointing at the shared content; attempts and mastery hang off
that row and the caller. Another student's quiz id answers NOT_FOUND, exactly like a missing quiz (AIP-211),
even when both point at the same content. A cache hit costs no tokens and is marked `cached`. Concurrent
requests for the same key in one process wait for the first one's result; two replicas may each generate
once (both rows are valid; the newest is served).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.agents import repository as repo
from server.agents.base import AgentDeps, Interaction, check_range, preferences_of, require_video
from server.agents.domain import DIFFICULTIES, QuestionView, QuizResult
from server.agents.models import GeneratedQuiz, Quiz, QuizItem
from server.agents.quiz_offline import OFFLINE_QUIZ_VERSION, offline_quiz
from server.agents.quiz_rules import (
    QUIZ_PROMPT_VERSION,
    QUIZ_SCHEMA,
    QUIZ_SCHEMA_NAME,
    TOKENS_PER_QUESTION,
    QuizItemDraft,
    check_quiz,
    quiz_messages,
    retry_messages,
)
from server.analytics.repository import record_interaction
from server.core import metrics
from server.core.auth import Principal
from server.core.errors import FailedPrecondition, InvalidArgument
from server.core.users import ensure_user
from server.core.values import SearchHit, Usage, VideoInfo
from server.llm.grounding import KIND_SELECTED, label_sources, shorten
from server.llm.offline import OFFLINE_MODEL
from server.llm.structured import Spend

logger = logging.getLogger(__name__)

MIN_QUESTIONS, MAX_QUESTIONS = 1, 10
MAX_CHUNK_IDS = 50
MAX_QUIZ_SOURCES = 12
OFFLINE_CONFIDENCE = 0.9
RETRY_CONFIDENCE = 0.85


@dataclass(frozen=True)
class QuizRequest:
    video_id: str
    difficulty: str
    question_count: int
    range: tuple[float, float] | None = None
    chunk_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Scope:
    info: VideoInfo
    start: float
    end: float
    chunks: list[SearchHit]


@dataclass(frozen=True)
class _Generated:
    items: list[QuizItemDraft]
    model: str
    prompt_version: str
    confidence: float
    validation: str


@dataclass
class _Flight:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


def cache_key(scope: _Scope, request: QuizRequest, model: str, prompt_version: str) -> str:
    content = hashlib.sha256()
    for chunk in scope.chunks:
        content.update(f"{chunk.chunk_id}\x00{chunk.text}\x00".encode())
    canonical = json.dumps(
        {
            "video": scope.info.video_id,
            "range": [round(scope.start, 2), round(scope.end, 2)],
            "chunks": sorted(request.chunk_ids),
            "difficulty": request.difficulty,
            "count": request.question_count,
            "model": model,
            "prompt_version": prompt_version,
            "content": content.hexdigest(),
        },
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _spread(chunks: Sequence[SearchHit], limit: int) -> list[SearchHit]:
    """At most `limit` chunks spread evenly over the stretch."""
    if len(chunks) <= limit:
        return list(chunks)
    step = len(chunks) / limit
    return [chunks[int(i * step)] for i in range(limit)]


class QuizAgent:
    def __init__(self, deps: AgentDeps) -> None:
        self._deps = deps
        self._flights: dict[str, _Flight] = {}

    # --- generation --------------------------------------------------------------------------------

    async def generate(
        self, principal: Principal, request: QuizRequest, *, trigger: str, deadline: float | None
    ) -> QuizResult:
        interaction = Interaction("quiz", trigger, time.monotonic(), video_id=request.video_id)
        if not MIN_QUESTIONS <= request.question_count <= MAX_QUESTIONS:
            raise InvalidArgument.field("question_count", f"must be between {MIN_QUESTIONS} and {MAX_QUESTIONS}")
        if request.difficulty not in DIFFICULTIES:
            raise InvalidArgument.field("difficulty", f"must be one of {', '.join(DIFFICULTIES)}")
        scope = await self._scope(request)
        interaction.course_id, interaction.position_seconds = scope.info.course_id, scope.start
        caller = self._deps.caller
        online = caller.online()
        model, version = (caller.model, QUIZ_PROMPT_VERSION) if online else (OFFLINE_MODEL, OFFLINE_QUIZ_VERSION)
        key = cache_key(scope, request, model, version)
        async with self._single_flight(key):
            async with self._deps.database.session() as session:
                hit = await repo.find_generated(session, key)
            metrics.count_cache_lookup("quiz", hit is not None)
            if hit is not None:
                async with self._deps.database.transaction() as session:
                    await ensure_user(session, principal)
                    items = await repo.items_of(session, hit.id)
                    return await self._issue(session, principal, hit, items, interaction, Usage(), "cached")
            spend = Spend()
            generated = await self._generate(principal, scope, request, deadline, spend, seed=key)
            if (generated.model, generated.prompt_version) != (model, version):
                key = cache_key(scope, request, generated.model, generated.prompt_version)
            return await self._store(principal, key, scope, request, generated, spend, interaction)

    async def _scope(self, request: QuizRequest) -> _Scope:
        info = await require_video(self._deps, request.video_id)
        if request.chunk_ids:
            if len(request.chunk_ids) > MAX_CHUNK_IDS:
                raise InvalidArgument.field("chunk_ids", f"at most {MAX_CHUNK_IDS} chunk ids")
            found = [
                hit for hit in await self._deps.search.get_chunks(request.chunk_ids) if hit.video_id == info.video_id
            ]
            missing = sorted(set(request.chunk_ids) - {hit.chunk_id for hit in found})
            if missing:
                raise FailedPrecondition(
                    f"{', '.join(missing[:5])} {'is' if len(missing) == 1 else 'are'} not a transcript chunk of video "
                    f"{info.video_id!r} (re-ingesting a video replaces its chunks)",
                    reason="CHUNKS_NOT_FOUND",
                    metadata={"video_id": info.video_id},
                )
            chunks = sorted(found, key=lambda hit: hit.start_seconds)
            return _Scope(info, chunks[0].start_seconds, chunks[-1].end_seconds, chunks)
        if request.range is not None:
            start, end = check_range(info, *request.range, "range")
        else:
            start, end = 0.0, info.duration_seconds if info.duration_seconds > 0 else 1e9
        chunks = await self._deps.search.chunks_in_range(info.video_id, start, end)
        if not chunks:
            raise FailedPrecondition(
                f"video {info.video_id!r} has no transcript text between {start:g}s and {end:g}s",
                reason="NO_TRANSCRIPT_IN_RANGE",
                metadata={"video_id": info.video_id},
            )
        return _Scope(info, start, min(end, chunks[-1].end_seconds), chunks)

    @contextlib.asynccontextmanager
    async def _single_flight(self, key: str) -> AsyncIterator[None]:
        flight = self._flights.setdefault(key, _Flight())
        flight.waiting += 1
        try:
            async with flight.lock:
                yield
        finally:
            flight.waiting -= 1
            if flight.waiting == 0:
                self._flights.pop(key, None)

    async def _generate(
        self,
        principal: Principal,
        scope: _Scope,
        request: QuizRequest,
        deadline: float | None,
        spend: Spend,
        *,
        seed: str,
    ) -> _Generated:
        corpus = await self._deps.corpora.load(scope.info.course_id)
        if not any(corpus.index.sentences_of(chunk.chunk_id) for chunk in scope.chunks):
            # Stored before the sentence analysis existed: the backfill job has not reached it yet.
            raise FailedPrecondition(
                f"the transcript of video {scope.info.video_id!r} is still being analysed; try again in a minute",
                reason="ANALYSIS_PENDING",
                metadata={"video_id": scope.info.video_id},
            )
        count = request.question_count
        attempts = 0
        if self._deps.caller.online():
            _, persona = await preferences_of(self._deps, principal)
            sources = label_sources([(KIND_SELECTED, _spread(scope.chunks, MAX_QUIZ_SOURCES))], MAX_QUIZ_SOURCES)
            messages = quiz_messages(
                sources, count=count, difficulty=request.difficulty, persona=persona, title=scope.info.title
            )
            while attempts < 2:
                answer = await self._deps.caller.ask(
                    principal,
                    operation="quiz",
                    messages=messages,
                    schema_name=QUIZ_SCHEMA_NAME,
                    schema=QUIZ_SCHEMA,
                    temperature=persona.temperature,
                    max_tokens=TOKENS_PER_QUESTION * count + 200,
                    deadline=deadline,
                    spend=spend,
                )
                if answer is None:
                    break
                attempts += 1
                if answer.data is not None:
                    items, problems = check_quiz(answer.data, sources, count, corpus.index)
                else:
                    items, problems = [], [answer.problem]
                if len(items) >= count:
                    factor = 1.0 if attempts == 1 else RETRY_CONFIDENCE
                    confidence = factor * sum(item.support for item in items) / len(items)
                    validation = "model" if attempts == 1 else "model-retry"
                    return _Generated(items, answer.model, QUIZ_PROMPT_VERSION, round(confidence, 3), validation)
                logger.warning("quiz output rejected", extra={"attempt": attempts, "problems": problems[:5]})
                messages = retry_messages(messages, answer.raw_text, problems, count)
        async with self._deps.database.reader() as session:
            asked = await repo.stems_on_overlapping(
                session, scope.info.video_id, scope.start, scope.end, other_than=seed
            )
        items = offline_quiz(
            scope.chunks,
            corpus,
            video_id=scope.info.video_id,
            difficulty=request.difficulty,
            count=count,
            seed=seed,
            asked_before=asked,
        )
        if not items:
            raise FailedPrecondition(
                f"the transcript between {scope.start:g}s and {scope.end:g}s of video {scope.info.video_id!r} is too "
                "short to ask questions about; choose a longer range",
                reason="NOT_ENOUGH_CONTENT",
                metadata={"video_id": scope.info.video_id},
            )
        validation = "offline" if attempts == 0 else "offline-after-invalid-output"
        confidence = OFFLINE_CONFIDENCE * sum(item.support for item in items) / len(items)
        return _Generated(items, OFFLINE_MODEL, OFFLINE_QUIZ_VERSION, round(confidence, 3), validation)

    async def _store(
        self,
        principal: Principal,
        key: str,
        scope: _Scope,
        request: QuizRequest,
        generated: _Generated,
        spend: Spend,
        interaction: Interaction,
    ) -> QuizResult:
        now = datetime.now(UTC)
        usage = spend.usage
        shared = GeneratedQuiz(
            id=uuid.uuid4().hex,
            cache_key=key,
            video_id=scope.info.video_id,
            course_id=scope.info.course_id,
            start_seconds=scope.start,
            end_seconds=scope.end,
            chunk_ids=sorted(request.chunk_ids),
            difficulty=request.difficulty,
            question_count=request.question_count,
            model=generated.model,
            prompt_version=generated.prompt_version,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            confidence=generated.confidence,
            create_time=now,
            expire_time=now + timedelta(seconds=self._deps.settings.quiz_cache_ttl_seconds),
        )
        items = [
            QuizItem(
                generated_quiz_id=shared.id,
                question_id=f"q{position}",
                position=position,
                stem=draft.stem,
                options=list(draft.options),
                correct_index=draft.correct_index,
                explanation=draft.explanation,
                concepts=list(draft.concepts),
                chunk_id=draft.chunk.chunk_id,
                video_id=draft.chunk.video_id,
                start_seconds=draft.chunk.start_seconds,
                end_seconds=draft.chunk.end_seconds,
                quoted_text=shorten(draft.chunk.text),
            )
            for position, draft in enumerate(generated.items, start=1)
        ]
        async with self._deps.database.transaction() as session:
            await ensure_user(session, principal)
            session.add(shared)
            await session.flush()
            session.add_all(items)
            await session.flush()
            return await self._issue(session, principal, shared, items, interaction, usage, generated.validation)

    async def _issue(
        self,
        session: AsyncSession,
        principal: Principal,
        shared: GeneratedQuiz,
        items: Sequence[QuizItem],
        interaction: Interaction,
        usage: Usage,
        validation: str,
    ) -> QuizResult:
        """The caller's own quiz row on the shared content, and the interaction that produced it."""
        cached = validation == "cached"
        quiz_id = uuid.uuid4().hex
        interaction_id = await record_interaction(
            session,
            user_id=principal.user_id,
            agent_type="quiz",
            trigger=interaction.trigger,
            course_id=interaction.course_id,
            video_id=interaction.video_id,
            position_seconds=interaction.position_seconds,
            model=shared.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            latency_ms=interaction.latency_ms(),
            cached=cached,
            confidence=shared.confidence,
            attributes={
                "quiz_id": quiz_id,
                "generated_quiz_id": shared.id,
                "difficulty": shared.difficulty,
                "questions": str(len(items)),
                "validation": validation,
            },
        )
        session.add(
            Quiz(
                id=quiz_id,
                user_id=principal.user_id,
                generated_quiz_id=shared.id,
                trigger=interaction.trigger,
                cached=cached,
                interaction_id=interaction_id,
            )
        )
        await session.flush()
        return QuizResult(
            quiz_id=quiz_id,
            video_id=shared.video_id,
            start_seconds=shared.start_seconds,
            end_seconds=shared.end_seconds,
            difficulty=shared.difficulty,
            questions=tuple(
                QuestionView(item.question_id, item.stem, tuple(item.options), tuple(item.concepts)) for item in items
            ),
            model=shared.model,
            cached=cached,
            usage=usage,
            create_time=shared.create_time,
            expire_time=shared.expire_time,
            interaction_id=interaction_id,
            confidence=shared.confidence,
        )
