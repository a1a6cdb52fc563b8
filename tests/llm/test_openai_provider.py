"""OpenAICompatibleProvider against the fake OpenAI server, over real HTTP through the official SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.config import Settings
from server.core.errors import DeadlineExceeded, FailedPrecondition, Unavailable
from server.llm.openai_client import RetryPolicy
from server.llm.openai_provider import OpenAICompatibleProvider
from server.llm.provider import (
    ChatMessage,
    ChatParams,
    Completion,
    MalformedOutput,
    StreamEvent,
    TextDelta,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.ports import free_port

MESSAGES = [
    ChatMessage("system", "You are a tutor."),
    ChatMessage("user", "What is a gradient?"),
]
LONG_ANSWER = " ".join(f"word{i}" for i in range(40))
FAST_RETRIES = RetryPolicy(max_retries=2, base_delay_seconds=0.05, max_delay_seconds=0.2)


def settings_for(base_url: str, api_key: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "openai_api_key": api_key,
        "openai_base_url": base_url,
        "llm_max_retries": 2,
        "llm_timeout_seconds": 10.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def params(seconds: float | None = 5.0, **overrides: Any) -> ChatParams:
    deadline = None if seconds is None else time.monotonic() + seconds
    return ChatParams(model="gpt-4o-mini", deadline=deadline, **overrides)


@pytest.fixture
async def provider(fake_openai: FakeOpenAI) -> AsyncIterator[OpenAICompatibleProvider]:
    llm = OpenAICompatibleProvider(settings_for(fake_openai.base_url, fake_openai.api_key), retry_policy=FAST_RETRIES)
    yield llm
    await llm.aclose()


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


# --- streaming -------------------------------------------------------------------------------------------


async def test_stream_yields_deltas_as_they_arrive(fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    content = "one two three four five six seven eight"
    fake_openai.enqueue_chat(Behavior(content=content, tokens_per_second=20))
    started = time.monotonic()
    arrivals: list[tuple[float, StreamEvent, int]] = []
    async for event in provider.stream_chat(MESSAGES, params()):
        arrivals.append((time.monotonic() - started, event, fake_openai.active_streams))

    deltas = [event for _, event, _ in arrivals if isinstance(event, TextDelta)]
    assert len(deltas) == 8
    assert "".join(delta.text for delta in deltas) == content
    first_delta_at, _, streams_open_at_first_delta = arrivals[0]
    finished_at, last, _ = arrivals[-1]
    # Eight tokens at 20/s take ~0.35 s; the first must not wait for the rest.
    assert finished_at >= 0.3
    assert first_delta_at < finished_at / 2
    assert streams_open_at_first_delta == 1
    assert isinstance(last, Completion)
    assert last.finish_reason == "stop"
    assert last.text == content


async def test_usage_comes_from_the_include_usage_chunk(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake_openai.enqueue_chat(Behavior(content="A slope.", prompt_tokens=42, completion_tokens=7))
    events = await collect(provider.stream_chat(MESSAGES, params(temperature=0.3, max_tokens=200, user="u-hash-1")))

    completion = events[-1]
    assert isinstance(completion, Completion)
    assert (completion.prompt_tokens, completion.completion_tokens) == (42, 7)
    assert completion.total_tokens == 49
    assert not completion.usage_estimated
    assert completion.model == "gpt-4o-mini"
    assert completion.response_id is not None
    body = fake_openai.chat_requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "You are a tutor."},
        {"role": "user", "content": "What is a gradient?"},
    ]
    assert body["temperature"] == 0.3
    assert body["max_completion_tokens"] == 200
    assert body["safety_identifier"] == "u-hash-1"


async def test_429_with_retry_after_is_waited_out_then_succeeds(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake_openai.enqueue_chat(Behavior(status=429, retry_after=0.4), Behavior(content="Back again."))
    started = time.monotonic()
    events = await collect(provider.stream_chat(MESSAGES, params(5.0)))
    elapsed = time.monotonic() - started

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Back again."
    assert len(fake_openai.chat_requests) == 2
    assert elapsed >= 0.4  # the Retry-After was waited out (how much longer a loaded machine takes is not asserted)


async def test_429_retry_after_past_the_deadline_fails_fast(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake_openai.enqueue_chat(Behavior(status=429, retry_after=60))
    started = time.monotonic()
    with pytest.raises(UpstreamRateLimited) as caught:
        await collect(provider.stream_chat(MESSAGES, params(20.0)))

    # It gave up at once rather than sleeping towards the deadline (bounded by half of it, not by a guess of
    # how fast a loaded machine is).
    assert time.monotonic() - started < 10.0
    assert len(fake_openai.chat_requests) == 1
    assert caught.value.retry_after_seconds == pytest.approx(60.0)
    assert caught.value.reason == "UPSTREAM_RATE_LIMITED"
    assert isinstance(caught.value, Unavailable)
    assert len(fake_openai.chat_requests) == 1


async def test_5xx_is_retried_then_reported_unavailable(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake_openai.enqueue_chat(*(Behavior(status=500) for _ in range(3)))
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(provider.stream_chat(MESSAGES, params()))

    assert len(fake_openai.chat_requests) == 3  # the first try and llm_max_retries=2 more
    assert caught.value.reason == "UPSTREAM_UNAVAILABLE"
    assert caught.value.metadata["upstream_status"] == "500"
    assert caught.value.trips_breaker


async def test_5xx_then_success_recovers(fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    fake_openai.enqueue_chat(Behavior(status=503), Behavior(content="Recovered."))
    events = await collect(provider.stream_chat(MESSAGES, params()))

    assert isinstance(events[-1], Completion)
    assert events[-1].text == "Recovered."
    assert len(fake_openai.chat_requests) == 2


async def test_401_is_an_auth_error_that_never_shows_the_key(fake_openai: FakeOpenAI) -> None:
    secret = "sk-live-DO-NOT-LEAK-4f1c9a"
    llm = OpenAICompatibleProvider(settings_for(fake_openai.base_url, secret), retry_policy=FAST_RETRIES)
    try:
        with pytest.raises(UpstreamAuthError) as caught:
            await collect(llm.stream_chat(MESSAGES, params()))
    finally:
        await llm.aclose()

    error = caught.value
    assert isinstance(error, FailedPrecondition)
    assert error.reason == "UPSTREAM_AUTH_FAILED"
    assert not error.trips_breaker
    for text in (str(error), repr(error), error.message, repr(error.metadata)):
        assert secret not in text
        assert "DO-NOT-LEAK" not in text
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert len(fake_openai.chat_requests) == 1  # auth failures are not retried


async def test_other_4xx_is_rejected_without_retry(fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    fake_openai.enqueue_chat(Behavior(status=400))
    with pytest.raises(UpstreamRejected) as caught:
        await collect(provider.stream_chat(MESSAGES, params()))

    assert isinstance(caught.value, FailedPrecondition)
    assert len(fake_openai.chat_requests) == 1


async def test_unreachable_upstream_is_unavailable() -> None:
    llm = OpenAICompatibleProvider(
        settings_for(f"http://127.0.0.1:{free_port()}/v1", "sk-test"), retry_policy=FAST_RETRIES
    )
    try:
        with pytest.raises(UpstreamUnavailable):
            await collect(llm.stream_chat(MESSAGES, params()))
    finally:
        await llm.aclose()


async def test_drop_mid_stream_keeps_partial_text_then_fails_without_retry(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake_openai.enqueue_chat(Behavior(content="alpha beta gamma delta epsilon", drop_after_tokens=3))
    received: list[str] = []
    with pytest.raises(UpstreamUnavailable) as caught:
        async for event in provider.stream_chat(MESSAGES, params()):
            assert isinstance(event, TextDelta)
            received.append(event.text)

    assert "".join(received) == "alpha beta gamma "
    assert caught.value.metadata["emitted_chars"] == str(len("alpha beta gamma "))
    assert len(fake_openai.chat_requests) == 1  # text already reached the caller: never retried


async def test_aclose_after_first_delta_closes_the_upstream_stream(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, tokens_per_second=10))
    stream = provider.stream_chat(MESSAGES, params(30.0))
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    assert fake_openai.active_streams == 1

    closed_at = time.monotonic()
    await stream.aclose()
    assert await fake_openai.wait_for_async(lambda: fake_openai.stream_disconnects == 1, timeout=2.0)
    assert time.monotonic() - closed_at < 1.0
    assert await fake_openai.wait_for_async(lambda: fake_openai.active_streams == 0, timeout=2.0)
    assert fake_openai.completed_streams == 0


async def test_cancelling_the_consumer_closes_the_upstream_and_propagates(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, tokens_per_second=5))
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for event in provider.stream_chat(MESSAGES, params(30.0)):
            if isinstance(event, TextDelta):
                first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), timeout=5)
    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert await fake_openai.wait_for_async(lambda: fake_openai.stream_disconnects == 1, timeout=2.0)
    assert time.monotonic() - cancelled_at < 1.0


async def test_deadline_mid_stream_raises_timeout_and_closes_upstream(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake_openai.enqueue_chat(Behavior(content=LONG_ANSWER, tokens_per_second=10))
    received = 0
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        async for event in provider.stream_chat(MESSAGES, params(0.5)):
            received += isinstance(event, TextDelta)

    assert isinstance(caught.value, DeadlineExceeded)
    assert 0 < received < 40
    assert time.monotonic() - started < 1.5
    assert await fake_openai.wait_for_async(lambda: fake_openai.stream_disconnects == 1, timeout=2.0)


async def test_expired_deadline_makes_no_upstream_call(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    with pytest.raises(UpstreamTimeout):
        await collect(provider.stream_chat(MESSAGES, params(-1.0)))
    assert fake_openai.chat_requests == []


# --- JSON output -----------------------------------------------------------------------------------------

QUIZ_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "question": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["question", "choices"],
    "additionalProperties": False,
}


async def test_json_schema_output_is_requested_and_parsed(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    quiz = {"question": "What does a gradient point towards?", "choices": ["steepest ascent", "zero"]}
    fake_openai.enqueue_chat(Behavior(json_content=quiz, prompt_tokens=30, completion_tokens=12))
    result = await provider.complete_json(MESSAGES, params(), "quiz", QUIZ_SCHEMA)

    assert result.data == quiz
    assert (result.prompt_tokens, result.completion_tokens) == (30, 12)
    assert result.model == "gpt-4o-mini"
    body = fake_openai.chat_requests[0].body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "quiz", "schema": QUIZ_SCHEMA, "strict": True},
    }
    assert "stream" not in body or body["stream"] is False


async def test_malformed_json_raises_malformed_output(
    fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake_openai.enqueue_chat(Behavior(content='{"question": "unfinished'))
    with pytest.raises(MalformedOutput) as caught:
        await provider.complete_json(MESSAGES, params(), "quiz", QUIZ_SCHEMA)

    assert caught.value.reason == "MALFORMED_LLM_OUTPUT"
    assert caught.value.raw_text == '{"question": "unfinished'
    assert len(fake_openai.chat_requests) == 1


async def test_truncated_json_output_is_malformed(fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    fake_openai.enqueue_chat(Behavior(content='{"question": "a"}', finish_reason="length"))
    with pytest.raises(MalformedOutput):
        await provider.complete_json(MESSAGES, params(), "quiz", QUIZ_SCHEMA)


async def test_json_call_retries_429_then_succeeds(fake_openai: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    fake_openai.enqueue_chat(
        Behavior(status=429, retry_after=0.1), Behavior(json_content={"question": "q", "choices": []})
    )
    result = await provider.complete_json(MESSAGES, params(), "quiz", QUIZ_SCHEMA)

    assert result.data == {"question": "q", "choices": []}
    assert len(fake_openai.chat_requests) == 2
