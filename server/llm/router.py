"""Which engine answers: the configured OpenAI-compatible model, or the offline engine.

- No API key configured: the offline engine answers every turn (`fallback` False: it is the configured
  engine, not a stand-in).
- A key configured: the model answers while the circuit breaker lets calls through. When the breaker is
  open, or the model fails before its first delta with an outage-like error (5xx, connection failure,
  throttling that outlasted its retries, a per-call timeout) while the caller's deadline still allows,
  the offline engine answers instead and the answer is marked `fallback`. The breaker closes again by
  itself after a successful half-open trial.
- Failures that are not outages are not hidden behind a fallback: rejected credentials (401/403) and
  rejected requests surface as FAILED_PRECONDITION, an exhausted deadline as DEADLINE_EXCEEDED, and a
  stream that breaks after text reached the caller is re-raised for the caller to finish the partial answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from server.config import Settings
from server.core.errors import Unavailable
from server.limits.budget import Reservation
from server.llm.breaker import BreakerState, CircuitBreaker
from server.llm.cache import AsyncRedis, ResponseCache
from server.llm.offline import OFFLINE_MODEL, OfflineEngine, OfflineRequest
from server.llm.openai_provider import OpenAICompatibleProvider
from server.llm.provider import (
    ChatMessage,
    ChatParams,
    Completion,
    JsonResult,
    LLMProvider,
    MalformedOutput,
    ProviderError,
    StreamEvent,
    TextDelta,
    UpstreamTimeout,
)
from server.llm.tokens import TokenCounter, counter_for

logger = logging.getLogger(__name__)


def budgeted_model(settings: Settings, reservation: Reservation | None) -> str:
    """The model for a call whose tokens `reservation` holds: CHAT_MODEL, or BUDGET_FALLBACK_MODEL once the
    student has less than BUDGET_FALLBACK_BELOW of a token budget left."""
    fallback = settings.budget_fallback_model
    if not fallback or reservation is None or reservation.left_share >= settings.budget_fallback_below:
        return settings.chat_model
    logger.info(
        "token budget running low: the fallback model answers",
        extra={"operation": reservation.operation, "left_share": round(reservation.left_share, 3)},
    )
    return fallback


def pseudonymous_user(user_id: str) -> str:
    """A stable id for the upstream's abuse detection that does not reveal who the user is."""
    return hashlib.sha256(f"tutorstream:{user_id}".encode()).hexdigest()[:32]


class RoutedChat:
    """One answer, routed. Iterate `events()` for `TextDelta`s and one final `Completion`.

    `model`, `offline` and `fallback` describe who is answering; they can change once, before the first
    delta, when the model fails and the offline engine takes over (`failure` then holds the reason).
    """

    def __init__(
        self,
        router: LLMRouter,
        messages: Sequence[ChatMessage],
        params: ChatParams,
        offline_request: Callable[[], Awaitable[OfflineRequest]],
        *,
        force_offline: bool = False,
    ) -> None:
        self._router = router
        self._messages = messages
        self._params = params
        self._offline_request = offline_request
        upstream = not force_offline and router.provider is not None and router.breaker.allow()
        self.offline = not upstream
        self.fallback = router.provider is not None and not upstream
        self.model = params.model if upstream else OFFLINE_MODEL
        self.failure: ProviderError | None = None

    async def events(self) -> AsyncGenerator[StreamEvent, None]:
        provider = self._router.provider
        if not self.offline and provider is not None:
            emitted = False
            try:
                async with contextlib.aclosing(provider.stream_chat(self._messages, self._params)) as stream:
                    async for event in stream:
                        if isinstance(event, TextDelta):
                            emitted = True
                        elif isinstance(event, Completion):
                            self._router.breaker.record_success()
                        yield event
                return
            except ProviderError as error:
                if not (isinstance(error, UpstreamTimeout) and self._deadline_passed()):
                    # The caller's own deadline running out says nothing about the upstream's health.
                    self._router.record_failure(error)
                if emitted or not self._can_fall_back(error):
                    raise
                logger.warning("llm fallback to offline engine", extra={"reason": error.reason})
                self.failure = error
                self.offline = True
                self.fallback = True
                self.model = OFFLINE_MODEL
        request = await self._offline_request()
        async with contextlib.aclosing(self._router.offline.stream(request)) as stream:
            async for event in stream:
                yield event

    def _deadline_passed(self) -> bool:
        remaining = self._params.time_remaining()
        return remaining is not None and remaining <= 0

    def _can_fall_back(self, error: ProviderError) -> bool:
        return error.trips_breaker and not self._deadline_passed()


class LLMRouter:
    """The process-wide entry to chat models (`runtime.llm`), shared by chat and the agents."""

    def __init__(
        self,
        settings: Settings,
        *,
        provider: LLMProvider | None,
        offline: OfflineEngine | None = None,
        breaker: CircuitBreaker | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.settings = settings
        self.provider = provider
        self.offline = offline or OfflineEngine()
        self.breaker = breaker or CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_cooldown_seconds)
        self.cache = cache or ResponseCache(settings.response_cache_ttl_seconds)

    @classmethod
    def from_settings(cls, settings: Settings, *, redis: AsyncRedis | None = None) -> LLMRouter:
        provider = OpenAICompatibleProvider(settings) if settings.llm_enabled else None
        return cls(
            settings,
            provider=provider,
            cache=ResponseCache(settings.response_cache_ttl_seconds, redis=redis),
        )

    @property
    def configured_model(self) -> str:
        """The model answers are requested from (the offline engine's name when no key is configured)."""
        return self.settings.chat_model if self.provider is not None else OFFLINE_MODEL

    @property
    def online(self) -> bool:
        return self.provider is not None

    def upstream_likely(self) -> bool:
        """Would a call go to the model now? (Reads the breaker without taking its half-open trial.)"""
        return self.provider is not None and self.breaker.state is not BreakerState.OPEN

    def counter(self) -> TokenCounter:
        return counter_for(self.configured_model)

    def open_chat(
        self,
        messages: Sequence[ChatMessage],
        params: ChatParams,
        offline_request: Callable[[], Awaitable[OfflineRequest]],
        *,
        offline: bool = False,
    ) -> RoutedChat:
        """`offline_request` builds what the offline engine answers from, called only when it answers.
        `offline`: the offline engine answers even with a model available (marked `fallback`, as in an
        outage), e.g. after the model's answers in a session failed the grounding check."""
        return RoutedChat(self, messages, params, offline_request, force_offline=offline)

    async def complete_json(
        self,
        messages: Sequence[ChatMessage],
        params: ChatParams,
        schema_name: str,
        schema: dict[str, Any],
    ) -> JsonResult:
        """Structured output from the model. Raises `Unavailable` (reason LLM_UNAVAILABLE) when no model is
        configured or the breaker is open, so callers can take their own offline path."""
        if self.provider is None:
            raise Unavailable("no language model is configured", reason="LLM_UNAVAILABLE")
        if not self.breaker.allow():
            raise Unavailable(
                "the language model is temporarily unavailable",
                reason="LLM_UNAVAILABLE",
                retry_after_seconds=self.breaker.retry_after_seconds() or None,
            )
        try:
            result = await self.provider.complete_json(messages, params, schema_name, schema)
        except ProviderError as error:
            self.record_failure(error)
            raise
        except MalformedOutput:
            # The upstream answered, just not in the requested shape: not evidence of an outage.
            self.breaker.record_success()
            raise
        self.breaker.record_success()
        return result

    def record_failure(self, error: ProviderError) -> None:
        if error.trips_breaker:
            self.breaker.record_failure()
        else:
            # The upstream answered (with a 4xx): reachable, so a half-open trial counts as passed.
            self.breaker.record_success()

    async def aclose(self) -> None:
        close = getattr(self.provider, "aclose", None)
        if close is not None:
            await close()
