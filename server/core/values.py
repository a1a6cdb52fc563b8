"""Values every domain may use: what a transcript search finds (`SearchHit`), a video's transcript facts
(`VideoInfo`), a quoted stretch of a lecture (`Citation`) and the tokens and cost of model calls (`Usage`); and
what counts as a rewatch.
They live here, below the domains, so no domain reaches into another's internals for them."""

from __future__ import annotations

from dataclasses import dataclass

# A rewatch, wherever one is counted (the confusion heatmap, experiment outcomes): a seek back by more than this.
REWATCH_MIN_BACK_SECONDS = 2.0


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    video_id: str
    course_id: str
    start_seconds: float
    end_seconds: float
    text: str
    score: float
    vector_rank: int = 0
    text_rank: int = 0


@dataclass(frozen=True)
class VideoInfo:
    video_id: str
    course_id: str
    title: str
    duration_seconds: float
    chunk_count: int


@dataclass(frozen=True)
class Citation:
    video_id: str
    start_seconds: float
    end_seconds: float
    chunk_id: str
    quoted_text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of one answer (or of several, added up)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_usd + other.cost_usd,
        )
