"""What an intervention says: hints, quizzes and review pointers from the agents, with a transcript-only
fallback when the agents cannot answer (no model, budget spent, quota, timeout), so the student still gets a
pointer to the right stretch with its citation."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from server.agents.domain import HintResult, QuizResult, ReviewResult
from server.core.auth import Principal
from server.core.errors import DomainError
from server.core.values import Citation, SearchHit
from server.progress.engine import Decision, InterventionKind
from server.transcripts.search import TranscriptSearch

log = logging.getLogger("tutorstream.progress")

# Quoted transcript text in a fallback citation.
MAX_QUOTE_CHARS = 400
# Longest wait for the agents before the transcript fallback is sent instead.
CONTENT_TIMEOUT_SECONDS = 30.0
BREAK_TEXT = (
    "You have been watching for a while. A five-minute break helps what you just learned settle; "
    "the video will be right here."
)


class InterventionAgents(Protocol):
    """The part of `server.agents.service.AgentsService` (runtime.agents) interventions use."""

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
    ) -> HintResult: ...

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
    ) -> QuizResult: ...

    async def review_for(
        self, principal: Principal, *, video_id: str, course_id: str, position_seconds: float
    ) -> ReviewResult: ...


@dataclass(frozen=True, slots=True)
class Content:
    text: str
    citation: Citation | None = None
    quiz: str = ""
    interaction_id: str = ""


def _clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _citation(hits: list[SearchHit]) -> Citation | None:
    if not hits:
        return None
    text = " ".join(hit.text for hit in hits)
    if len(text) > MAX_QUOTE_CHARS:
        text = text[: MAX_QUOTE_CHARS - 1].rstrip() + "…"
    return Citation(
        video_id=hits[0].video_id,
        start_seconds=hits[0].start_seconds,
        end_seconds=hits[-1].end_seconds,
        chunk_id=hits[0].chunk_id,
        quoted_text=text,
    )


def break_content() -> Content:
    return Content(text=BREAK_TEXT)


class ContentProducer:
    def __init__(
        self,
        search: TranscriptSearch | None,
        agents: InterventionAgents | None = None,
        *,
        quiz_questions: int = 3,
        timeout_seconds: float = CONTENT_TIMEOUT_SECONDS,
    ) -> None:
        self._search = search
        self.agents = agents
        self._quiz_questions = quiz_questions
        self._timeout = timeout_seconds

    async def produce(self, principal: Principal, video_id: str, course_id: str, decision: Decision) -> Content:
        """Content for `decision`; the agents' answer when they give one, else the transcript fallback."""
        if decision.kind is InterventionKind.BREAK:
            return break_content()
        if self.agents is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._from_agents(self.agents, principal, video_id, course_id, decision)
            except (DomainError, TimeoutError) as error:
                log.info(
                    "intervention content from the agents failed (%s: %s); using the transcript",
                    decision.kind.value,
                    type(error).__name__,
                )
        return await self._fallback(video_id, decision)

    async def _from_agents(
        self, agents: InterventionAgents, principal: Principal, video_id: str, course_id: str, decision: Decision
    ) -> Content:
        if decision.kind is InterventionKind.HINT:
            hint = await agents.hint_for(
                principal,
                video_id=video_id,
                course_id=course_id,
                position_seconds=decision.position,
                selected_range=(decision.start, decision.end),
                struggle=decision.reason_text,
                trigger=decision.reason,
                deadline=time.monotonic() + self._timeout,
            )
            return Content(text=hint.text, citation=hint.citation, interaction_id=hint.interaction_id)
        if decision.kind is InterventionKind.QUIZ:
            quiz = await agents.quiz_for(
                principal,
                video_id=video_id,
                start_seconds=decision.start,
                end_seconds=decision.end,
                question_count=self._quiz_questions,
                difficulty="medium",
                trigger=decision.reason,
                deadline=time.monotonic() + self._timeout,
            )
            return Content(
                text=f"A quick check on what you just watched ({_clock(decision.start)}–{_clock(decision.end)}).",
                quiz=f"quizzes/{quiz.quiz_id}",
                interaction_id=quiz.interaction_id,
            )
        review = await agents.review_for(
            principal, video_id=video_id, course_id=course_id, position_seconds=decision.position
        )
        return Content(text=review.text, citation=review.citation, interaction_id=review.interaction_id)

    async def _fallback(self, video_id: str, decision: Decision) -> Content:
        span = f"{_clock(decision.start)}–{_clock(decision.end)}"
        hits: list[SearchHit] = []
        if self._search is not None:
            if decision.kind is InterventionKind.REVIEW:
                # What the stretch builds on: the minute of lecture right before it.
                hits = await self._search.chunks_in_range(video_id, max(0.0, decision.start - 60.0), decision.start)
                hits = hits[:2]
            else:
                hits = (await self._search.chunks_in_range(video_id, decision.start, decision.end))[:3]
        citation = _citation(hits)
        if decision.kind is InterventionKind.HINT:
            text = f"This stretch ({span}) seems tricky. Re-read what it says and try to restate it in your words."
        elif decision.kind is InterventionKind.REVIEW:
            text = f"The part at {span} builds on what comes just before it; reviewing that first may help."
        else:
            text = f"Time for a quick check on what you just watched ({span})."
        return Content(text=text, citation=citation)
