"""Two server processes on one Redis and one PostgreSQL enforce one global limit."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import TEST_JWT_SECRET, ServerFactory
from tests.limits.test_rate_limits import admitted, hint_code
from tests.support.clients import Client, connect, token_for
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

SERVER_COMMAND = Path(sys.executable).parent / "tutorstream-server"
OVERRIDES = {"rate_period_seconds": 600.0, "tier_limit_overrides": {"free": {"hint": 10}}}


class ServerProcess:
    """`tutorstream-server serve` in a subprocess this test owns."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self._env = env
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, cwd: Path) -> None:
        with self._log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(SERVER_COMMAND),
                "serve",
                "--port",
                str(self.port),
                env=self._env,
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        await self._wait_until_serving()

    async def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + 90
        async with aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self._process is not None
                if self._process.returncode is not None:
                    raise AssertionError(f"server process exited:\n{self.log()}")
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except aio.AioRpcError as error:
                    if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        raise
                if time.monotonic() > deadline:
                    raise AssertionError(f"server process did not become ready:\n{self.log()}")
                await asyncio.sleep(0.2)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")[-4000:]

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture
async def replica(tmp_path: Path, fresh_database_url: str, redis_server: RedisServer) -> AsyncIterator[ServerProcess]:
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "DATABASE_URL": fresh_database_url,
        "REDIS_URL": redis_server.url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DATA_DIR": str(tmp_path / "replica-data"),
        "MIGRATE_ON_START": "false",
        "OPENAI_API_KEY": "",
        "SEED_DEMO_ON_START": "false",
        "SHUTDOWN_NOTICE_SECONDS": "0",
        "GRACE_SECONDS": "1",
        "RATE_PERIOD_SECONDS": str(OVERRIDES["rate_period_seconds"]),
        "TIER_LIMIT_OVERRIDES": json.dumps(OVERRIDES["tier_limit_overrides"]),
    }
    process = ServerProcess(free_port(), env, tmp_path / "replica.log")
    await process.start(cwd=tmp_path)
    yield process
    await process.stop()


async def test_two_server_processes_enforce_one_global_limit(
    start_server: ServerFactory, redis_server: RedisServer, replica: ServerProcess
) -> None:
    local = await start_server(redis_url=redis_server.url, **OVERRIDES)
    here = local.client("gina")
    there: Client = connect(replica.target, token_for(local.settings, "gina"), "gina")
    try:
        codes = await asyncio.gather(*(hint_code(here if i % 2 else there) for i in range(60)))
        assert admitted(codes) == 10, replica.log()
        assert await hint_code(there) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await hint_code(here) == grpc.StatusCode.RESOURCE_EXHAUSTED
        other = connect(replica.target, token_for(local.settings, "hank"), "hank")
        try:
            assert await hint_code(other) != grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            await other.close()
    finally:
        await there.close()
