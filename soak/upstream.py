"""The soak's OpenAI-compatible upstream: the test server with a seeded mix of faults on every request.

Chat streams: a share answer 429 (with a short Retry-After, so the server's retries get through most of the
time), a share are cut after a few tokens (the connection is dropped mid-answer), the rest stream an answer at
a steady pace. Structured (non-streaming) agent calls: the same share of 429s; otherwise a plain-text answer,
which the agents treat as malformed and finish with their offline generators. Embeddings: a smaller share of
429s. Every decision is counted.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

from tests.support.fake_openai import Behavior, FakeOpenAI

ANSWER = (
    "flexbox lays out items along a main axis while justify-content spreads them and align-items "
    "places them on the cross axis so a centered element needs both properties on its container"
)
ANSWER_WORDS = ANSWER.split()


class FaultyUpstream:
    """Owns a FakeOpenAI whose choosers draw from a seeded random mix; thread-safe counters of what it did."""

    def __init__(
        self,
        seed: int,
        *,
        chat_429_share: float = 0.12,
        chat_drop_share: float = 0.12,
        embeddings_429_share: float = 0.04,
        tokens_per_second: float = 120.0,
        retry_after_seconds: float = 0.05,
    ) -> None:
        self.fake = FakeOpenAI()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._chat_429_share = chat_429_share
        self._chat_drop_share = chat_drop_share
        self._embeddings_429_share = embeddings_429_share
        self._tokens_per_second = tokens_per_second
        self._retry_after = retry_after_seconds
        self.fake.chat_chooser = self._choose_chat
        self.fake.embeddings_chooser = self._choose_embeddings

    def start(self) -> FaultyUpstream:
        self.fake.start()
        return self

    def stop(self) -> None:
        self.fake.stop()

    @property
    def base_url(self) -> str:
        return self.fake.base_url

    @property
    def api_key(self) -> str:
        return self.fake.api_key

    def counts(self) -> dict[str, int]:
        """What the upstream did: requests by kind, scripted 429s, drops, and streams the server closed early."""
        with self._lock:
            counts = dict(self._counts)
        counts["chat streams dropped"] = self.fake.dropped_streams
        counts["chat streams closed by tutorstream"] = self.fake.stream_disconnects
        return counts

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _draw(self) -> tuple[float, int, int]:
        with self._lock:
            return self._random.random(), self._random.randint(1, 8), self._random.randint(20, 45)

    def _rate_limited(self) -> Behavior:
        return Behavior(status=429, retry_after=self._retry_after, error_message="rate limit reached (soak)")

    def _choose_chat(self, body: dict[str, Any]) -> Behavior:
        roll, cut_after, words = self._draw()
        streaming = bool(body.get("stream"))
        kind = "chat stream" if streaming else "structured call"
        self._count(f"{kind} requests")
        if roll < self._chat_429_share:
            self._count(f"{kind} 429s")
            return self._rate_limited()
        if not streaming:
            return Behavior()
        content = " ".join(ANSWER_WORDS[i % len(ANSWER_WORDS)] for i in range(words)) + "."
        if roll < self._chat_429_share + self._chat_drop_share:
            self._count("chat stream drops scripted")
            return Behavior(content=content, tokens_per_second=self._tokens_per_second, drop_after_tokens=cut_after)
        return Behavior(content=content, tokens_per_second=self._tokens_per_second)

    def _choose_embeddings(self, body: dict[str, Any]) -> Behavior:
        roll, _, _ = self._draw()
        self._count("embedding requests")
        if roll < self._embeddings_429_share:
            self._count("embedding 429s")
            return self._rate_limited()
        return Behavior()
