"""OpenAIEmbedder against the fake OpenAI server over HTTP, and the embedder factory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from server.config import Settings
from server.embeddings.factory import build_embedder
from server.embeddings.local import LocalEmbedder
from server.embeddings.openai_embedder import OpenAIEmbedder, plan_batches
from server.llm.openai_client import RetryPolicy
from server.llm.provider import UpstreamAuthError, UpstreamRateLimited, UpstreamUnavailable
from tests.support.fake_openai import Behavior, FakeOpenAI, embedding_for

FAST_RETRIES = RetryPolicy(max_retries=4, base_delay_seconds=0.02, max_delay_seconds=0.1, max_wait_seconds=5)


def settings_for(fake: FakeOpenAI, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "openai_api_key": fake.api_key,
        "openai_base_url": fake.base_url,
        "llm_timeout_seconds": 10.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def embedder(fake_openai: FakeOpenAI) -> AsyncIterator[OpenAIEmbedder]:
    instance = OpenAIEmbedder(settings_for(fake_openai), retry_policy=FAST_RETRIES)
    yield instance
    await instance.aclose()


async def test_2100_inputs_take_two_requests_in_order(fake_openai: FakeOpenAI, embedder: OpenAIEmbedder) -> None:
    texts = [f"chunk {i} about topic {i % 7}" for i in range(2100)]
    progress: list[tuple[int, int]] = []

    async def on_progress(done: int, total: int) -> None:
        progress.append((done, total))

    vectors = await embedder.embed(texts, on_progress=on_progress)

    sizes = [len(request.body["input"]) for request in fake_openai.embedding_requests]
    assert sizes == [2048, 52]
    assert progress == [(2048, 2100), (2100, 2100)]
    assert len(vectors) == 2100
    for index in (0, 1, 2047, 2048, 2099):
        expected = embedding_for(texts[index])
        assert float(np.dot(vectors[index], expected)) == pytest.approx(1.0, abs=1e-5)
    assert embedder.model_id == "openai:text-embedding-3-small"
    assert embedder.dimension == 1536 == len(vectors[0])
    body = fake_openai.embedding_requests[0].body
    assert body["model"] == "text-embedding-3-small"
    assert body["encoding_format"] == "base64"  # the SDK's fast path
    assert "dimensions" not in body


async def test_vectors_are_unit_length(embedder: OpenAIEmbedder) -> None:
    vectors = await embedder.embed(["gradient descent", "learning rate", ""])
    norms = np.linalg.norm(np.asarray(vectors), axis=1)
    assert norms == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)


async def test_batches_respect_the_token_limit_too(fake_openai: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder(settings_for(fake_openai), max_tokens_per_request=250)
    texts = ["word " * 60 for _ in range(10)]  # ~60 tokens each: four fit under 250
    try:
        vectors = await embedder.embed(texts)
    finally:
        await embedder.aclose()
    assert [len(request.body["input"]) for request in fake_openai.embedding_requests] == [4, 4, 2]
    assert len(vectors) == 10


def test_plan_batches_limits() -> None:
    def count(text: str) -> int:
        return len(text)

    assert plan_batches([], count=count) == []
    assert plan_batches(["a"] * 5, max_inputs=2, count=count) == [range(0, 2), range(2, 4), range(4, 5)]
    assert plan_batches(["aaa", "aaa", "aaaaaaa", "a"], max_tokens=6, count=count) == [
        range(0, 2),
        range(2, 3),  # over the limit on its own: still sent, alone
        range(3, 4),
    ]


async def test_dimensions_are_sent_only_when_configured(fake_openai: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder(settings_for(fake_openai), dimensions=256)
    try:
        vectors = await embedder.embed(["short vectors"])
    finally:
        await embedder.aclose()
    assert fake_openai.embedding_requests[0].body["dimensions"] == 256
    assert embedder.dimension == 256 == len(vectors[0])


async def test_429_then_success_honours_retry_after(fake_openai: FakeOpenAI, embedder: OpenAIEmbedder) -> None:
    fake_openai.enqueue_embeddings(Behavior(status=429, retry_after=0.3))
    started = time.monotonic()
    vectors = await embedder.embed(["retry me"])
    elapsed = time.monotonic() - started

    assert len(fake_openai.embedding_requests) == 2
    assert elapsed >= 0.3
    assert len(vectors) == 1


async def test_persistent_5xx_gives_up_after_bounded_attempts(
    fake_openai: FakeOpenAI, embedder: OpenAIEmbedder
) -> None:
    fake_openai.enqueue_embeddings(*(Behavior(status=502) for _ in range(6)))
    with pytest.raises(UpstreamUnavailable):
        await embedder.embed(["never"])
    assert len(fake_openai.embedding_requests) == 5


async def test_retry_after_beyond_the_wait_cap_is_raised(fake_openai: FakeOpenAI, embedder: OpenAIEmbedder) -> None:
    fake_openai.enqueue_embeddings(Behavior(status=429, retry_after=120))
    with pytest.raises(UpstreamRateLimited) as caught:
        await embedder.embed(["later"])
    assert caught.value.retry_after_seconds == pytest.approx(120)
    assert len(fake_openai.embedding_requests) == 1


async def test_bad_key_is_an_auth_error(fake_openai: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder(settings_for(fake_openai, openai_api_key="sk-wrong-secret"))
    try:
        with pytest.raises(UpstreamAuthError) as caught:
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()
    assert "sk-wrong-secret" not in str(caught.value)


async def test_empty_input_makes_no_request(fake_openai: FakeOpenAI, embedder: OpenAIEmbedder) -> None:
    assert await embedder.embed([]) == []
    assert fake_openai.embedding_requests == []


# --- factory ---------------------------------------------------------------------------------------------


def test_factory_auto_prefers_openai_when_a_key_is_set(fake_openai: FakeOpenAI) -> None:
    assert isinstance(build_embedder(settings_for(fake_openai)), OpenAIEmbedder)


def test_factory_auto_falls_back_to_the_local_model() -> None:
    embedder = build_embedder(Settings(_env_file=None, openai_api_key=None))  # type: ignore[call-arg]
    assert isinstance(embedder, LocalEmbedder)
    assert embedder.model_id == "local:all-MiniLM-L6-v2"
    assert embedder.dimension == 384


def test_factory_honours_an_explicit_choice(fake_openai: FakeOpenAI) -> None:
    assert isinstance(build_embedder(settings_for(fake_openai, embedding_provider="local")), LocalEmbedder)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        build_embedder(Settings(_env_file=None, embedding_provider="openai"))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="EMBEDDING_PROVIDER"):
        build_embedder(Settings(_env_file=None, embedding_provider="magic"))  # type: ignore[call-arg]


def test_unknown_model_needs_explicit_dimensions(fake_openai: FakeOpenAI) -> None:
    settings = settings_for(fake_openai, openai_embedding_model="house-embedder")
    with pytest.raises(ValueError, match="dimensions"):
        OpenAIEmbedder(settings)
    assert OpenAIEmbedder(settings, dimensions=768).dimension == 768
