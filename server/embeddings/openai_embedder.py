"""Embeddings through the OpenAI embeddings API (or any compatible endpoint)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import openai
from openai import AsyncOpenAI, omit
from openai.types import CreateEmbeddingResponse

from server.config import Settings
from server.core.errors import FailedPrecondition
from server.embeddings.base import ProgressCallback, report_progress
from server.llm.openai_client import (
    RetryPolicy,
    build_openai_client,
    map_openai_error,
    raise_provider_error,
)
from server.llm.provider import ProviderError
from server.llm.tokens import counter_for

logger = logging.getLogger(__name__)

# API limits per request: inputs in the array, and tokens summed over all inputs.
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
# Five attempts per batch: ingest runs in the background, so it can afford to wait out throttling.
DEFAULT_EMBEDDING_RETRY = RetryPolicy(
    max_retries=4, base_delay_seconds=0.5, max_delay_seconds=8.0, max_wait_seconds=60.0
)


def plan_batches(
    texts: Sequence[str],
    *,
    max_inputs: int = MAX_INPUTS_PER_REQUEST,
    max_tokens: int = MAX_TOKENS_PER_REQUEST,
    count: Callable[[str], int],
) -> list[range]:
    """Split `texts` into consecutive index ranges within both per-request limits. A single text over the
    token limit still gets a batch of its own (the upstream then rejects it with a clear error)."""
    batches: list[range] = []
    start = 0
    tokens = 0
    for index, text in enumerate(texts):
        cost = count(text)
        if index > start and (index - start >= max_inputs or tokens + cost > max_tokens):
            batches.append(range(start, index))
            start, tokens = index, 0
        tokens += cost
    if start < len(texts):
        batches.append(range(start, len(texts)))
    return batches


class OpenAIEmbedder:
    """Batched `embeddings.create` calls, retried on 429/5xx, vectors returned in input order."""

    name = "openai-embeddings"

    def __init__(
        self,
        settings: Settings,
        *,
        client: AsyncOpenAI | None = None,
        dimensions: int | None = None,
        retry_policy: RetryPolicy = DEFAULT_EMBEDDING_RETRY,
        max_inputs_per_request: int = MAX_INPUTS_PER_REQUEST,
        max_tokens_per_request: int = MAX_TOKENS_PER_REQUEST,
    ) -> None:
        self._model = settings.openai_embedding_model
        dimension = dimensions if dimensions is not None else KNOWN_DIMENSIONS.get(self._model)
        if dimension is None:
            raise ValueError(f"unknown dimension for embedding model {self._model!r}: pass `dimensions`")
        self.model_id = f"openai:{self._model}"
        self.dimension = dimension
        # Sent only when asked for: older models reject the parameter.
        self._dimensions_param = dimensions
        self._timeout = settings.llm_timeout_seconds
        self._retry = retry_policy
        self._max_inputs = max_inputs_per_request
        self._max_tokens = max_tokens_per_request
        self._owns_client = client is None
        self._client = client if client is not None else build_openai_client(settings)
        self.prompt_tokens_used = 0

    async def embed(self, texts: Sequence[str], *, on_progress: ProgressCallback | None = None) -> list[list[float]]:
        # The API rejects empty strings; a lone space embeds as "nothing" just as well.
        items = [text if text else " " for text in texts]
        vectors: list[list[float]] = []
        for batch in plan_batches(
            items, max_inputs=self._max_inputs, max_tokens=self._max_tokens, count=counter_for(self._model).count
        ):
            vectors.extend(await self._embed_batch(items[batch.start : batch.stop]))
            await report_progress(on_progress, len(vectors), len(items))
        return vectors

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        attempt = 0
        while True:
            try:
                # No `encoding_format`: the SDK then asks for base64 and decodes it with numpy, which is
                # orders of magnitude faster than building a model object per float of a JSON array.
                response = await self._client.embeddings.create(
                    model=self._model,
                    input=batch,
                    dimensions=omit if self._dimensions_param is None else self._dimensions_param,
                    timeout=self._timeout,
                )
                break
            except openai.APIError as exc:
                error: ProviderError = map_openai_error(exc, self.name)
                delay = self._retry.delay_for(error, attempt, None)
                if delay is None:
                    raise_provider_error(error, exc)
            logger.warning(
                "embedding retry",
                extra={"provider": self.name, "reason": error.reason, "attempt": attempt + 1, "delay": delay},
            )
            await asyncio.sleep(delay)
            attempt += 1
        return self._vectors(response, len(batch))

    def _vectors(self, response: CreateEmbeddingResponse, expected: int) -> list[list[float]]:
        data = sorted(response.data, key=lambda item: item.index)
        if [item.index for item in data] != list(range(expected)):
            raise FailedPrecondition(
                f"{self.name}: upstream returned {len(data)} embeddings for {expected} inputs",
                reason="EMBEDDING_RESPONSE_MISMATCH",
            )
        matrix = np.asarray([item.embedding for item in data], dtype=np.float64)
        if matrix.shape[1] != self.dimension:
            raise FailedPrecondition(
                f"{self.name}: upstream vectors have {matrix.shape[1]} dimensions, expected {self.dimension}",
                reason="EMBEDDING_DIMENSION_MISMATCH",
            )
        if response.usage is not None:
            self.prompt_tokens_used += response.usage.prompt_tokens
        # OpenAI's vectors are already unit length; compatible servers' are not always.
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        norms[norms == 0.0] = 1.0
        return cast(list[list[float]], (matrix / norms).tolist())
