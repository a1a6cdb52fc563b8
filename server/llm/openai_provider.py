"""`LLMProvider` over the OpenAI SDK, against api.openai.com or any OpenAI-compatible endpoint.

The SDK's own retries are disabled (`max_retries=0`): retrying here lets every wait be checked against the
caller's deadline, and lets a stream be retried only until its first delta has reached the caller (after that
a retry would repeat text the user has already seen).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream, omit
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema

from server.config import Settings
from server.llm.openai_client import RetryPolicy, build_openai_client, map_openai_error, raise_provider_error
from server.llm.provider import (
    ChatMessage,
    ChatParams,
    Completion,
    JsonResult,
    MalformedOutput,
    ProviderError,
    StreamEvent,
    TextDelta,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from server.llm.tokens import counter_for

logger = logging.getLogger(__name__)


async def _close_quietly(stream: AsyncStream[ChatCompletionChunk]) -> None:
    """Close the upstream response; a failure while closing must not mask the error (or result) at hand."""
    try:
        await stream.close()
    except Exception:
        logger.debug("closing the upstream stream failed", exc_info=True)


def _deadline_scope(deadline: float | None) -> asyncio.Timeout:
    return asyncio.timeout(None if deadline is None else deadline - time.monotonic())


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "developer":
        return {"role": "developer", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


class _StreamAccumulator:
    """Folds chunks into the final `Completion` (finish reason, usage, model, full text)."""

    def __init__(self, requested_model: str) -> None:
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.model = requested_model
        self.response_id: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Record the chunk; return its text delta ("" when it carries none)."""
        if chunk.model:
            self.model = chunk.model
        if chunk.id:
            self.response_id = chunk.id
        if chunk.usage is not None:
            self.prompt_tokens = chunk.usage.prompt_tokens
            self.completion_tokens = chunk.usage.completion_tokens
        text = ""
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            if choice.delta is not None and choice.delta.content:
                text += choice.delta.content
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        if text:
            self.parts.append(text)
        return text

    def finish(self, provider: str, messages: Sequence[ChatMessage]) -> Completion:
        if self.finish_reason is None:
            # The body ended cleanly but the model never said it was done: the answer is truncated.
            raise UpstreamUnavailable(
                f"{provider}: upstream stream ended before the completion finished",
                metadata={"provider": provider},
            )
        text = "".join(self.parts)
        estimated = self.prompt_tokens is None or self.completion_tokens is None
        return Completion(
            finish_reason=self.finish_reason,
            prompt_tokens=(
                self.prompt_tokens
                if self.prompt_tokens is not None
                else counter_for(self.model).count_messages(m.content for m in messages)
            ),
            completion_tokens=(
                self.completion_tokens if self.completion_tokens is not None else counter_for(self.model).count(text)
            ),
            model=self.model,
            text=text,
            response_id=self.response_id,
            usage_estimated=estimated,
        )


class OpenAICompatibleProvider:
    """Chat over the OpenAI Chat Completions API (`stream=True` with usage, or JSON-schema output)."""

    name = "openai"

    def __init__(
        self,
        settings: Settings,
        *,
        client: AsyncOpenAI | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._retry = retry_policy or RetryPolicy(max_retries=settings.llm_max_retries)
        self._owns_client = client is None
        self._client = client if client is not None else build_openai_client(settings)

    @property
    def client(self) -> AsyncOpenAI:
        """The underlying SDK client (an embedder may share it; this provider still owns its lifetime)."""
        return self._client

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()

    # --- streaming chat ------------------------------------------------------------------------------------

    async def stream_chat(
        self, messages: Sequence[ChatMessage], params: ChatParams
    ) -> AsyncGenerator[StreamEvent, None]:
        message_params = [_message_param(m) for m in messages]
        attempt = 0
        while True:
            call_timeout = self._call_timeout(params)
            stream: AsyncStream[ChatCompletionChunk] | None = None
            emitted_chars = 0
            error: ProviderError
            cause: BaseException
            try:
                async with _deadline_scope(params.deadline):
                    stream = await self._client.chat.completions.create(
                        model=params.model,
                        messages=message_params,
                        stream=True,
                        stream_options={"include_usage": True},
                        temperature=omit if params.temperature is None else params.temperature,
                        max_completion_tokens=omit if params.max_tokens is None else params.max_tokens,
                        safety_identifier=omit if params.user is None else params.user,
                        timeout=call_timeout,
                    )
                accumulator = _StreamAccumulator(params.model)
                while True:
                    try:
                        # The deadline bounds each read, never a `yield`: the consumer's time is its own.
                        async with _deadline_scope(params.deadline):
                            chunk = await anext(stream)
                    except StopAsyncIteration:
                        break
                    text = accumulator.add(chunk)
                    if text:
                        emitted_chars += len(text)
                        yield TextDelta(text)
                completion = accumulator.finish(self.name, messages)
            except openai.APIError as exc:
                error, cause = map_openai_error(exc, self.name), exc
            except TimeoutError as exc:
                error, cause = self._deadline_error(), exc
            except ProviderError as exc:
                error, cause = exc, exc
            else:
                yield completion
                return
            finally:
                # Runs on success, on error, on aclose() (GeneratorExit) and on cancellation: the upstream
                # response is closed before the generator finishes, so the connection is released at once.
                if stream is not None:
                    await _close_quietly(stream)

            if emitted_chars:
                if isinstance(error, UpstreamError):
                    error = UpstreamUnavailable(
                        f"{self.name}: upstream stream broke off after {emitted_chars} characters",
                        metadata={"provider": self.name, "emitted_chars": str(emitted_chars)},
                    )
                raise_provider_error(error, cause)
            delay = self._retry.delay_for(error, attempt, params.time_remaining())
            if delay is None:
                raise_provider_error(error, cause)
            logger.warning(
                "llm retry",
                extra={"provider": self.name, "reason": error.reason, "attempt": attempt + 1, "delay": delay},
            )
            await asyncio.sleep(delay)
            attempt += 1

    # --- JSON output ---------------------------------------------------------------------------------------

    async def complete_json(
        self, messages: Sequence[ChatMessage], params: ChatParams, schema_name: str, schema: dict[str, Any]
    ) -> JsonResult:
        message_params = [_message_param(m) for m in messages]
        response_format: ResponseFormatJSONSchema = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": True},
        }
        attempt = 0
        while True:
            call_timeout = self._call_timeout(params)
            error: ProviderError
            cause: BaseException
            try:
                async with _deadline_scope(params.deadline):
                    response = await self._client.chat.completions.create(
                        model=params.model,
                        messages=message_params,
                        response_format=response_format,
                        temperature=omit if params.temperature is None else params.temperature,
                        max_completion_tokens=omit if params.max_tokens is None else params.max_tokens,
                        safety_identifier=omit if params.user is None else params.user,
                        timeout=call_timeout,
                    )
                break
            except openai.APIError as exc:
                error, cause = map_openai_error(exc, self.name), exc
            except TimeoutError as exc:
                error, cause = self._deadline_error(), exc
            delay = self._retry.delay_for(error, attempt, params.time_remaining())
            if delay is None:
                raise_provider_error(error, cause)
            logger.warning(
                "llm retry",
                extra={"provider": self.name, "reason": error.reason, "attempt": attempt + 1, "delay": delay},
            )
            await asyncio.sleep(delay)
            attempt += 1

        model = response.model or params.model
        metadata = {"provider": self.name, "schema": schema_name}
        if not response.choices:
            raise MalformedOutput(f"{self.name}: upstream returned no choices", metadata=metadata)
        choice = response.choices[0]
        raw_text = choice.message.content or ""
        if choice.message.refusal:
            raise MalformedOutput(
                f"{self.name}: the model refused to answer in the requested format", metadata=metadata
            )
        if choice.finish_reason == "length":
            raise MalformedOutput(
                f"{self.name}: output hit the token limit before the JSON was complete",
                raw_text=raw_text,
                metadata=metadata,
            )
        try:
            data = json.loads(raw_text)
        except json.JSONDecodeError as exc:
            raise MalformedOutput(
                f"{self.name}: output for schema {schema_name!r} is not valid JSON ({exc.msg} at char {exc.pos})",
                raw_text=raw_text,
                metadata=metadata,
            ) from None
        usage = response.usage
        return JsonResult(
            data=data,
            raw_text=raw_text,
            prompt_tokens=(
                usage.prompt_tokens
                if usage is not None
                else counter_for(model).count_messages(m.content for m in messages)
            ),
            completion_tokens=usage.completion_tokens if usage is not None else counter_for(model).count(raw_text),
            model=model,
            usage_estimated=usage is None,
        )

    # --- helpers -------------------------------------------------------------------------------------------

    def _call_timeout(self, params: ChatParams) -> float:
        """min(per-call timeout, time left before the deadline); raises when the deadline has passed."""
        remaining = params.time_remaining()
        if remaining is None:
            return self._settings.llm_timeout_seconds
        if remaining <= 0:
            raise self._deadline_error()
        return min(self._settings.llm_timeout_seconds, remaining)

    def _deadline_error(self) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"{self.name}: deadline exceeded waiting for the upstream", metadata={"provider": self.name}
        )
