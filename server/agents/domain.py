"""What the agents return: plain values the servicer maps to protos and interventions reuse."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from server.core.values import Citation, Usage

DIFFICULTIES = ("easy", "medium", "hard")
# Interaction triggers of the RPCs (interventions pass their own, e.g. "REWATCH", "CHECKPOINT").
USER_TRIGGER = "user"


@dataclass(frozen=True, slots=True)
class HintResult:
    text: str
    citation: Citation
    confidence: float
    model: str
    interaction_id: str
    usage: Usage
    # Which rung of the hint ladder (1 a guiding question, 2 narrower, 3 a scaffold short of the answer).
    level: int = 1


@dataclass(frozen=True, slots=True)
class QuestionView:
    """A question as a student sees it before answering: no answer key."""

    question_id: str
    stem: str
    options: tuple[str, ...]
    concepts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QuizResult:
    quiz_id: str
    video_id: str
    start_seconds: float
    end_seconds: float
    difficulty: str
    questions: tuple[QuestionView, ...]
    model: str
    cached: bool
    usage: Usage
    create_time: datetime
    expire_time: datetime
    interaction_id: str
    confidence: float


@dataclass(frozen=True, slots=True)
class MasteryView:
    concept: str
    probability: float
    attempts: int
    correct: int
    update_time: datetime | None


@dataclass(frozen=True, slots=True)
class AnswerResult:
    attempt_id: str
    correct: bool
    correct_index: int
    explanation: str
    citation: Citation
    mastery: tuple[MasteryView, ...]


@dataclass(frozen=True, slots=True)
class ReflectionResult:
    prompt: str
    guiding_questions: tuple[str, ...]
    expected_length_words: int
    topics: tuple[str, ...]
    citations: tuple[Citation, ...]
    model: str
    usage: Usage
    interaction_id: str


@dataclass(frozen=True, slots=True)
class Recommendation:
    video_id: str
    title: str
    start_seconds: float
    end_seconds: float
    why: str
    difficulty: str
    estimated_minutes: float
    priority: int
    concept: str


@dataclass(frozen=True, slots=True)
class LearningPathResult:
    detected_issues: tuple[str, ...]
    recommendations: tuple[Recommendation, ...]
    next_steps: tuple[str, ...]
    model: str
    usage: Usage
    interaction_id: str


@dataclass(frozen=True, slots=True)
class ReviewResult:
    """A pointer back to earlier course content the current stretch builds on."""

    text: str
    citation: Citation
    confidence: float
    interaction_id: str
    concepts: tuple[str, ...] = field(default_factory=tuple)
