"""The embedder protocol shared by the local model and the OpenAI embeddings API."""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

# Called with (texts embedded so far, total texts) after each batch; may be sync or async.
ProgressCallback = Callable[[int, int], Awaitable[None] | None]


class Embedder(Protocol):
    """Turns texts into unit-length vectors, in input order.

    `model_id` names the model and its origin ("local:all-MiniLM-L6-v2", "openai:text-embedding-3-small");
    vectors from different model ids are not comparable, so it is stored next to every vector.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    async def embed(
        self, texts: Sequence[str], *, on_progress: ProgressCallback | None = None
    ) -> list[list[float]]: ...

    async def aclose(self) -> None: ...


async def report_progress(on_progress: ProgressCallback | None, done: int, total: int) -> None:
    if on_progress is None:
        return
    outcome = on_progress(done, total)
    if inspect.isawaitable(outcome):
        await outcome


def normalize(vector: Sequence[float]) -> list[float]:
    """Scale to unit length (a zero vector stays zero)."""
    norm = math.sqrt(math.fsum(value * value for value in vector))
    if norm == 0.0:
        return [float(value) for value in vector]
    return [float(value) / norm for value in vector]
