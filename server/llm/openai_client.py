"""The OpenAI SDK as every caller here uses it (chat and structured output, embeddings, moderation): the
client for the configured endpoint with the SDK's own retries off, its exceptions mapped to domain errors,
and the policy for retrying them against the caller's deadline."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

import openai
from openai import AsyncOpenAI

from server.config import Settings
from server.llm.provider import (
    ProviderError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

# Statuses the upstream uses for "busy, try again": request timeout, lock conflict, throttling, server errors.
_TRANSIENT_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times, and how long to wait, before trying a failed upstream call again.

    `max_wait_seconds` bounds a single wait when no deadline does (a Retry-After of an hour is not worth
    holding a request open for); with a deadline, a wait must also end before it.
    """

    max_retries: int = 2
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 8.0
    max_wait_seconds: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter (75-100% of the nominal delay) for attempt 0, 1, 2, ..."""
        nominal = min(self.max_delay_seconds, self.base_delay_seconds * 2.0**attempt)
        return nominal * random.uniform(0.75, 1.0)

    def delay_for(self, error: ProviderError, attempt: int, remaining: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise `error`."""
        if not isinstance(error, UpstreamError | UpstreamTimeout) or attempt >= self.max_retries:
            return None
        retry_after = error.retry_after_seconds if isinstance(error, UpstreamError) else None
        delay = retry_after if retry_after is not None else self.backoff(attempt)
        budget = self.max_wait_seconds if remaining is None else min(remaining, self.max_wait_seconds)
        if delay >= budget:
            return None
        return delay


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After from an upstream response: `retry-after-ms`, `retry-after` seconds, or an HTTP date."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def map_openai_error(exc: Exception, provider: str) -> ProviderError:
    """Translate an SDK exception into a domain error. Upstream messages are not copied: a 401 body can echo
    part of the key, and other bodies can echo the prompt."""
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamTimeout(f"{provider}: upstream call timed out", metadata={"provider": provider})
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamUnavailable(f"{provider}: could not reach the upstream", metadata={"provider": provider})
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        metadata = {"provider": provider, "upstream_status": str(status)}
        if status in (401, 403):
            return UpstreamAuthError(
                f"{provider}: upstream rejected the configured API credentials (HTTP {status})",
                metadata=metadata,
            )
        if status == 429 and exc.code == "insufficient_quota":
            return UpstreamRejected(
                f"{provider}: the upstream account has no quota left",
                reason="UPSTREAM_QUOTA_EXHAUSTED",
                metadata=metadata,
            )
        if status == 429:
            retry_after = retry_after_seconds(exc.response.headers)
            if retry_after is not None:
                metadata["retry_after_seconds"] = f"{retry_after:g}"
            return UpstreamRateLimited(
                f"{provider}: upstream rate limit (HTTP 429)",
                retry_after_seconds=retry_after,
                metadata=metadata,
            )
        if status >= 500 or status in _TRANSIENT_STATUSES:
            return UpstreamUnavailable(
                f"{provider}: upstream failed (HTTP {status})",
                retry_after_seconds=retry_after_seconds(exc.response.headers),
                metadata=metadata,
            )
        return UpstreamRejected(f"{provider}: upstream rejected the request (HTTP {status})", metadata=metadata)
    # An `error` event inside an SSE stream, or a response the SDK could not validate.
    return UpstreamUnavailable(f"{provider}: upstream returned an error", metadata={"provider": provider})


def raise_provider_error(error: ProviderError, cause: BaseException) -> NoReturn:
    """Raise `error` chained to the SDK exception, except for auth failures: the SDK's text for those can
    echo part of the key, so it is kept out of the exception chain (and so out of logged tracebacks)."""
    if isinstance(error, UpstreamAuthError):
        raise error from None
    raise error from cause


def build_openai_client(settings: Settings) -> AsyncOpenAI:
    """An SDK client for the configured endpoint, with the SDK's own retries off (callers retry)."""
    if not settings.llm_enabled or settings.openai_api_key is None:
        raise UpstreamAuthError("OPENAI_API_KEY is not configured", metadata={"provider": "openai"})
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        organization=settings.openai_organization,
        timeout=settings.llm_timeout_seconds,
        max_retries=0,
    )
