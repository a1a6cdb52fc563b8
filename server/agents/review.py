"""Review pointers for interventions: earlier course content that the current stretch builds on.

The key terms of the chunks around the playhead are searched in the course. A hit in an earlier video of
the course (its prerequisites come first) or earlier in the same video, outside the current stretch, is the
pointer; failing that, the first earlier chunk of this video that names the top term. Confidence is the
hit's fused retrieval score relative to the best possible one (0.4 for the same-video fallback).
"""

from __future__ import annotations

import time

from server.agents.base import AgentDeps, Interaction, check_position, clock_range, record, require_video
from server.agents.domain import ReviewResult
from server.core.auth import Principal
from server.core.errors import FailedPrecondition
from server.core.values import Citation, SearchHit, Usage
from server.llm.grounding import shorten
from server.transcripts.search import BEST_FUSED_SCORE

BEFORE_SECONDS, AFTER_SECONDS = 60.0, 30.0
SEARCH_LIMIT = 10
FALLBACK_CONFIDENCE = 0.4
REVIEW_MODEL = "retrieval"


class ReviewAgent:
    def __init__(self, deps: AgentDeps) -> None:
        self._deps = deps

    async def review(
        self, principal: Principal, *, video_id: str, course_id: str, position_seconds: float, trigger: str
    ) -> ReviewResult:
        interaction = Interaction("intervention", trigger, time.monotonic(), course_id, video_id, position_seconds)
        info = await require_video(self._deps, video_id)
        position = check_position(info, position_seconds, "position_seconds")
        course = course_id or info.course_id
        interaction.course_id = course
        corpus = await self._deps.corpora.load(course)
        window_start, window_end = position - BEFORE_SECONDS, position + AFTER_SECONDS
        here = [
            hit
            for hit in corpus.chunks_of(info.video_id)
            if hit.end_seconds >= window_start and hit.start_seconds <= window_end
        ]
        terms = [term for term, _ in corpus.index.rank([hit.chunk_id for hit in here], limit=3)]
        if not terms:
            raise FailedPrecondition("nothing to review before this point", reason="NO_REVIEW_CONTENT")
        order = corpus.video_position(info.video_id)
        earlier_start = min((hit.start_seconds for hit in here), default=window_start)
        hits = await self._deps.search.search(
            " ".join(term.surface for term in terms), course_id=course, limit=SEARCH_LIMIT
        )

        def earlier(hit: SearchHit) -> bool:
            if hit.video_id == info.video_id:
                return hit.end_seconds <= earlier_start
            return corpus.video_position(hit.video_id) < order

        chosen = next((hit for hit in hits if earlier(hit)), None)
        confidence = min(1.0, chosen.score / BEST_FUSED_SCORE) if chosen is not None else FALLBACK_CONFIDENCE
        if chosen is None:
            chosen = next(
                (
                    hit
                    for hit in corpus.chunks_of(info.video_id)
                    if hit.end_seconds <= earlier_start and corpus.index.says(hit.chunk_id, terms[0].key)
                ),
                None,
            )
        if chosen is None:
            raise FailedPrecondition("nothing to review before this point", reason="NO_REVIEW_CONTENT")
        named = [term for term in terms if corpus.index.says(chosen.chunk_id, term.key)] or terms
        where = clock_range(chosen.start_seconds, chosen.end_seconds)
        if chosen.video_id == info.video_id:
            text = f"This part builds on “{named[0].surface}”, which this lecture covers earlier, at {where}."
        else:
            video = corpus.video(chosen.video_id)
            title = video.title if video is not None else chosen.video_id
            text = f"This part builds on “{named[0].surface}”, which “{title}” covers at {where}."
        text += " A quick review there may make the rest easier."
        citation = Citation(
            chosen.video_id, chosen.start_seconds, chosen.end_seconds, chosen.chunk_id, shorten(chosen.text)
        )
        interaction_id = await record(
            self._deps.database,
            principal,
            interaction,
            model=REVIEW_MODEL,
            usage=Usage(),
            confidence=round(confidence, 3),
            attributes={"kind": "review", "chunk_id": chosen.chunk_id},
        )
        return ReviewResult(text, citation, round(confidence, 3), interaction_id, tuple(term.surface for term in named))
