"""Waiting for an outcome instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 15.0) -> bool:
    """Polls `predicate` until it holds (True) or `within` seconds pass (False); callers assert the result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True
