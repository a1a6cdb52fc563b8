"""The LLM provider protocol, its domain types and its errors.

Everything above this layer talks in `ChatMessage`/`ChatParams` and stream events; nothing above it knows
which SDK or wire format produced them. Errors are domain errors (see `server.core.errors`), so the
transport maps them to gRPC status codes without knowing anything about HTTP.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeAlias

from server.core.errors import DeadlineExceeded, DomainError, FailedPrecondition, Unavailable

Role: TypeAlias = Literal["system", "developer", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatParams:
    """Per-call options. `deadline` is an absolute `time.monotonic()` instant (None: only the provider's own
    per-call timeout applies). `user` is an opaque, stable end-user identifier forwarded for abuse detection
    (OpenAI's `safety_identifier`): pass a pseudonymous id, never an email or a name."""

    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    deadline: float | None = None
    user: str | None = None

    def time_remaining(self, now: float | None = None) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - (time.monotonic() if now is None else now)


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Completion:
    """The last event of a successful stream.

    `usage_estimated` is True when the upstream sent no usage block and the token counts were computed
    locally from the prompt and the generated text.
    """

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    text: str = ""
    response_id: str | None = None
    usage_estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


StreamEvent: TypeAlias = TextDelta | Completion


@dataclass(frozen=True, slots=True)
class JsonResult:
    data: Any
    raw_text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    usage_estimated: bool = field(default=False)


class LLMProvider(Protocol):
    """A chat model behind any wire protocol.

    `stream_chat` is an async generator: it yields `TextDelta`s as they arrive and ends with exactly one
    `Completion`. Closing it early (`aclose()`, or cancelling the task that iterates it) closes the upstream
    stream at once. Consumers should iterate it inside `contextlib.aclosing(...)` so that an abandoned stream
    is closed deterministically rather than whenever the generator is garbage-collected.
    """

    name: str

    def stream_chat(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncGenerator[StreamEvent, None]: ...

    async def complete_json(
        self, messages: Sequence[ChatMessage], params: ChatParams, schema_name: str, schema: dict[str, Any]
    ) -> JsonResult: ...


# --- errors -----------------------------------------------------------------------------------------------


class ProviderError(DomainError):
    """Common base of the failures of an upstream model call (so callers can catch them all at once).

    `trips_breaker` says whether the failure is evidence that the upstream is unhealthy: outages, throttling
    and timeouts are; a rejected key or a rejected request is a configuration problem, not an outage.
    """

    trips_breaker: ClassVar[bool] = False


class UpstreamError(ProviderError, Unavailable):
    """The upstream could not serve the call right now; trying again later may succeed (gRPC UNAVAILABLE)."""

    reason = "UPSTREAM_UNAVAILABLE"
    trips_breaker = True


class UpstreamUnavailable(UpstreamError):
    """5xx, connection failures, and streams that broke off before finishing."""

    reason = "UPSTREAM_UNAVAILABLE"


class UpstreamRateLimited(UpstreamError):
    """429 from the upstream. `retry_after_seconds` is the upstream's Retry-After, when it sent one."""

    reason = "UPSTREAM_RATE_LIMITED"


class UpstreamAuthError(ProviderError, FailedPrecondition):
    """401/403: the configured credentials were rejected. The message never contains the key."""

    reason = "UPSTREAM_AUTH_FAILED"


class UpstreamRejected(ProviderError, FailedPrecondition):
    """Another 4xx (unknown model, request too large, invalid parameter): retrying cannot help."""

    reason = "UPSTREAM_REJECTED_REQUEST"


class UpstreamTimeout(ProviderError, DeadlineExceeded):
    """The call's deadline (or the per-call timeout) ran out before the upstream answered."""

    reason = "UPSTREAM_TIMEOUT"
    trips_breaker = True


class MalformedOutput(DomainError):
    """The model answered, but not in the requested shape (invalid JSON, truncated, refused)."""

    reason = "MALFORMED_LLM_OUTPUT"

    def __init__(self, message: str, *, raw_text: str = "", metadata: dict[str, str] | None = None) -> None:
        super().__init__(message, metadata=metadata)
        self.raw_text = raw_text
