"""Fixtures for the transcripts service, search and job tests: one local MiniLM model per test session
(loading it takes seconds) shared by every server these tests start, and fast job-queue timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tutorstream.v1 import transcript_service_pb2 as pb

from server.app import TutorstreamServer
from server.core.embedded_pg import EmbeddedPostgres
from server.embeddings.base import Embedder
from server.embeddings.local import LocalEmbedder
from tests.conftest import FAST_JOBS as SHARED_FAST_JOBS
from tests.conftest import RunningServer, make_settings
from tests.support.postgres import create_fresh_database

FAST_JOBS: dict[str, Any] = {**SHARED_FAST_JOBS, "job_poll_seconds": 0.5, "job_stalled_seconds": 3.0}

TranscriptServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def transcript_server_factory(
    tmp_path: Path, fresh_database_url: str, local_embedder: LocalEmbedder
) -> AsyncIterator[TranscriptServerFactory]:
    """Start servers on the test's database with fast job timings. `embedder`: "local" shares the session's
    MiniLM model, "configured" lets the server build the one its settings name (e.g. OpenAI against the fake
    server), or pass an embedder."""
    started: list[RunningServer] = []

    async def factory(*, embedder: Embedder | str = "local", **overrides: Any) -> RunningServer:
        database_url = overrides.pop("database_url", fresh_database_url)
        settings = make_settings(tmp_path, database_url, **{**FAST_JOBS, **overrides})
        chosen: Embedder | None
        if embedder == "local":
            chosen = local_embedder
        elif embedder == "configured":
            chosen = None
        else:
            assert not isinstance(embedder, str), embedder
            chosen = embedder
        running = RunningServer(TutorstreamServer(settings, embedder=chosen))
        await running.server.start()
        started.append(running)
        return running

    yield factory
    for running in started:
        await running.close_clients()
        await running.server.stop(0)


@pytest.fixture
async def transcript_server(transcript_server_factory: TranscriptServerFactory) -> RunningServer:
    return await transcript_server_factory()


async def wait_for_job(client: Any, job_name: str, *, within: float = 120.0) -> pb.IngestJob:
    """Follow WatchIngestJob to the end and return the last job state."""
    last: pb.IngestJob | None = None
    async with asyncio.timeout(within):
        async for update in client.transcripts.WatchIngestJob(pb.WatchIngestJobRequest(name=job_name)):
            last = update.job
    assert last is not None
    return last


@pytest.fixture(scope="module")
async def demo_server(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_pg: EmbeddedPostgres,
    seeded_demo_template: str,
    local_embedder: LocalEmbedder,
) -> AsyncIterator[RunningServer]:
    """One server per module on its own copy of the demo course (ingested once per session through the ingest
    service and its jobs)."""
    database_url = create_fresh_database(embedded_pg.admin_url, "demo", template=seeded_demo_template)
    settings = make_settings(tmp_path_factory.mktemp("demo"), database_url, **FAST_JOBS)
    running = RunningServer(TutorstreamServer(settings, embedder=local_embedder))
    await running.server.start()
    try:
        yield running
    finally:
        await running.close_clients()
        await running.server.stop(0)


def synthetic_vtt(minutes: int, topic: str = "layout", *, marker: str = "") -> str:
    """A WebVTT lecture with one five-second cue per sentence (about one chunk per 45 seconds)."""
    cues: list[str] = []
    for index in range(minutes * 12):
        start = index * 5
        end = start + 5
        cues.append(
            f"{start // 3600:02d}:{start // 60 % 60:02d}:{start % 60:02d}.000 --> "
            f"{end // 3600:02d}:{end // 60 % 60:02d}:{end % 60:02d}.000\n"
            f"Point {index} about {topic} {marker} explains one more idea in plain words.\n"
        )
    return "WEBVTT\n\n" + "\n".join(cues)


async def poll_until(condition: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.2) -> None:
    """Re-check `condition` until it holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {within} s")
        await asyncio.sleep(every)
