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
from collections.abc import Sequence
from typing import Any

from server.analytics import repository as repo
from server.analytics.domain import Finding
from server.config import Settings
from server.core.auth import Principal, Role, Tier
from server.core.db import Database
from server.core.errors import DomainError
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


class InsightGenerator:
    def __init__(self, database: Database, settings: Settings) -> None:
        self._db = database
        self._settings = settings

    async def run(self, user_id: str, course_id: str) -> int:
        """Compute and store the insights of one learner; returns how many are visible afterwards."""
        async with self._db.session() as session:
            user = await repo.get_user(session, user_id)
        if user is None:
            return 0  # deleted meanwhile
        findings = await self.findings(user_id, course_id)
        model = await self._word(Principal(user_id, Role(user.role), Tier(user.tier)), findings)
        return await self._store(user_id, course_id, findings, model)

    async def findings(self, user_id: str, course_id: str) -> list[Finding]:
        found: list[Finding] = []
        async with self._db.session() as session:
            for row in await repo.concept_mastery(session, user_id, course_id):
                concept, probability, attempts = str(row.concept), float(row.probability), int(row.attempts)
                if probability < STRUGGLING_PROBABILITY and attempts >= 2:
                    sources = await repo.wrong_answer_sources(session, user_id, concept)
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
            stretches = await repo.struggle_stretches(
                session,
                user_id,
                course_id,
                bin_seconds=bin_seconds,
                minimum=STRUGGLE_SIGNALS,
                limit=MAX_STRETCHES,
                rewatch_back=REWATCH_MIN_BACK_SECONDS,
            )
            habits = await repo.habits(session, user_id, course_id)
            dismissals = await repo.dismissals(session, user_id, course_id)
        for stretch in stretches:
            found.append(await self._stretch_finding(stretch, bin_seconds, course_id))
        found.extend(self._recommendations(bool(stretches), habits, dismissals, course_id))
        return found

    async def _stretch_finding(self, stretch: Any, bin_seconds: float, course_id: str) -> Finding:
        start, end = float(stretch.bin) * bin_seconds, float(stretch.bin + 1) * bin_seconds
        async with self._db.session() as session:
            chunks = await repo.video_chunks(session, stretch.video_id)
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
            dismissed = await repo.dismissed_fingerprints(session, user_id)
            await repo.delete_visible_insights(session, user_id, course_id)
            fresh = {f.fingerprint: f for f in findings if f.fingerprint not in dismissed}
            await repo.add_insights(session, user_id, fresh.values(), model)
        return len(fresh)
