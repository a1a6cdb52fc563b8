"""The end of a chat turn: the answer, its usage and its AI interaction are stored; the budget is settled.

`TurnState` is what the turn knows so far (it may end early: cancelled, cut off, failed); `AnswerRecorder`
turns that into rows and the final chunk, whatever the ending.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

from server.chat import repository as repo
from server.chat.context import Prompt
from server.chat.domain import CANCELLED, DEADLINE, ERROR, AnswerFinal, LearningContext, citations_to_json
from server.config import Settings
from server.core import metrics
from server.core.auth import Principal
from server.core.db import Database
from server.core.values import Citation, Usage
from server.limits.budget import Reservation
from server.llm.cost import cost_usd
from server.llm.grounding import citations_for, declares_general_knowledge
from server.llm.provider import Completion, ProviderError
from server.llm.router import RoutedChat
from server.llm.tokens import TokenCounter
from server.nlp.sentence import StoredSentence

logger = logging.getLogger(__name__)


@dataclass
class TurnState:
    """Everything known about one turn so far; the finishing steps read it."""

    principal: Principal
    session_id: str
    user_message_id: str
    question: str
    context: LearningContext
    started: float
    prompt: Prompt | None = None
    routed: RoutedChat | None = None
    cached_model: str = ""
    # Moderation read a statement of self-harm: the supportive reply answers, not a model.
    supportive: bool = False
    reservation: Reservation | None = None
    parts: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    completion: Completion | None = None
    # The stored sentences of each excerpt (by its `cN` label), for citations of the sentences an answer cites.
    cited: dict[str, list[StoredSentence]] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def cached(self) -> bool:
        return bool(self.cached_model)

    @property
    def offline(self) -> bool:
        return self.routed is not None and self.routed.offline

    @property
    def fallback(self) -> bool:
        return self.routed is not None and self.routed.fallback

    @property
    def provider(self) -> str:
        """Who answers, for metrics: the response cache, the offline engine or the OpenAI-compatible model."""
        if self.cached:
            return "cache"
        if self.supportive:
            return "supportive"
        return "offline" if self.offline else "openai"

    @property
    def answered_by_model(self) -> bool:
        """A model wrote this answer now (not the offline engine, the cache or the supportive reply)."""
        return not (self.cached or self.offline or self.supportive)

    @property
    def model(self) -> str:
        if self.completion is not None and self.completion.model:
            return self.completion.model
        if self.routed is not None:
            return self.routed.model
        return self.cached_model


class AnswerRecorder:
    def __init__(self, settings: Settings, database: Database, counter: TokenCounter) -> None:
        self._settings = settings
        self._db = database
        self._counter = counter

    async def finish(self, turn: TurnState, finish_reason: str, error: ProviderError | None) -> AnswerFinal:
        """Store the answer (if any text came) and the interaction, settle the budget; the final chunk."""
        finished_at = time.monotonic()
        text = turn.text
        incomplete = finish_reason in (ERROR, CANCELLED, DEADLINE)
        usage = self.usage(turn, text)
        sources = turn.prompt.sources if turn.prompt is not None else []
        citations: list[Citation] = citations_for(text, sources, turn.cited)
        model = turn.model
        # Checked when the prompt held excerpts: an answer must cite them or say it answers from general knowledge.
        checked = bool(text) and bool(sources) and turn.answered_by_model
        grounded = not checked or bool(citations) or declares_general_knowledge(text)
        if not grounded:
            metrics.count_ungrounded_answer(model)
            logger.info("an answer neither cited the excerpts nor said it answers from general knowledge")
        latency_ms = int((finished_at - turn.started) * 1000)
        ttft_ms = int((turn.first_token_at - turn.started) * 1000) if turn.first_token_at is not None else 0

        # A turn cut off before any text still leaves its (empty) answer, so the session shows why it ended.
        assistant_id = uuid.uuid4().hex if text or finish_reason in (CANCELLED, DEADLINE) else ""
        attributes = {
            "session_id": turn.session_id,
            "user_message_id": turn.user_message_id,
            "finish_reason": finish_reason,
            "incomplete": str(incomplete).lower(),
            "fallback": str(turn.fallback).lower(),
            "sources": str(len(sources)),
        }
        if assistant_id:
            attributes["assistant_message_id"] = assistant_id
        if error is not None:
            attributes["error_reason"] = error.reason
        if turn.prompt is not None:
            attributes["history_dropped"] = str(turn.prompt.history_dropped)
        finished = repo.FinishedTurn(
            interaction_id=uuid.uuid4().hex,
            user_id=turn.principal.user_id,
            session_id=turn.session_id,
            course_id=turn.context.course_id,
            video_id=turn.context.video_id,
            position_seconds=turn.context.position_seconds,
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            latency_ms=latency_ms,
            cached=turn.cached,
            attributes=attributes,
            message_id=assistant_id,
            content=text,
            incomplete=incomplete,
            fallback=turn.fallback,
            time_to_first_token_ms=ttft_ms,
            finish_reason=finish_reason,
            citations=citations_to_json(citations),
            grounded=grounded,
        )
        # The budget is settled on its own connection while the answer is stored: two round trips side by side.
        _, answered = await asyncio.gather(self.settle_budget(turn, model, usage), self._store(finished))
        interaction_id = finished.interaction_id
        if not answered:
            assistant_id = ""
        return AnswerFinal(
            finish_reason=finish_reason,
            citations=citations,
            usage=usage,
            model=model,
            cached=turn.cached,
            fallback=turn.fallback,
            user_message_id=turn.user_message_id,
            assistant_message_id=assistant_id,
            interaction_id=interaction_id,
            grounded=grounded,
        )

    async def _store(self, finished: repo.FinishedTurn) -> bool:
        async with self._db.autocommit() as connection:
            return await repo.add_answer(connection, finished)

    def usage(self, turn: TurnState, text: str) -> Usage:
        if turn.cached or turn.offline:
            return Usage()
        completion = turn.completion
        if completion is not None:
            prompt_tokens, completion_tokens = completion.prompt_tokens, completion.completion_tokens
        elif text:
            # Cut off before the usage block: estimate what the upstream processed.
            prompt_tokens = turn.prompt.prompt_tokens if turn.prompt is not None else 0
            completion_tokens = self._counter.count(text)
        else:
            return Usage()
        model = turn.model
        return Usage(
            prompt_tokens, completion_tokens, cost_usd(self._settings, model, prompt_tokens, completion_tokens)
        )

    async def settle_budget(self, turn: TurnState, model: str, usage: Usage) -> None:
        reservation, turn.reservation = turn.reservation, None
        if reservation is None:
            return
        try:
            if usage.total_tokens > 0:
                await reservation.commit(
                    model=model,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    cost_usd=usage.cost_usd,
                )
            else:
                await reservation.release()
        except Exception as exc:
            # Unsettled reservations are charged at their estimate when they expire: never lost.
            logger.warning("token budget settlement failed: %s", type(exc).__name__)

    async def release(self, turn: TurnState) -> None:
        reservation, turn.reservation = turn.reservation, None
        if reservation is not None:
            await reservation.release()
