"""Per-user stream slots through the gate itself (real Redis): shared by replicas, held for the stream's
lifetime, renewed while it lives, expiring when its replica dies."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from server.core.auth import Principal, Role, Tier
from server.core.errors import QuotaExceeded
from server.limits.gate import LimitsGate, lease_key
from server.limits.policy import LimitPolicy, StreamKind
from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

STREAM_CHAT = "/tutorstream.v1.ChatService/StreamChat"
WATCH_VIDEO = "/tutorstream.v1.AgentService/WatchVideo"
STREAM_INTERVENTIONS = "/tutorstream.v1.AgentService/StreamInterventions"

GateFactory = Callable[..., LimitsGate]


@pytest.fixture
async def gates(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[GateFactory]:
    """Gates on one Redis, each standing for one replica (its own client and lease renewer)."""
    policy = LimitPolicy(make_settings(tmp_path, "postgresql://unused/unused", max_chat_streams_per_user=3))
    made: list[tuple[LimitsGate, Redis | None]] = []

    def factory(*, shared: bool = True, lease_seconds: float = 30.0) -> LimitsGate:
        client = Redis.from_url(redis_server.url) if shared else None
        gate = LimitsGate(policy, redis=client, lease_seconds=lease_seconds)
        made.append((gate, client))
        return gate

    yield factory
    for gate, client in made:
        await gate.close()
        if client is not None:
            await client.aclose()


def someone() -> Principal:
    return Principal(f"user-{uuid.uuid4().hex[:8]}", Role.STUDENT, Tier.FREE)


class Streams:
    """Streams held open until `close_all`, like long-lived RPCs."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()

    async def open(self, gate: LimitsGate, principal: Principal, method: str) -> None:
        await self._stack.enter_async_context(gate.admit(principal, method))

    async def close_all(self) -> None:
        await self._stack.aclose()


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "in-process"])
async def test_chat_streams_are_capped_per_user(gates: GateFactory, shared: bool) -> None:
    gate, ada, streams = gates(shared=shared), someone(), Streams()
    try:
        for _ in range(3):
            await streams.open(gate, ada, STREAM_CHAT)
        with pytest.raises(QuotaExceeded) as refused:
            await streams.open(gate, ada, STREAM_CHAT)
        await streams.open(gate, someone(), STREAM_CHAT)  # another user has their own slots
        await streams.open(gate, ada, WATCH_VIDEO)  # watch slots are separate
        await streams.open(gate, ada, STREAM_INTERVENTIONS)
        with pytest.raises(QuotaExceeded):
            await streams.open(gate, ada, WATCH_VIDEO)
    finally:
        await streams.close_all()

    error = refused.value
    assert error.reason == "TOO_MANY_STREAMS"
    assert error.retry_after_seconds == 1.0
    assert [v.subject for v in error.violations] == [f"users/{ada.user_id}/streams/chat"]
    async with gate.admit(ada, STREAM_CHAT):  # closing the streams gave the slots back
        pass


async def test_replicas_share_stream_slots(gates: GateFactory) -> None:
    first, second, ada = gates(), gates(), someone()
    streams = Streams()
    try:
        await streams.open(first, ada, STREAM_CHAT)
        await streams.open(second, ada, STREAM_CHAT)
        await streams.open(first, ada, STREAM_CHAT)
        for gate in (first, second):
            with pytest.raises(QuotaExceeded):
                await streams.open(gate, ada, STREAM_CHAT)
    finally:
        await streams.close_all()
    async with second.admit(ada, STREAM_CHAT):
        pass


async def test_a_slot_is_released_when_the_stream_fails(gates: GateFactory) -> None:
    gate, ada = gates(), someone()
    for _ in range(5):
        with pytest.raises(ConnectionResetError):
            async with gate.admit(ada, STREAM_CHAT):
                raise ConnectionResetError("client went away")
    held = Streams()
    try:
        for _ in range(3):
            await held.open(gate, ada, STREAM_CHAT)
    finally:
        await held.close_all()


async def test_a_cancelled_stream_gives_its_slot_back(gates: GateFactory) -> None:
    gate, ada = gates(), someone()
    opened = [asyncio.Event() for _ in range(3)]

    async def stream(event: asyncio.Event) -> None:
        async with gate.admit(ada, STREAM_CHAT):
            event.set()
            await asyncio.Event().wait()

    tasks = [asyncio.create_task(stream(event)) for event in opened]
    await asyncio.gather(*(event.wait() for event in opened))
    with pytest.raises(QuotaExceeded):
        async with gate.admit(ada, STREAM_CHAT):
            pass
    tasks[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]

    async with gate.admit(ada, STREAM_CHAT):
        pass
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks[1:], return_exceptions=True)


async def redis_micros(client: Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1_000_000 + int(micros)


async def test_live_streams_keep_their_slots_past_the_lease_time(gates: GateFactory, redis_server: RedisServer) -> None:
    """Checked on Redis's clock, not by sleeping a multiple of the lease: once the leases first granted would
    have expired, they are still there — renewed — and still refuse a fourth stream."""
    holder, other, ada = gates(lease_seconds=3.0), gates(lease_seconds=3.0), someone()
    leases = lease_key(ada.user_id, StreamKind.CHAT)
    streams = Streams()
    async with Redis.from_url(redis_server.url) as client:
        try:
            for _ in range(3):
                await streams.open(holder, ada, STREAM_CHAT)
            granted = max(score for _, score in await client.zrange(leases, 0, -1, withscores=True))

            async def first_grants_run_out() -> bool:
                return await redis_micros(client) > granted

            assert await wait_until(first_grants_run_out)
            expiries = [score for _, score in await client.zrange(leases, 0, -1, withscores=True)]
            assert len(expiries) == 3 and min(expiries) > granted  # renewed before they ran out
            with pytest.raises(QuotaExceeded):
                await streams.open(other, ada, STREAM_CHAT)
        finally:
            await streams.close_all()


async def test_the_slots_of_a_dead_replica_expire(gates: GateFactory) -> None:
    dead, survivor, ada = gates(lease_seconds=0.5), gates(), someone()
    streams = Streams()
    for _ in range(3):
        await streams.open(dead, ada, STREAM_CHAT)
    await dead.close()  # the replica stops renewing, as if its process had been killed
    with pytest.raises(QuotaExceeded):
        await streams.open(survivor, ada, STREAM_CHAT)

    deadline = time.monotonic() + 15
    while True:
        try:
            async with survivor.admit(ada, STREAM_CHAT):
                break
        except QuotaExceeded:
            assert time.monotonic() < deadline, "the dead replica's leases never expired"
            await asyncio.sleep(0.1)
    await streams.close_all()
