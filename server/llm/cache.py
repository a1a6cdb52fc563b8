"""Response cache: an identical request (model, full prompt, parameters) within the TTL is answered again
without calling the model.

The key is a SHA-256 over a canonical JSON of the model, every message (role and content, after PII
redaction: exactly what would have been sent) and the sampling parameters. Entries live in Redis when the
process has a client (shared by every replica), otherwise in a bounded in-process LRU. The cache is an
optimisation: a Redis failure reads as a miss and a failed write is dropped, never failing the request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from server.core import metrics
from server.llm.provider import ChatMessage

logger = logging.getLogger(__name__)

KEY_PREFIX = "tutorstream:llm-cache:v1:"
DEFAULT_MAX_ENTRIES = 2048


class AsyncRedis(Protocol):
    """The two commands the cache needs, each returning an awaitable (as `redis.asyncio.Redis` does)."""

    def get(self, name: str) -> Any: ...

    def set(self, name: str, value: str, ex: int | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    text: str
    finish_reason: str
    model: str


def cache_key(model: str, messages: Sequence[ChatMessage], *, temperature: float | None, max_tokens: int | None) -> str:
    canonical = json.dumps(
        {
            "model": model,
            "messages": [[message.role, message.content] for message in messages],
            "temperature": temperature,
            "max_tokens": max_tokens,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    def __init__(
        self,
        ttl_seconds: int,
        *,
        redis: AsyncRedis | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._ttl = ttl_seconds
        self._redis = redis
        self._max_entries = max_entries
        self._local: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    @property
    def backend(self) -> str:
        return "redis" if self._redis is not None else "memory"

    async def get(self, key: str) -> CachedAnswer | None:
        if not self.enabled:
            return None
        answer = await self._lookup(key)
        metrics.count_cache_lookup("llm_response", answer is not None)
        return answer

    async def _lookup(self, key: str) -> CachedAnswer | None:
        if self._redis is not None:
            try:
                raw = await self._redis.get(KEY_PREFIX + key)
            except Exception as exc:
                logger.warning("response cache read failed: %s", type(exc).__name__)
                return None
            return _decode(raw)
        entry = self._local.get(key)
        if entry is None:
            return None
        expires_at, answer = entry
        if expires_at <= time.monotonic():
            del self._local[key]
            return None
        self._local.move_to_end(key)
        return answer

    async def put(self, key: str, answer: CachedAnswer) -> None:
        if not self.enabled:
            return
        if self._redis is not None:
            try:
                await self._redis.set(KEY_PREFIX + key, json.dumps(asdict(answer)), ex=self._ttl)
            except Exception as exc:
                logger.warning("response cache write failed: %s", type(exc).__name__)
            return
        self._local[key] = (time.monotonic() + self._ttl, answer)
        self._local.move_to_end(key)
        while len(self._local) > self._max_entries:
            self._local.popitem(last=False)


def _decode(raw: Any) -> CachedAnswer | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return CachedAnswer(text=str(data["text"]), finish_reason=str(data["finish_reason"]), model=str(data["model"]))
    except (ValueError, KeyError, TypeError):
        return None
