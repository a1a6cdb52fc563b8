"""The fake OpenAI server, driven through the official SDK over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import openai
import pydantic
import pytest

from tests.support.fake_openai import Behavior, FakeOpenAI, embedding_for, split_tokens

USER_MESSAGE = [{"role": "user", "content": "What is a gradient?"}]
LONG_CONTENT = " ".join(f"word{i}" for i in range(200))


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeOpenAI) -> FakeOpenAI:
    fake_server.reset()
    return fake_server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0) as sdk_client:
        yield sdk_client


async def test_non_stream_echoes_the_last_user_message(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=USER_MESSAGE)

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "You said: What is a gradient?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 6)
    assert completion.usage.total_tokens == 10
    [recorded] = fake.chat_requests
    assert recorded.body["messages"] == USER_MESSAGE
    assert recorded.headers["authorization"] == f"Bearer {fake.api_key}"


async def test_scripted_content_finish_reason_and_usage(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(
        Behavior(content="first", finish_reason="length", prompt_tokens=100, completion_tokens=7),
        Behavior(content="second"),
    )

    first = await client.chat.completions.create(model="m", messages=USER_MESSAGE)
    second = await client.chat.completions.create(model="m", messages=USER_MESSAGE)
    third = await client.chat.completions.create(model="m", messages=USER_MESSAGE)

    assert first.choices[0].message.content == "first"
    assert first.choices[0].finish_reason == "length"
    assert first.usage is not None and (first.usage.prompt_tokens, first.usage.completion_tokens) == (100, 7)
    assert second.choices[0].message.content == "second"
    assert third.choices[0].message.content == "You said: What is a gradient?"


async def test_stream_with_usage_chunk(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(Behavior(content="Gradients point uphill.", prompt_tokens=12))

    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=USER_MESSAGE, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Gradients point uphill."
    finishing = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert [chunk.choices[0].finish_reason for chunk in finishing] == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (12, 3)
    # The server's thread counts the stream once write_eof returns, which can be just after the client has
    # read [DONE].
    assert await fake.wait_for_async(lambda: fake.completed_streams == 1 and fake.active_streams == 0)


async def test_stream_without_include_usage_has_no_usage_chunk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="m", messages=USER_MESSAGE, stream=True)
    chunks = [chunk async for chunk in stream]

    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


async def test_stream_deltas_arrive_incrementally(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    content = " ".join(f"t{i}" for i in range(20))
    fake.enqueue_chat(Behavior(content=content, tokens_per_second=20))

    started = time.monotonic()
    stream = await client.chat.completions.create(model="m", messages=USER_MESSAGE, stream=True)
    arrivals = [time.monotonic() - started async for chunk in stream if chunk.choices[0].delta.content]

    assert len(arrivals) == 20
    assert arrivals[-1] > 0.85  # 19 gaps of 50 ms
    assert arrivals[-1] - arrivals[0] > 0.7  # spread out, not delivered at once


async def test_first_token_delay_holds_back_the_stream_body(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(Behavior(content="late", first_token_delay=0.4))

    started = time.monotonic()
    stream = await client.chat.completions.create(model="m", messages=USER_MESSAGE, stream=True)
    headers_after = time.monotonic() - started
    first = await stream.__anext__()
    first_chunk_after = time.monotonic() - started
    await stream.close()

    assert first.choices[0].delta.role == "assistant"
    assert first_chunk_after >= 0.39
    assert first_chunk_after - headers_after > 0.2  # the headers came first, the body after the delay


async def test_rate_limit_surfaces_with_retry_after(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(Behavior(status=429, retry_after=2, error_message="slow down"))

    with pytest.raises(openai.RateLimitError) as raised:
        await client.chat.completions.create(model="m", messages=USER_MESSAGE)

    assert raised.value.status_code == 429
    assert raised.value.response.headers["retry-after"] == "2"
    assert raised.value.code == "rate_limit_exceeded"
    assert "slow down" in raised.value.message
    assert raised.value.request_id is not None


async def test_sdk_retries_honour_retry_after(fake: FakeOpenAI) -> None:
    fake.enqueue_chat(Behavior(status=429, retry_after=0.2), Behavior(content="recovered"))

    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=1) as retrying:
        started = time.monotonic()
        completion = await retrying.chat.completions.create(model="m", messages=USER_MESSAGE)
        elapsed = time.monotonic() - started

    assert completion.choices[0].message.content == "recovered"
    assert len(fake.chat_requests) == 2
    assert elapsed >= 0.19


async def test_server_error(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(Behavior(status=500))

    with pytest.raises(openai.InternalServerError) as raised:
        await client.chat.completions.create(model="m", messages=USER_MESSAGE, stream=True)

    assert raised.value.status_code == 500
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["type"] == "server_error"


async def test_drop_after_tokens_breaks_the_stream(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(Behavior(content="one two three four five six", drop_after_tokens=3))

    stream = await client.chat.completions.create(model="m", messages=USER_MESSAGE, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    assert received == ["one ", "two ", "three "]
    assert fake.wait_for(lambda: fake.dropped_streams == 1)
    assert fake.stream_disconnects == 0
    assert fake.completed_streams == 0


async def test_hold_after_tokens_pauses_the_stream_until_released(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(Behavior(content="one two three", hold_after_tokens=1))

    stream = await client.chat.completions.create(model="m", messages=USER_MESSAGE, stream=True)
    chunks = aiter(stream)
    received: list[str] = []
    while not received:
        chunk = await anext(chunks)
        if chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
    waiting = asyncio.ensure_future(anext(chunks))
    await asyncio.sleep(0.3)
    assert not waiting.done() and fake.active_streams == 1
    fake.release_held()
    received.append((await waiting).choices[0].delta.content or "")
    received.extend([chunk.choices[0].delta.content async for chunk in chunks if chunk.choices[0].delta.content])

    assert received == ["one ", "two ", "three"]
    assert fake.wait_for(lambda: fake.completed_streams == 1)


async def test_client_close_mid_stream_is_counted(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(Behavior(content=LONG_CONTENT, tokens_per_second=5))

    stream = await client.chat.completions.create(model="m", messages=USER_MESSAGE, stream=True)
    deltas = 0
    async for chunk in stream:
        deltas += bool(chunk.choices[0].delta.content)
        if deltas == 2:
            break
    assert fake.active_streams == 1
    await stream.close()

    # Counted as a disconnect while the stream still had most of its 40 s to run, not at its end.
    assert await fake.wait_for_async(lambda: fake.stream_disconnects == 1, timeout=10)
    assert fake.completed_streams == 0
    assert await fake.wait_for_async(lambda: fake.active_streams == 0)
    assert fake.completed_streams == 0


async def test_cancelling_the_consumer_task_closes_the_stream(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(Behavior(content=LONG_CONTENT, tokens_per_second=5))
    first_delta = asyncio.Event()

    async def consume() -> None:
        stream = await client.chat.completions.create(model="m", messages=USER_MESSAGE, stream=True)
        async with stream:
            async for chunk in stream:
                if chunk.choices[0].delta.content:
                    first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), timeout=2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await fake.wait_for_async(lambda: fake.stream_disconnects == 1, timeout=2)
    assert fake.completed_streams == 0


async def test_abandoned_non_stream_request_is_counted(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_chat(Behavior(first_token_delay=5))

    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m", messages=USER_MESSAGE, timeout=0.2)

    assert await fake.wait_for_async(lambda: fake.request_disconnects == 1, timeout=2)


class Quiz(pydantic.BaseModel):
    question: str
    choices: list[str]


async def test_json_schema_content(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    quiz = {"question": "2+2?", "choices": ["3", "4"]}
    fake.enqueue_chat(Behavior(json_content=quiz), Behavior(json_content=quiz))
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "quiz", "schema": Quiz.model_json_schema(), "strict": True},
    }

    raw = await client.chat.completions.create(
        model="m",
        messages=USER_MESSAGE,
        response_format=response_format,  # type: ignore[arg-type]
    )
    parsed = await client.chat.completions.parse(model="m", messages=USER_MESSAGE, response_format=Quiz)

    assert json.loads(raw.choices[0].message.content or "") == quiz
    assert parsed.choices[0].message.parsed == Quiz(**quiz)
    assert fake.chat_requests[1].body["response_format"]["type"] == "json_schema"


async def test_json_schema_without_json_content_returns_plain_text(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.enqueue_chat(Behavior(content="{not json"))

    with pytest.raises(pydantic.ValidationError):
        await client.chat.completions.parse(model="m", messages=USER_MESSAGE, response_format=Quiz)


async def test_embeddings_shape_and_determinism(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    texts = ["gradient descent on a convex loss", "gradient descent on a loss", "baking sourdough bread"]

    first = await client.embeddings.create(model="text-embedding-3-small", input=texts)
    again = await client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")

    vectors = np.array([item.embedding for item in first.data])
    assert [item.index for item in first.data] == [0, 1, 2]
    assert vectors.shape == (3, 1536)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors, np.array([item.embedding for item in again.data]), atol=1e-6)
    assert np.allclose(vectors[0], embedding_for(texts[0]), atol=1e-6)
    assert vectors[0] @ vectors[1] > 0.7
    assert abs(vectors[0] @ vectors[2]) < 0.3
    assert first.usage.prompt_tokens == 14  # words across the three texts
    assert [request.body["encoding_format"] for request in fake.embedding_requests] == ["base64", "float"]


async def test_embeddings_dimensions_and_token_input(client: openai.AsyncOpenAI) -> None:
    sized = await client.embeddings.create(model="e", input="hello", dimensions=64)
    tokens = await client.embeddings.create(model="e", input=[[1, 2, 3], [4, 5]], dimensions=8)

    assert len(sized.data[0].embedding) == 64
    assert [len(item.embedding) for item in tokens.data] == [8, 8]
    assert np.allclose(tokens.data[0].embedding, embedding_for("1 2 3", 8), atol=1e-6)


async def test_embeddings_follow_scripted_errors(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_embeddings(Behavior(status=429, retry_after=1))

    with pytest.raises(openai.RateLimitError) as raised:
        await client.embeddings.create(model="e", input="hello")
    assert raised.value.response.headers["retry-after"] == "1"
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model="e", input="")


async def test_choosers_pick_per_request_after_the_queue(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.chat_chooser = lambda body: Behavior(content=f"{len(fake.chat_requests)} {body['messages'][-1]['content']}")
    fake.embeddings_chooser = lambda body: Behavior(status=429 if body["input"] == "busy" else 200)
    fake.enqueue_chat(Behavior(content="queued"))

    answers = [await client.chat.completions.create(model="m", messages=USER_MESSAGE) for _ in range(2)]

    assert [answer.choices[0].message.content for answer in answers] == ["queued", "2 What is a gradient?"]
    assert len((await client.embeddings.create(model="e", input="calm")).data) == 1
    with pytest.raises(openai.RateLimitError):
        await client.embeddings.create(model="e", input="busy")


async def test_wrong_key_is_rejected(fake: FakeOpenAI) -> None:
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError) as raised:
            await wrong.chat.completions.create(model="m", messages=USER_MESSAGE)

    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert len(fake.chat_requests) == 1  # recorded even though it was refused


async def test_transcription_verbose_json(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue_transcriptions(Behavior(content="First sentence. Second one! Third?"))

    result = await client.audio.transcriptions.create(
        model="whisper-1", file=("lecture.wav", b"\x00" * 1000), response_format="verbose_json", language="en"
    )

    assert result.text == "First sentence. Second one! Third?"
    assert result.language == "en"
    assert result.duration == 7.5
    assert result.segments is not None
    assert [(s.start, s.end, s.text.strip()) for s in result.segments] == [
        (0.0, 2.5, "First sentence."),
        (2.5, 5.0, "Second one!"),
        (5.0, 7.5, "Third?"),
    ]
    [recorded] = fake.transcription_requests
    assert recorded.body == {
        "model": "whisper-1",
        "language": "en",
        "response_format": "verbose_json",
        "file_size": 1000,
        "filename": "lecture.wav",
    }


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    models = [model.id async for model in client.models.list()]

    assert "gpt-4o-mini" in models


def test_sync_client_and_restart_on_the_same_port() -> None:
    with FakeOpenAI() as server:
        base_url = server.base_url
        sync_client = openai.OpenAI(base_url=base_url, api_key=server.api_key, max_retries=0)
        assert sync_client.chat.completions.create(model="m", messages=USER_MESSAGE).choices
        server.stop()
        with pytest.raises(openai.APIConnectionError):
            sync_client.chat.completions.create(model="m", messages=USER_MESSAGE)
        server.start()
        assert server.base_url == base_url
        assert sync_client.chat.completions.create(model="m", messages=USER_MESSAGE).choices
        sync_client.close()


def test_stop_does_not_wait_for_slow_streams() -> None:
    server = FakeOpenAI().start()
    server.enqueue_chat(Behavior(content=LONG_CONTENT, tokens_per_second=2))
    sync_client = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    stream = sync_client.chat.completions.create(model="m", messages=USER_MESSAGE, stream=True)
    next(iter(stream))
    assert server.active_streams == 1

    started = time.monotonic()
    server.stop()

    assert time.monotonic() - started < 2
    assert server.stream_disconnects == 0
    stream.close()
    sync_client.close()


def test_split_tokens_round_trips() -> None:
    for text in ["", "one", "  leading and trailing  ", "a\nb\n\nc"]:
        assert "".join(split_tokens(text)) == text
    assert split_tokens("You said: hi") == ["You ", "said: ", "hi"]
