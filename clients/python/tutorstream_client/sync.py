"""A blocking facade over AsyncTutorstreamClient for scripts and notebooks.

Every coroutine method of the async client becomes a blocking method of the same name and arguments; every
streaming method becomes a plain iterator. The async client runs on a private event loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from tutorstream_client.client import DEFAULT_TARGET, AsyncTutorstreamClient

T = TypeVar("T")


class TutorstreamClient:
    """`with TutorstreamClient(target, token) as client: client.get_preferences()`."""

    def __init__(self, target: str = DEFAULT_TARGET, token: str | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tutorstream-client", daemon=True)
        self._thread.start()

        async def build() -> AsyncTutorstreamClient:
            return AsyncTutorstreamClient(target, token, **options)

        self._client = self._run(build())
        self._closed = False

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _iterate(self, stream: AsyncIterator[T]) -> Iterator[T]:
        async def step() -> T:
            return await stream.__anext__()

        try:
            while True:
                try:
                    yield self._run(step())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                self._run(aclose())

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(self._client, name)
        if inspect.isasyncgenfunction(attribute):

            @functools.wraps(attribute)
            def iterate(*args: Any, **kwargs: Any) -> Iterator[Any]:
                return self._iterate(attribute(*args, **kwargs))

            return iterate
        if inspect.iscoroutinefunction(attribute):

            @functools.wraps(attribute)
            def call(*args: Any, **kwargs: Any) -> Any:
                return self._run(attribute(*args, **kwargs))

            return call
        raise AttributeError(name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> TutorstreamClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
