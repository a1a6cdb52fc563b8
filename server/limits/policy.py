"""Which RPC belongs to which limit class, and what each tier is allowed.

RPC classes (per user, GCRA over `rate_period_seconds`, default one minute):

    chat     ChatService.StreamChat
    hint     AgentService.GetHint
    quiz     AgentService.GenerateQuiz
    agent    AgentService.GenerateReflection, GenerateLearningPath, SubmitQuizAnswer
    ingest   TranscriptService.IngestTranscript, TranscribeMedia, UploadMedia (speech to text is costly)
    default  every other authenticated RPC: reads, preferences, events, GetUsage (generous: it only
             stops a runaway client from hammering the database)

Health and reflection are public and never limited. Stream concurrency per user: StreamChat holds a
`chat` slot, WatchVideo and StreamInterventions hold a `watch` slot, for the stream's lifetime.

Per-tier limits: `tier_limit_overrides[tier][key]` when present, else the base setting times the
tier's multiplier (`tier_rate_multipliers` for rates, `tier_budget_multipliers` for token budgets;
stream slots are not multiplied). A rate or stream limit of 0 switches that limit off.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from server.config import Settings
from server.core.auth import Tier


class RpcClass(StrEnum):
    CHAT = "chat"
    HINT = "hint"
    QUIZ = "quiz"
    AGENT = "agent"
    INGEST = "ingest"
    DEFAULT = "default"


class StreamKind(StrEnum):
    CHAT = "chat"
    WATCH = "watch"


# The classes GetUsage reports (the costly ones); `default` is a safety net, not a product limit.
REPORTED_CLASSES = (RpcClass.CHAT, RpcClass.HINT, RpcClass.QUIZ, RpcClass.AGENT, RpcClass.INGEST)

_PACKAGE = "/tutorstream.v1."
METHOD_CLASSES: dict[str, RpcClass] = {
    f"{_PACKAGE}ChatService/StreamChat": RpcClass.CHAT,
    f"{_PACKAGE}AgentService/GetHint": RpcClass.HINT,
    f"{_PACKAGE}AgentService/GenerateQuiz": RpcClass.QUIZ,
    f"{_PACKAGE}AgentService/GenerateReflection": RpcClass.AGENT,
    f"{_PACKAGE}AgentService/GenerateLearningPath": RpcClass.AGENT,
    f"{_PACKAGE}AgentService/SubmitQuizAnswer": RpcClass.AGENT,
    f"{_PACKAGE}TranscriptService/IngestTranscript": RpcClass.INGEST,
    f"{_PACKAGE}TranscriptService/TranscribeMedia": RpcClass.INGEST,
    f"{_PACKAGE}TranscriptService/UploadMedia": RpcClass.INGEST,
}
METHOD_STREAMS: dict[str, StreamKind] = {
    f"{_PACKAGE}ChatService/StreamChat": StreamKind.CHAT,
    f"{_PACKAGE}AgentService/WatchVideo": StreamKind.WATCH,
    f"{_PACKAGE}AgentService/StreamInterventions": StreamKind.WATCH,
}


def rpc_class_for(method: str) -> RpcClass:
    return METHOD_CLASSES.get(method, RpcClass.DEFAULT)


def stream_kind_for(method: str) -> StreamKind | None:
    return METHOD_STREAMS.get(method)


@dataclass(frozen=True)
class RateLimit:
    """`limit` calls per `period_seconds`, refilled smoothly (one every period/limit seconds)."""

    rpc_class: RpcClass
    limit: int
    period_seconds: float

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    @property
    def per_minute(self) -> int:
        return round(self.limit * 60.0 / self.period_seconds)


@dataclass(frozen=True)
class TierLimits:
    tier: str
    rates: dict[RpcClass, RateLimit]
    streams: dict[StreamKind, int]
    daily_tokens: int
    monthly_tokens: int


class LimitPolicy:
    """Resolves the limits of each tier from Settings once (they do not change while running)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._by_tier = {tier.value: self._resolve(tier.value) for tier in Tier}

    def for_tier(self, tier: str) -> TierLimits:
        found = self._by_tier.get(tier)
        if found is None:
            found = self._by_tier[tier] = self._resolve(tier)
        return found

    def _resolve(self, tier: str) -> TierLimits:
        settings = self._settings
        overrides = settings.tier_limit_overrides.get(tier, {})
        rate_factor = settings.tier_rate_multipliers.get(tier, 1.0)
        budget_factor = settings.tier_budget_multipliers.get(tier, 1.0)
        base_rates = {
            RpcClass.CHAT: settings.rate_chat_per_minute,
            RpcClass.HINT: settings.rate_hint_per_minute,
            RpcClass.QUIZ: settings.rate_quiz_per_minute,
            RpcClass.AGENT: settings.rate_agent_per_minute,
            RpcClass.INGEST: settings.rate_ingest_per_minute,
            RpcClass.DEFAULT: settings.rate_default_per_minute,
        }
        rates = {
            rpc_class: RateLimit(
                rpc_class,
                max(0, int(overrides.get(rpc_class.value, round(base * rate_factor)))),
                settings.rate_period_seconds,
            )
            for rpc_class, base in base_rates.items()
        }
        streams = {
            StreamKind.CHAT: max(0, int(overrides.get("chat_streams", settings.max_chat_streams_per_user))),
            StreamKind.WATCH: max(0, int(overrides.get("watch_streams", settings.max_watch_streams_per_user))),
        }
        daily = int(overrides.get("daily_tokens", round(settings.daily_token_budget * budget_factor)))
        monthly = int(overrides.get("monthly_tokens", round(settings.monthly_token_budget * budget_factor)))
        return TierLimits(
            tier=tier, rates=rates, streams=streams, daily_tokens=max(0, daily), monthly_tokens=max(0, monthly)
        )
