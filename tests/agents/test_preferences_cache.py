"""Preferences are cached per replica and never served stale: an update or a deletion evicts them at once,
on every replica through Redis; without a live subscription a replica reads PostgreSQL every time (real
PostgreSQL, real Redis; a second PreferencesService on the same database is a second replica)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from server.agents.preferences import PreferencesService
from server.core.auth import Principal, Role, Tier
from server.core.db import Database
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

ADA = Principal("ada", Role.STUDENT, Tier.FREE)


@pytest.fixture
async def database(fresh_database_url: str) -> AsyncIterator[Database]:
    db = Database(fresh_database_url, pool_size=5, max_overflow=5)
    yield db
    await db.dispose()


async def behind_its_back(database: Database, personality: str) -> None:
    """A change that does not go through any PreferencesService (what a stale cache would hide)."""
    async with database.transaction() as session:
        await session.execute(
            text("UPDATE preferences SET personality = :value WHERE user_id = 'ada'"), {"value": personality}
        )


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> bool:
    return await wait_until(check, within)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_cached_read_lasts_its_ttl_and_an_update_is_seen_at_once(database: Database) -> None:
    clock = Clock()
    preferences = PreferencesService(database, cache_seconds=30.0, clock=clock)
    await preferences.update(ADA, "ada", {"personality": "peer"})
    assert (await preferences.get("ada")).personality == "peer"

    await behind_its_back(database, "professional")
    assert (await preferences.get("ada")).personality == "peer", "served from the cache"
    clock.now += 31
    assert (await preferences.get("ada")).personality == "professional", "re-read once the entry expired"

    await preferences.update(ADA, "ada", {"no_spoilers": True})
    assert (await preferences.get("ada")).no_spoilers is True


async def test_without_a_ttl_every_read_goes_to_the_database(database: Database) -> None:
    preferences = PreferencesService(database, cache_seconds=0.0)
    await preferences.update(ADA, "ada", {"personality": "peer"})
    await preferences.get("ada")
    await behind_its_back(database, "professional")
    assert (await preferences.get("ada")).personality == "professional"


async def test_a_change_on_one_replica_evicts_it_on_the_others(database: Database, redis_server: RedisServer) -> None:
    replicas = [
        PreferencesService(
            database,
            cache_seconds=300.0,
            redis=Redis.from_url(redis_server.url),
            subscriber=Redis.from_url(redis_server.url),
        )
        for _ in range(2)
    ]
    for replica in replicas:
        await replica.start()
    first, second = replicas
    try:
        assert await eventually(lambda: _true(first.caching and second.caching))
        assert (await second.get("ada")).no_spoilers is False  # cached on the second replica

        await first.update(ADA, "ada", {"no_spoilers": True})

        async def second_sees_it() -> bool:
            return (await second.get("ada")).no_spoilers is True

        assert await eventually(second_sees_it)
        await first.forget("ada")  # as DeleteUserData does after deleting the row
        await behind_its_back(database, "professional")
        assert (await first.get("ada")).personality == "professional"
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_replica_that_lost_its_subscription_reads_the_database(database: Database) -> None:
    with RedisServer() as redis_server:
        replica = PreferencesService(
            database,
            cache_seconds=300.0,
            redis=Redis.from_url(redis_server.url),
            subscriber=Redis.from_url(redis_server.url),
        )
        await replica.start()
        try:
            assert await eventually(lambda: _true(replica.caching))
            await replica.update(ADA, "ada", {"personality": "peer"})
            await replica.get("ada")

            redis_server.stop()
            assert await eventually(lambda: _true(not replica.caching))
            await behind_its_back(database, "professional")
            assert (await replica.get("ada")).personality == "professional"

            redis_server.start()
            assert await eventually(lambda: _true(replica.caching), within=15.0)
            assert (await replica.get("ada")).personality == "professional"
        finally:
            await replica.close()


async def _true(value: bool) -> bool:
    return value
