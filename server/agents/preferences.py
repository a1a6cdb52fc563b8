"""Tutor preferences: defaults for a new user, partial updates, and a per-replica cache.

Every chat turn, hint and watch session reads the student's preferences, and GetPreferences is the most
frequent simple read there is; a replica keeps them in memory for `preferences_cache_seconds` (at most
`CACHE_USERS` users, least recently used out first). A change must never be served stale — turning on no
spoilers and asking right away must not quote what lies ahead — so an update or a deletion evicts the user
on this replica at once and, with Redis, on every replica (a message on `PREFERENCES_CHANNEL`). A replica
whose subscription is down may miss such a message: until it is subscribed again it reads from the database
and keeps nothing, and it starts over with an empty cache. A read that overlapped an eviction is not cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.agents import repository as repo
from server.agents.models import Preference
from server.core.auth import Principal
from server.core.db import Database
from server.core.tasks import stop_task
from server.core.users import ensure_user, ensure_user_id

log = logging.getLogger(__name__)

PREFERENCES_CHANNEL = "tutorstream:preferences:changed"
CACHE_USERS = 10_000
RESUBSCRIBE_SECONDS = 1.0

PERSONALITIES = ("friendly", "professional", "peer")
RESPONSE_LENGTHS = ("short", "medium", "detailed")
QUIZ_FREQUENCIES = ("off", "low", "medium", "high")
UPDATABLE_FIELDS = (
    "personality",
    "response_length",
    "auto_hints_enabled",
    "quiz_frequency",
    "reflection_prompts_enabled",
    "no_spoilers",
)


@dataclass(frozen=True)
class PreferenceValues:
    user_id: str
    personality: str = "friendly"
    response_length: str = "medium"
    auto_hints_enabled: bool = True
    quiz_frequency: str = "medium"
    reflection_prompts_enabled: bool = True
    no_spoilers: bool = False
    update_time: datetime | None = None


def _values(row: Preference) -> PreferenceValues:
    return PreferenceValues(
        user_id=row.user_id,
        personality=row.personality,
        response_length=row.response_length,
        auto_hints_enabled=row.auto_hints_enabled,
        quiz_frequency=row.quiz_frequency,
        reflection_prompts_enabled=row.reflection_prompts_enabled,
        no_spoilers=row.no_spoilers,
        update_time=row.update_time,
    )


class PreferencesService:
    """One per process (every reader shares its cache). `redis` publishes evictions, `subscriber` (a
    connection of its own) receives them; without Redis the cache is this process's alone."""

    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float = 0.0,
        redis: Redis | None = None,
        subscriber: Redis | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl = cache_seconds
        self._redis = redis
        self._subscriber = subscriber
        self._clock = clock
        self._cache: OrderedDict[str, tuple[PreferenceValues, float]] = OrderedDict()
        # Bumped by every eviction: a database read that overlapped one is not cached.
        self._generation = 0
        # With Redis, whether evictions from other replicas are being received.
        self._listening = subscriber is None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._subscriber is not None and self._ttl > 0:
            self._reader = asyncio.create_task(self._listen(), name="preferences-evictions")

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        await stop_task(reader)
        if self._subscriber is not None:
            await self._subscriber.aclose()

    @property
    def caching(self) -> bool:
        return self._ttl > 0 and self._listening

    async def get(self, user_id: str) -> PreferenceValues:
        """Stored preferences, or the defaults for a user who never changed them (nothing is written)."""
        if self.caching:
            cached = self._cache.get(user_id)
            if cached is not None and cached[1] > self._clock():
                self._cache.move_to_end(user_id)
                return cached[0]
        generation = self._generation
        async with self._db.reader() as session:
            row = await repo.get_preference(session, user_id)
            values = _values(row) if row is not None else PreferenceValues(user_id=user_id)
        if self.caching and generation == self._generation:
            self._cache[user_id] = (values, self._clock() + self._ttl)
            self._cache.move_to_end(user_id)
            while len(self._cache) > CACHE_USERS:
                self._cache.popitem(last=False)
        return values

    async def forget(self, user_id: str) -> None:
        """After `user_id`'s preferences changed or were deleted: evicted here and on every replica."""
        self._evict(user_id)
        if self._redis is not None and self._ttl > 0:
            try:
                await self._redis.publish(PREFERENCES_CHANNEL, user_id)
            except (RedisError, OSError) as error:
                log.warning("preferences: could not tell other replicas of a change (%s)", type(error).__name__)

    def _evict(self, user_id: str) -> None:
        self._generation += 1
        self._cache.pop(user_id, None)

    def _clear(self) -> None:
        self._generation += 1
        self._cache.clear()

    async def _listen(self) -> None:
        assert self._subscriber is not None
        pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        try:
            while True:
                try:
                    if not self._listening:
                        await pubsub.subscribe(PREFERENCES_CHANNEL)
                        self._clear()
                        self._listening = True
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                except (RedisError, OSError) as error:
                    if self._listening:
                        log.warning("preferences: eviction channel lost (%s); not caching", type(error).__name__)
                    self._listening = False
                    self._clear()
                    await asyncio.sleep(RESUBSCRIBE_SECONDS)
                    continue
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self._evict(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            self._listening = False
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()

    async def update(self, principal: Principal, user_id: str, changes: dict[str, Any]) -> PreferenceValues:
        """Apply `changes` (already validated field -> value) atomically; other fields keep their values."""
        unknown = set(changes) - set(UPDATABLE_FIELDS)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        async with self._db.transaction() as session:
            if user_id == principal.user_id:
                await ensure_user(session, principal)
            else:
                await ensure_user_id(session, user_id)
            values = _values(await repo.save_preference(session, user_id, changes))
        await self.forget(user_id)
        return values
