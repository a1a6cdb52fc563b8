"""The analytics domain's values: what its services return and the servicer maps to protos."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.analytics.models import AIInteraction, Insight
from server.core.values import Usage
from server.experiments.stats import Comparison
from server.limits.gate import RateStatus
from server.limits.windows import ModelUsage, WindowStatus

AGENT_TYPES = ("chat", "hint", "quiz", "reflection", "learning_path", "intervention", "client")


@dataclass(frozen=True, slots=True)
class Place:
    course_id: str = ""
    video_id: str = ""
    position_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentCount:
    agent_type: str
    count: int
    rating_count: int
    average_rating: float


@dataclass(frozen=True, slots=True)
class MasteryStat:
    concept: str
    probability: float
    attempts: int


@dataclass(frozen=True, slots=True)
class UserAnalytics:
    agents: list[AgentCount]
    watch_seconds: float
    quiz_answers: int
    quiz_accuracy: float
    mastery: list[MasteryStat]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    interventions_received: int
    interventions_accepted: int


@dataclass(frozen=True, slots=True)
class InteractionView:
    """One AI interaction as its owner sees it."""

    interaction_id: str
    agent_type: str
    trigger: str
    place: Place
    model: str
    usage: Usage
    latency_ms: int
    cached: bool
    confidence: float | None
    rating: int | None
    rating_reason: str
    create_time: datetime


def interaction_view(row: AIInteraction) -> InteractionView:
    return InteractionView(
        interaction_id=row.id,
        agent_type=row.agent_type,
        trigger=row.trigger,
        place=Place(row.course_id, row.video_id, row.position_seconds),
        model=row.model,
        usage=Usage(row.prompt_tokens, row.completion_tokens, row.cost_usd),
        latency_ms=row.latency_ms,
        cached=row.cached,
        confidence=row.confidence,
        rating=row.rating,
        rating_reason=row.rating_reason,
        create_time=row.create_time,
    )


@dataclass(frozen=True, slots=True)
class InsightView:
    """One insight as the instructor who owns it sees it."""

    insight_id: str
    kind: str
    title: str
    detail: str
    concept: str
    course_id: str
    citations: list[dict[str, Any]]
    create_time: datetime
    dismiss_time: datetime | None


def insight_view(row: Insight) -> InsightView:
    return InsightView(
        insight_id=row.id,
        kind=row.kind,
        title=row.title,
        detail=row.detail,
        concept=row.concept,
        course_id=row.course_id,
        citations=list(row.citations),
        create_time=row.create_time,
        dismiss_time=row.dismiss_time,
    )


@dataclass(frozen=True, slots=True)
class InsightPage:
    insights: list[InsightView]
    next_page_token: str


@dataclass
class Finding:
    """What the insights job found, before it is stored as an insight (the model may reword title and detail)."""

    kind: str
    course_id: str
    concept: str
    title: str
    detail: str
    score: float
    citations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return f"{self.kind}:{self.course_id}:{self.concept}"


@dataclass(frozen=True, slots=True)
class ConfusionSegment:
    start_seconds: float
    end_seconds: float
    score: float
    rewatches: int
    pauses: int
    hints: int
    wrong_answers: int
    students: int


@dataclass(frozen=True, slots=True)
class ConfusionPeak(ConfusionSegment):
    """A stretch of adjacent segments above the peak score, with what the lecture says there."""

    transcript_text: str


@dataclass(frozen=True, slots=True)
class InterventionStat:
    kind: str
    delivered: int
    accepted: int
    dismissed: int

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.delivered if self.delivered else 0.0


@dataclass(frozen=True, slots=True)
class VideoAnalytics:
    video_id: str
    viewers: int
    peaks: list[ConfusionPeak]
    interventions: list[InterventionStat]
    # Observational: answers after asking for help near the question's stretch (treatment) vs without (control).
    help_outcome: Comparison
    segments: list[ConfusionSegment]
    agents: list[AgentCount]
    # Interactions given each rating, index 0 for one star.
    ratings: list[int]


@dataclass(frozen=True)
class FlagView:
    flag_id: str
    user_id: str
    course_id: str
    video_id: str
    surface: str
    message: str
    category: str
    score: float
    detector: str
    excerpt: str
    create_time: datetime


@dataclass(frozen=True)
class UsageReport:
    user_id: str
    tier: str
    budgets: list[WindowStatus]
    rate_limits: list[RateStatus]
    by_model: list[ModelUsage]  # the current UTC month
