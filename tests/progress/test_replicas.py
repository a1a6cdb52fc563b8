"""Two server processes behind one Redis and one PostgreSQL: a browser's events may land on either replica
and its intervention stream on the other; both reach the one engine of the watch session. When the replica
holding a session dies, the other takes the session over."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.config import Settings
from server.core.db import Database
from server.progress.relay import OWNER_PREFIX, WatchRelay
from tests.conftest import TEST_JWT_SECRET
from tests.progress.conftest import new_watch_session, played_through, rewatch_script
from tests.support.clients import Client, connect, token_for
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

VIDEO = "replicated-lecture"
LISTENING = re.compile(r"tutorstream listening on [\d.]+:(\d+)")
OWNER_KEY = "tutorstream:watch:owner:"


class Replica:
    """`tutorstream-server serve` in its own process; its log goes to a file."""

    def __init__(self, name: str, workdir: Path, database_url: str, redis_url: str) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": TEST_JWT_SECRET,
            "DATA_DIR": str(workdir / name),
            "MIGRATE_ON_START": "false",
            "RUN_WORKERS_IN_PROCESS": "false",
            "EMBEDDING_PROVIDER": "local",
            "SHUTDOWN_NOTICE_SECONDS": "0",
            "GRACE_SECONDS": "1",
            "WATCH_FLUSH_INTERVAL_SECONDS": "0.2",
            "WATCH_FORWARD_TIMEOUT_SECONDS": "2",
        }
        environment.pop("OPENAI_API_KEY", None)
        executable = Path(sys.executable).parent / "tutorstream-server"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(executable), "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=workdir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.port = 0

    def wait_listening(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                return self.port
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log_path.read_text()}"
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start:\n{self.log_path.read_text()}")

    def client(self, user_id: str) -> Client:
        settings = Settings(_env_file=None, jwt_secret=TEST_JWT_SECRET)  # type: ignore[call-arg]
        return connect(f"127.0.0.1:{self.port}", token_for(settings, user_id), user_id)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str, redis_server: RedisServer
) -> Iterator[tuple[Replica, Replica]]:
    """Started once for the module (a start costs seconds); the failover test, which kills one, runs last."""
    workdir = tmp_path_factory.mktemp("replicas")
    first = Replica("replica-a", workdir, module_database_url, redis_server.url)
    second = Replica("replica-b", workdir, module_database_url, redis_server.url)
    try:
        first.wait_listening()
        second.wait_listening()
        yield first, second
    finally:
        first.stop()
        second.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def open_stream(client: Client, watch_session_id: str) -> tuple[asyncio.Task[list[pb.Intervention]], object]:
    call = client.agents.StreamInterventions(
        pb.StreamInterventionsRequest(watch_session_id=watch_session_id, video_id=VIDEO)
    )

    async def first_intervention() -> list[pb.Intervention]:
        received = []
        async for response in call:
            received.append(response.intervention)
            return received
        return received

    return asyncio.create_task(first_intervention()), call


async def publish(client: Client, watch_session_id: str, events: list[pb.VideoEvent]) -> int:
    accepted = 0
    for start in range(0, len(events), 6):
        reply = await client.agents.PublishVideoEvents(
            pb.PublishVideoEventsRequest(
                watch_session_id=watch_session_id,
                video_id=VIDEO,
                duration_seconds=1800.0,
                events=events[start : start + 6],
            )
        )
        assert not reply.rejections
        accepted += reply.accepted_count
    return accepted


async def stored_events(database_url: str, watch_session_id: str) -> int:
    database = Database(database_url, pool_size=1)
    try:
        async with database.session() as session:
            statement = text("SELECT count(*) FROM video_events WHERE watch_session_id = :id")
            return int((await session.execute(statement, {"id": watch_session_id})).scalar_one())
    finally:
        await database.dispose()


async def test_events_on_one_replica_reach_the_stream_on_the_other(
    replicas: tuple[Replica, Replica], redis_client: Redis, module_database_url: str
) -> None:
    first, second = replicas
    user = "replicated-student"
    on_first, on_second = first.client(user), second.client(user)
    watch_session_id = new_watch_session()
    try:
        stream, call = await open_stream(on_second, watch_session_id)

        async def claimed() -> bool:
            return bool(await redis_client.exists(OWNER_KEY + watch_session_id))

        assert await wait_until(claimed)
        script = rewatch_script()
        assert await publish(on_first, watch_session_id, script) == len(script)
        async with asyncio.timeout(20):
            (hint,) = await stream
        assert (hint.type, hint.reason) == (common_pb2.INTERVENTION_TYPE_HINT, "REWATCH")
        assert (hint.range.start_seconds, hint.range.end_seconds) == (95.0, 135.0)

        async def all_stored() -> bool:
            return await stored_events(module_database_url, watch_session_id) == len(script)

        assert await wait_until(all_stored)
        call.cancel()  # type: ignore[attr-defined]
    finally:
        await on_first.close()
        await on_second.close()


async def test_a_surviving_replica_takes_over_the_session_of_a_dead_one(
    replicas: tuple[Replica, Replica], redis_client: Redis
) -> None:
    first, second = replicas
    user = "failover-student"
    on_first, on_second = first.client(user), second.client(user)
    watch_session_id = new_watch_session()
    try:
        # The second replica owns the session (its stream came first) and has seen the first events.
        _, call = await open_stream(on_second, watch_session_id)

        async def claimed() -> bool:
            return bool(await redis_client.exists(OWNER_KEY + watch_session_id))

        assert await wait_until(claimed)
        opening = played_through(0.0, 60.0, 0.0)
        assert await publish(on_first, watch_session_id, opening) == len(opening)
        owner = (await redis_client.get(OWNER_KEY + watch_session_id)).decode()

        second.stop(signal.SIGKILL)
        call.cancel()  # type: ignore[attr-defined]
        stream, call = await open_stream(on_first, watch_session_id)
        # Playing on to 2:10, then the re-watch (the new owner starts from a fresh engine state).
        script = played_through(60.0, 70.0, 60.0) + rewatch_script()[14:]
        assert await publish(on_first, watch_session_id, script[:8]) == 8
        assert (await redis_client.get(OWNER_KEY + watch_session_id)).decode() != owner
        assert await publish(on_first, watch_session_id, script[8:]) == len(script) - 8
        async with asyncio.timeout(20):
            (hint,) = await stream
        assert (hint.type, hint.reason) == (common_pb2.INTERVENTION_TYPE_HINT, "REWATCH")
        call.cancel()  # type: ignore[attr-defined]
    finally:
        await on_first.close()
        await on_second.close()


async def test_a_lease_wiped_by_a_redis_restart_is_claimed_again(redis_client: Redis) -> None:
    relay = WatchRelay(redis_client, redis_client, lease_seconds=5, forward_timeout=1, replica_id="keeper")
    mine, theirs, wiped = new_watch_session(), new_watch_session(), new_watch_session()
    for watch_session_id in (mine, theirs, wiped):
        assert await relay.claim(watch_session_id) == "keeper"
    await redis_client.set(OWNER_PREFIX + theirs, "another-replica")
    await redis_client.delete(OWNER_PREFIX + wiped)  # what a restart without persistence leaves
    assert await relay.renew([mine, theirs, wiped]) == [theirs]
    assert await redis_client.get(OWNER_PREFIX + wiped) == b"keeper"
    assert 0 < await redis_client.pttl(OWNER_PREFIX + wiped) <= 5000
