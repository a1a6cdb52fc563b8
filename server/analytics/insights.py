"""The insights job: findings computed from the learner's data in SQL, optionally worded by the model.

Findings:
- STRUGGLING_CONCEPT: a concept with mastery below 0.4 after at least two answers (Bayesian knowledge
  tracing in the agents' `concept_mastery`), and stretches of a video where the learner went back, paused or
  needed hints at least `STRUGGLE_SIGNALS` times (named by the stretch's key term);
- STRONG_AREA: mastery of at least 0.8 after at least three answers;
- RECOMMENDED_INTERVENTION: automatic hints while struggling with them switched off, knowledge checks after
  ten minutes of video with them switched off, fewer interruptions of a kind the learner keeps dismissing.

The model never decides anything: when one is configured it rewrites titles and details of these findings
(same facts, friendlier words); otherwise, or when its answer does not fit, the templates stand. A run
replaces the learner's visible insights of its scope; dismissed ones stay dismissed (matched by fingerprint).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, text

from server.analytics.models import Insight
from server.config import Settings
from server.core.auth import Principal, Role, Tier
from server.core.db import Database
from server.core.errors import DomainError
from server.core.models import User
from server.core.values import REWATCH_MIN_BACK_SECONDS
from server.limits.budget import TokenBudget
from server.limits.policy import LimitPolicy
from server.llm.provider import ChatMessage
from server.llm.router import LLMRouter
from server.llm.structured import Spend, StructuredCaller
from server.transcripts.sentences import SentenceStore

log = logging.getLogger("tutorstream.analytics")

GENERATE_TASK = "analytics.generate_insights"
STRUGGLING_PROBABILITY = 0.4
STRONG_PROBABILITY = 0.8
STRUGGLE_SIGNALS = 3
MAX_STRETCHES = 3
DISMISSED_SHARE = 0.7
WORDING_DEADLINE_SECONDS = 30.0
MAX_TITLE_CHARS = 120
MAX_DETAIL_CHARS = 600

_WORDING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "insights": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "title": {"type": "string"},
                    "detail": {"type": "string"},
                },
                "required": ["index", "title", "detail"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["insights"],
    "additionalProperties": False,
}


def queueing_lock(user_id: str, course_id: str) -> str:
    return f"insights:{user_id}:{course_id}"


def _clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


@dataclass
class Finding:
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


_MASTERY = text(
    """
    SELECT m.concept, m.probability, m.attempts, m.correct FROM concept_mastery m
    WHERE m.user_id = :user AND (CAST(:course AS text) = '' OR EXISTS (
        SELECT 1 FROM quiz_items i JOIN generated_quizzes g ON g.id = i.generated_quiz_id
        WHERE g.course_id = :course AND i.concepts @> jsonb_build_array(m.concept)))
    ORDER BY m.probability, m.concept
    """
)
_WRONG_ANSWER_SOURCES = text(
    """
    SELECT DISTINCT ON (i.chunk_id) i.video_id, i.start_seconds, i.end_seconds, i.chunk_id, i.quoted_text
    FROM quiz_attempts a
    JOIN quiz_items i ON i.generated_quiz_id = a.generated_quiz_id AND i.question_id = a.question_id
    WHERE a.user_id = :user AND NOT a.correct AND i.concepts @> jsonb_build_array(CAST(:concept AS text))
    ORDER BY i.chunk_id LIMIT 2
    """
)
# The learner's struggle signals per (video, bin): backward seeks landing there, pauses, hint interventions.
_STRETCHES = text(
    """
    WITH signals AS (
        SELECT e.video_id, floor(e.seek_to_seconds / :bin) AS bin
        FROM video_events e JOIN watch_sessions w ON w.id = e.watch_session_id
        WHERE e.user_id = :user AND e.type = 'seeked' AND e.seek_to_seconds < e.seek_from_seconds - :rewatch_back
          AND (CAST(:course AS text) = '' OR w.course_id = :course)
        UNION ALL
        SELECT e.video_id, floor(e.position_seconds / :bin)
        FROM video_events e JOIN watch_sessions w ON w.id = e.watch_session_id
        WHERE e.user_id = :user AND e.type = 'paused' AND (CAST(:course AS text) = '' OR w.course_id = :course)
        UNION ALL
        SELECT i.video_id, floor(i.start_seconds / :bin)
        FROM interventions i
        WHERE i.user_id = :user AND i.type IN ('hint', 'review')
          AND (CAST(:course AS text) = '' OR i.course_id = :course)
    )
    SELECT s.video_id, s.bin, count(*) AS signals, coalesce(t.title, '') AS title, coalesce(t.course_id, '') AS course
    FROM signals s LEFT JOIN transcripts t ON t.video_id = s.video_id
    GROUP BY s.video_id, s.bin, t.title, t.course_id
    HAVING count(*) >= :minimum
    ORDER BY count(*) DESC, s.video_id, s.bin
    LIMIT :limit
    """
)
_HABITS = text(
    """
    SELECT
      (SELECT coalesce(sum(watched_seconds), 0) FROM watch_sessions
        WHERE user_id = :user AND (CAST(:course AS text) = '' OR course_id = :course)) AS watched,
      coalesce(p.auto_hints_enabled, true) AS hints, coalesce(p.quiz_frequency, 'medium') AS quizzes
    FROM (SELECT 1) AS one LEFT JOIN preferences p ON p.user_id = :user
    """
)
_DISMISSALS = text(
    """
    SELECT i.type, count(DISTINCT i.id) AS delivered,
      count(DISTINCT k.intervention_id) FILTER (WHERE k.action = 'dismissed') AS dismissed
    FROM interventions i LEFT JOIN intervention_acks k ON k.intervention_id = i.id
    WHERE i.user_id = :user AND i.status = 'delivered' AND (CAST(:course AS text) = '' OR i.course_id = :course)
    GROUP BY i.type
    """
)


class InsightGenerator:
    def __init__(self, database: Database, settings: Settings) -> None:
        self._db = database
        self._settings = settings

    async def run(self, user_id: str, course_id: str) -> int:
        """Compute and store the insights of one learner; returns how many are visible afterwards."""
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        if user is None:
            return 0  # deleted meanwhile
        findings = await self.findings(user_id, course_id)
        model = await self._word(Principal(user_id, Role(user.role), Tier(user.tier)), findings)
        return await self._store(user_id, course_id, findings, model)

    async def findings(self, user_id: str, course_id: str) -> list[Finding]:
        params: dict[str, Any] = {"user": user_id, "course": course_id}
        found: list[Finding] = []
        async with self._db.session() as session:
            for row in (await session.execute(_MASTERY, params)).all():
                concept, probability, attempts = str(row.concept), float(row.probability), int(row.attempts)
                if probability < STRUGGLING_PROBABILITY and attempts >= 2:
                    sources = (await session.execute(_WRONG_ANSWER_SOURCES, {**params, "concept": concept})).all()
                    found.append(
                        Finding(
                            "struggling_concept",
                            course_id,
                            concept,
                            f"{concept} needs another look",
                            f"You answered {int(row.correct)} of {attempts} questions on {concept} correctly; "
                            f"estimated mastery is {probability:.0%}.",
                            1.0 - probability,
                            [
                                {
                                    "video_id": s.video_id,
                                    "start_seconds": float(s.start_seconds),
                                    "end_seconds": float(s.end_seconds),
                                    "chunk_id": s.chunk_id,
                                    "quoted_text": s.quoted_text,
                                }
                                for s in sources
                            ],
                        )
                    )
                elif probability >= STRONG_PROBABILITY and attempts >= 3:
                    found.append(
                        Finding(
                            "strong_area",
                            course_id,
                            concept,
                            f"You have {concept} down",
                            f"{int(row.correct)} of {attempts} answers on {concept} were right; "
                            f"estimated mastery is {probability:.0%}.",
                            probability,
                        )
                    )
            bin_seconds = self._settings.analytics_bin_seconds
            stretches = (
                await session.execute(
                    _STRETCHES,
                    {
                        **params,
                        "bin": bin_seconds,
                        "minimum": STRUGGLE_SIGNALS,
                        "limit": MAX_STRETCHES,
                        "rewatch_back": REWATCH_MIN_BACK_SECONDS,
                    },
                )
            ).all()
            habits = (await session.execute(_HABITS, params)).one()
            dismissals = (await session.execute(_DISMISSALS, params)).all()
        for stretch in stretches:
            found.append(await self._stretch_finding(stretch, bin_seconds, course_id))
        found.extend(self._recommendations(bool(stretches), habits, dismissals, course_id))
        return found

    async def _stretch_finding(self, stretch: Any, bin_seconds: float, course_id: str) -> Finding:
        start, end = float(stretch.bin) * bin_seconds, float(stretch.bin + 1) * bin_seconds
        async with self._db.session() as session:
            chunks = (
                await session.execute(
                    text(
                        "SELECT id, video_id, start_seconds, end_seconds, text FROM transcript_chunks "
                        "WHERE video_id = :video ORDER BY start_seconds"
                    ),
                    {"video": stretch.video_id},
                )
            ).all()
        inside = [c for c in chunks if c.end_seconds >= start and c.start_seconds <= end]
        label = f"{stretch.title or stretch.video_id} {_clock(start)}–{_clock(end)}"
        concept = label
        if inside:
            named = await SentenceStore(self._db).key_phrases(stretch.video_id, start, end, limit=1)
            if named:
                concept = named[0]
        citations = [
            {
                "video_id": c.video_id,
                "start_seconds": float(c.start_seconds),
                "end_seconds": float(c.end_seconds),
                "chunk_id": c.id,
                "quoted_text": str(c.text)[:400],
            }
            for c in inside[:2]
        ]
        return Finding(
            "struggling_concept",
            course_id,
            concept,
            f"{concept} seems hard",
            f"You went back, paused or needed hints {int(stretch.signals)} times around {label}.",
            float(stretch.signals),
            citations,
        )

    @staticmethod
    def _recommendations(struggling: bool, habits: Any, dismissals: Sequence[Any], course_id: str) -> list[Finding]:
        found: list[Finding] = []
        if struggling and not habits.hints:
            found.append(
                Finding(
                    "recommended_intervention",
                    course_id,
                    "hints",
                    "Turn automatic hints back on",
                    "You keep going back over some stretches; with automatic hints the tutor points at what "
                    "matters there.",
                    1.0,
                )
            )
        if habits.quizzes == "off" and float(habits.watched) >= 600:
            found.append(
                Finding(
                    "recommended_intervention",
                    course_id,
                    "quizzes",
                    "Try knowledge checks",
                    f"You watched {int(float(habits.watched) // 60)} minutes without a quiz; a short check "
                    "every few minutes helps it stick.",
                    0.8,
                )
            )
        for row in dismissals:
            delivered, dismissed = int(row.delivered), int(row.dismissed)
            if delivered >= 3 and dismissed / delivered >= DISMISSED_SHARE:
                found.append(
                    Finding(
                        "recommended_intervention",
                        course_id,
                        f"fewer-{row.type}",
                        f"Fewer {row.type} interruptions",
                        f"You dismissed {dismissed} of {delivered} {row.type} suggestions; consider changing "
                        "your tutor preferences so they come less often.",
                        0.5,
                    )
                )
        return found

    async def _word(self, principal: Principal, findings: list[Finding]) -> str:
        """Let the model reword the findings in place; returns the model used ("" for the templates)."""
        if not findings or not self._settings.llm_enabled:
            return ""
        llm = LLMRouter.from_settings(self._settings)
        budget = TokenBudget(
            self._db,
            LimitPolicy(self._settings),
            reservation_ttl_seconds=self._settings.budget_reservation_ttl_seconds,
        )
        caller = StructuredCaller(self._settings, llm, budget)
        facts = [{"index": i, "title": f.title, "detail": f.detail} for i, f in enumerate(findings)]
        messages = [
            ChatMessage(
                "system",
                "You rewrite short learning insights for a student in a warm, direct tone. Keep every fact and "
                "number; add nothing new. Return one entry per input index.",
            ),
            ChatMessage("user", json.dumps(facts)),
        ]
        try:
            answer = await caller.ask(
                principal,
                operation="insights",
                messages=messages,
                schema_name="insights",
                schema=_WORDING_SCHEMA,
                temperature=0.3,
                max_tokens=120 * len(findings) + 100,
                deadline=time.monotonic() + WORDING_DEADLINE_SECONDS,
                spend=Spend(),
            )
        except DomainError as error:
            log.info("insights stay in template words (%s)", error.reason)
            return ""
        finally:
            await llm.aclose()
        if answer is None or not isinstance(answer.data, dict):
            return ""
        worded = {}
        for item in answer.data.get("insights", []):
            if not isinstance(item, dict) or not isinstance(item.get("index"), int):
                return ""
            title, detail = str(item.get("title", "")).strip(), str(item.get("detail", "")).strip()
            if not title or len(title) > MAX_TITLE_CHARS or len(detail) > MAX_DETAIL_CHARS:
                return ""
            worded[item["index"]] = (title, detail)
        if set(worded) != set(range(len(findings))):
            return ""
        for index, finding in enumerate(findings):
            finding.title, finding.detail = worded[index]
        return answer.model

    async def _store(self, user_id: str, course_id: str, findings: list[Finding], model: str) -> int:
        async with self._db.transaction() as session:
            dismissed = set(
                (
                    await session.execute(
                        select(Insight.fingerprint).where(Insight.user_id == user_id, Insight.dismiss_time.is_not(None))
                    )
                ).scalars()
            )
            scope = delete(Insight).where(Insight.user_id == user_id, Insight.dismiss_time.is_(None))
            if course_id:
                scope = scope.where(Insight.course_id == course_id)
            await session.execute(scope)
            fresh = {f.fingerprint: f for f in findings if f.fingerprint not in dismissed}
            for finding in fresh.values():
                session.add(
                    Insight(
                        id=uuid.uuid4().hex,
                        user_id=user_id,
                        kind=finding.kind,
                        course_id=finding.course_id,
                        concept=finding.concept,
                        title=finding.title,
                        detail=finding.detail,
                        citations=finding.citations,
                        score=finding.score,
                        fingerprint=finding.fingerprint,
                        model=model,
                    )
                )
        return len(fresh)
