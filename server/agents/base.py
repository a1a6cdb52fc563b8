"""What every agent shares: its collaborators, the checks on videos, ranges and positions, the student's
persona, moderation of what the student wrote, and the AI-interaction record each call leaves behind."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from server.agents.corpus import CorpusCache
from server.agents.preferences import PreferencesService, PreferenceValues
from server.agents.wording import normalize_text
from server.analytics.moderation import FlagPlace, record_flag
from server.analytics.repository import record_interaction
from server.config import Settings
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import FailedPrecondition, InvalidArgument
from server.core.names import require_id
from server.core.users import ensure_user
from server.core.values import Usage, VideoInfo
from server.experiments.assignment import Assignments
from server.llm.grounding import format_clock
from server.llm.moderation import SUPPORTIVE_MODEL, Moderator, Verdict
from server.llm.persona import Persona, persona_for
from server.llm.pii import redact
from server.llm.structured import StructuredCaller
from server.transcripts.repository import jobs as transcript_jobs
from server.transcripts.search import TranscriptSearch
from server.transcripts.sentences import SentenceStore

# A range may end this far past the stored duration (players round durations up).
DURATION_TOLERANCE_SECONDS = 1.0


@dataclass(frozen=True)
class AgentDeps:
    settings: Settings
    database: Database
    search: TranscriptSearch
    sentences: SentenceStore
    caller: StructuredCaller
    preferences: PreferencesService
    corpora: CorpusCache
    moderator: Moderator
    assignments: Assignments


def clock_range(start: float, end: float) -> str:
    return f"{format_clock(start)}–{format_clock(end)}"


async def require_video(deps: AgentDeps, video_id: str, field: str = "video_id") -> VideoInfo:
    """The video's transcript info, or FAILED_PRECONDITION saying why there is none yet."""
    require_id(video_id, field)
    info = await deps.search.video_info(video_id)
    if info is not None and info.chunk_count > 0:
        return info
    async with deps.database.reader() as session:
        in_flight = await transcript_jobs.has_active_job(session, video_id)
    metadata = {"video_id": video_id}
    if in_flight:
        raise FailedPrecondition(
            f"the transcript of video {video_id!r} is still being ingested; try again when its ingest job has finished",
            reason="TRANSCRIPT_NOT_READY",
            metadata=metadata,
        )
    raise FailedPrecondition(
        f"video {video_id!r} has no transcript yet: ingest one with TranscriptService.IngestTranscript first",
        reason="TRANSCRIPT_NOT_FOUND",
        metadata=metadata,
    )


def check_range(info: VideoInfo, start: float, end: float, field: str) -> tuple[float, float]:
    """A valid range of the video, clipped to its duration; past the end is FAILED_PRECONDITION."""
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise InvalidArgument.field(field, "needs 0 <= start_seconds < end_seconds")
    duration = info.duration_seconds
    if duration > 0 and (start >= duration or end > duration + DURATION_TOLERANCE_SECONDS):
        raise FailedPrecondition(
            f"{field} {start:g}–{end:g}s is outside video {info.video_id!r}, which is {duration:g}s long",
            reason="RANGE_OUTSIDE_VIDEO",
            metadata={"video_id": info.video_id, "duration_seconds": f"{duration:g}"},
        )
    return start, min(end, duration) if duration > 0 else end


def check_position(info: VideoInfo, position: float, field: str) -> float:
    if not math.isfinite(position) or position < 0:
        raise InvalidArgument.field(field, "must be a non-negative number of seconds")
    duration = info.duration_seconds
    if duration > 0 and position > duration + DURATION_TOLERANCE_SECONDS:
        raise FailedPrecondition(
            f"{field} {position:g}s is past the end of video {info.video_id!r}, which is {duration:g}s long",
            reason="POSITION_OUTSIDE_VIDEO",
            metadata={"video_id": info.video_id, "duration_seconds": f"{duration:g}"},
        )
    return min(position, duration) if duration > 0 else position


async def preferences_of(deps: AgentDeps, principal: Principal) -> tuple[PreferenceValues, Persona]:
    values = await deps.preferences.get(principal.user_id)
    return values, persona_for(values.personality, values.response_length)


@dataclass
class Interaction:
    """One agent call, written to `ai_interactions` when it finishes."""

    agent_type: str
    trigger: str
    started: float
    course_id: str = ""
    video_id: str = ""
    position_seconds: float = 0.0

    def latency_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


async def record(
    session_scope: Database,
    principal: Principal,
    interaction: Interaction,
    *,
    model: str,
    usage: Usage,
    confidence: float | None,
    attributes: dict[str, str],
    cached: bool = False,
) -> str:
    """Write the interaction (its model calls' tokens and cost in `usage`) in its own transaction; its id."""
    async with session_scope.transaction() as session:
        await ensure_user(session, principal)
        return await record_interaction(
            session,
            user_id=principal.user_id,
            agent_type=interaction.agent_type,
            trigger=interaction.trigger,
            course_id=interaction.course_id,
            video_id=interaction.video_id,
            position_seconds=interaction.position_seconds,
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            latency_ms=interaction.latency_ms(),
            cached=cached,
            confidence=confidence,
            attributes=attributes,
        )


_TONES = {
    "friendly": "Be warm and encouraging.",
    "professional": "Be concise, precise and formal.",
    "peer": "Sound like a fellow student: casual, direct, plain words.",
}


def tone(persona: Persona) -> str:
    """The persona's voice without its length rule (agents set their own lengths)."""
    return _TONES.get(persona.personality, _TONES["friendly"])


async def moderated(deps: AgentDeps, written: str) -> tuple[str, Verdict]:
    """What the student wrote with personal data redacted (what may leave the process, and what a flag keeps),
    and moderation's verdict on it."""
    safe = (await asyncio.to_thread(redact, written)).text.strip()
    return safe, await deps.moderator.check(written, redacted=safe)


async def flag(
    deps: AgentDeps, principal: Principal, interaction: Interaction, verdict: Verdict, excerpt: str, interaction_id: str
) -> None:
    """Keep a flagged text for the course's instructors, on the interaction it came with."""
    place = FlagPlace(
        principal.user_id,
        interaction.course_id,
        interaction.video_id,
        interaction.agent_type,
        f"interactions/{interaction_id}",
    )
    await record_flag(deps.database, place, verdict, excerpt)


async def record_supportive(
    deps: AgentDeps, principal: Principal, interaction: Interaction, verdict: Verdict, excerpt: str
) -> str:
    """A text that states self-harm is answered with the supportive reply instead (no model call): the
    interaction and its flag are recorded; returns the interaction id."""
    interaction_id = await record(
        deps.database,
        principal,
        interaction,
        model=SUPPORTIVE_MODEL,
        usage=Usage(),
        confidence=None,
        attributes={"moderation": verdict.category},
    )
    await flag(deps, principal, interaction, verdict, excerpt, interaction_id)
    return interaction_id


# Lists a student writes (topics, objectives, goals, concepts): how many entries, how long each.
MAX_ITEMS, MAX_ITEM_CHARS = 10, 200


def student_items(values: Sequence[str], field: str) -> list[str]:
    """A list the student wrote, checked (INVALID_ARGUMENT naming `field`), personal data redacted, whitespace
    collapsed, empty and repeated entries (case aside) dropped. Runs spaCy: call it in a thread."""
    if len(values) > MAX_ITEMS:
        raise InvalidArgument.field(field, f"at most {MAX_ITEMS} entries")
    cleaned: list[str] = []
    for value in values:
        if len(value) > MAX_ITEM_CHARS:
            raise InvalidArgument.field(field, f"each entry must be at most {MAX_ITEM_CHARS} characters")
        text = " ".join(redact(value).text.split())
        if text and normalize_text(text) not in {normalize_text(item) for item in cleaned}:
            cleaned.append(text)
    return cleaned
