"""Fixtures for the edge: a server per module, Envoy in front of it, the built demo behind Envoy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.app import TutorstreamServer
from server.core.embedded_pg import EmbeddedPostgres
from server.embeddings.local import LocalEmbedder
from tests.conftest import FAST_JOBS as SHARED_FAST_JOBS
from tests.conftest import RunningServer, make_settings
from tests.edge.support import EnvoyProcess, StaticWebServer, build_web, bundle_probe
from tests.support.clients import token_for
from tests.support.postgres import create_fresh_database


@pytest.fixture(scope="session")
def web_build() -> None:
    build_web()


@pytest.fixture(scope="session")
def probe(web_build: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle_probe(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="session")
def static_web(web_build: None) -> Iterator[StaticWebServer]:
    web = StaticWebServer()
    web.start()
    yield web
    web.stop()


FAST_JOBS: dict[str, Any] = {**SHARED_FAST_JOBS, "job_poll_seconds": 0.5}


@pytest.fixture(scope="session")
def edge_embedder(local_embedder: LocalEmbedder) -> LocalEmbedder:
    return local_embedder


async def start_module_server(
    tmp_dir: Path, database_url: str, embedder: LocalEmbedder, **overrides: Any
) -> RunningServer:
    settings = make_settings(tmp_dir, database_url, **{**FAST_JOBS, **overrides})
    running = RunningServer(TutorstreamServer(settings, embedder=embedder))
    await running.server.start()
    return running


async def stop_module_server(running: RunningServer) -> None:
    await running.close_clients()
    await running.server.stop(0)


@pytest.fixture(scope="session")
def demo_database_url(embedded_pg: EmbeddedPostgres, seeded_demo_template: str) -> str:
    """One copy of the seeded demo course, shared by the edge tests."""
    return create_fresh_database(embedded_pg.admin_url, "edge", template=seeded_demo_template)


@pytest.fixture(scope="session")
async def demo_server(
    demo_database_url: str, tmp_path_factory: pytest.TempPathFactory, edge_embedder: LocalEmbedder
) -> AsyncIterator[RunningServer]:
    """A server on that database; tests use their own users."""
    running = await start_module_server(tmp_path_factory.mktemp("demo-server"), demo_database_url, edge_embedder)
    try:
        yield running
    finally:
        await stop_module_server(running)


@dataclass
class Edge:
    envoy: EnvoyProcess
    server: RunningServer

    @property
    def base_url(self) -> str:
        return self.envoy.base_url

    def token(self, user_id: str, role: str = "student", tier: str | None = None) -> str:
        return token_for(self.server.settings, user_id, role, tier)


@pytest.fixture(scope="module")
async def edge(
    demo_server: RunningServer, static_web: StaticWebServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Edge]:
    envoy = EnvoyProcess(tmp_path_factory.mktemp("envoy"), grpc_port=demo_server.server.port, web_port=static_web.port)
    envoy.start()
    try:
        await envoy.wait_ready()
        yield Edge(envoy=envoy, server=demo_server)
    finally:
        envoy.stop()
