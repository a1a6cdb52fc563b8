"""Shared test harness: real embedded PostgreSQL, real Redis, a real OpenAI-compatible HTTP server and
real grpc.aio servers on port 0, with authenticated stubs.

pytest-grpc 0.8.0 builds `grpc.server(ThreadPoolExecutor)` and so only serves sync servicers; the server
under test here is grpc.aio, so these fixtures are written for it directly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server.app import TutorstreamServer
from server.config import Settings
from server.core.embedded_pg import EmbeddedPostgres
from server.embeddings.base import Embedder
from server.embeddings.local import LocalEmbedder
from server.seed import seed_demo_course
from tests.support.clients import Client, connect, token_for
from tests.support.fake_openai import FakeOpenAI
from tests.support.postgres import (
    create_fresh_database,
    create_migrated_database,
    database_name,
    start_embedded_for_tests,
)
from tests.support.redis_server import RedisServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TEST_JWT_SECRET = "test-secret-" + "x" * 40

# Short job-queue intervals so ingest jobs, stalls and progress show up within a second or two.
FAST_JOBS: dict[str, Any] = {
    "job_poll_seconds": 0.2,
    "job_heartbeat_seconds": 0.5,
    "job_sweep_seconds": 0.5,
    "job_shutdown_grace_seconds": 1.0,
    "ingest_watch_poll_seconds": 0.05,
}


@pytest.fixture(scope="session")
async def local_embedder() -> LocalEmbedder:
    """The real local MiniLM model, loaded once for the whole session (loading takes seconds)."""
    embedder = LocalEmbedder()
    await embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def embedded_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    embedded = start_embedded_for_tests(tmp_path_factory.mktemp("postgres"))
    yield embedded
    embedded.stop()


@pytest.fixture(scope="session")
def template_database(embedded_pg: EmbeddedPostgres) -> str:
    """A database with every migration applied, cloned by `fresh_database_url`."""
    url = create_migrated_database(embedded_pg.admin_url, "tmpl")
    return database_name(url)


@pytest.fixture
def fresh_database_url(embedded_pg: EmbeddedPostgres, template_database: str) -> str:
    return create_fresh_database(embedded_pg.admin_url, "t", template=template_database)


@pytest.fixture(scope="session")
async def seeded_demo_template(
    embedded_pg: EmbeddedPostgres,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    local_embedder: LocalEmbedder,
) -> str:
    """Name of a database holding the demo course as `seed_demo_course` ingests it (service role, the real
    jobs, the local MiniLM model), seeded once per session. Clone it (`template=`), never use it."""
    url = create_fresh_database(embedded_pg.admin_url, "seeded", template=template_database)
    running = await launch(tmp_path_factory.mktemp("seed-demo"), url, embedder=local_embedder, **FAST_JOBS)
    try:
        jobs = await seed_demo_course(running.server.runtime.transcripts, wait=True)
        assert [job.state for job in jobs] == ["succeeded"] * len(jobs), [job.error_message for job in jobs]
    finally:
        await running.close_clients()
        await running.server.stop(0)
    return database_name(url)


@pytest.fixture(scope="module")
def module_database_url(embedded_pg: EmbeddedPostgres, template_database: str) -> str:
    return create_fresh_database(embedded_pg.admin_url, "m", template=template_database)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> FakeOpenAI:
    fake_openai_server.reset()
    return fake_openai_server


def make_settings(tmp_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": tmp_dir,
        "database_url": database_url,
        "jwt_secret": TEST_JWT_SECRET,
        "migrate_on_start": False,
        "grace_seconds": 2.0,
        "shutdown_notice_seconds": 0.0,
        "openai_api_key": None,
        "redis_url": None,
        "seed_demo_on_start": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class RunningServer:
    def __init__(self, server: TutorstreamServer) -> None:
        self.server = server
        self.settings = server.settings
        self._clients: list[Client] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def client(
        self,
        user_id: str | None = None,
        role: str = "student",
        tier: str | None = None,
        courses: list[str] | None = None,
    ) -> Client:
        """A client with a token for `user_id`; `courses` is the token's `courses` claim (courses an
        instructor teaches)."""
        user_id = user_id or f"user-{uuid.uuid4().hex[:8]}"
        client = connect(self.target, token_for(self.settings, user_id, role, tier, courses), user_id)
        self._clients.append(client)
        return client

    def anonymous(self) -> Client:
        client = connect(self.target, None)
        self._clients.append(client)
        return client

    async def close_clients(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients.clear()


ServerFactory = Callable[..., Awaitable[RunningServer]]


async def launch(
    tmp_path: Path,
    database_url: str,
    *,
    embedder: Embedder | None = None,
    model: FakeOpenAI | None = None,
    **overrides: Any,
) -> RunningServer:
    """A started server: `model` makes the fake OpenAI server its LLM, `embedder` replaces the configured one."""
    if model is not None:
        overrides = {"openai_api_key": model.api_key, "openai_base_url": model.base_url, **overrides}
    running = RunningServer(TutorstreamServer(make_settings(tmp_path, database_url, **overrides), embedder=embedder))
    await running.server.start()
    return running


@pytest.fixture
async def start_server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[ServerFactory]:
    """Start servers (`launch`'s keywords and settings overrides); all are stopped at teardown. Without a
    `database_url` the server gets this test's fresh database."""
    started: list[RunningServer] = []

    async def factory(**overrides: Any) -> RunningServer:
        database_url = overrides.pop("database_url", None) or request.getfixturevalue("fresh_database_url")
        running = await launch(tmp_path, database_url, **overrides)
        started.append(running)
        return running

    yield factory
    for running in started:
        await running.close_clients()
        await running.server.stop(0)


@pytest.fixture
async def server(start_server: ServerFactory) -> RunningServer:
    return await start_server()
