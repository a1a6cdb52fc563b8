"""Fixtures for the progress tests: a database template holding one ingested demo video (ingested once per
test session through the real IngestTranscript RPC, embedded by the fake OpenAI server), cloned per test,
and servers that share the fake-OpenAI embedder (the chat model stays offline)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import transcript_service_pb2 as transcript_pb

from server.core.embedded_pg import EmbeddedPostgres
from server.demo import load_demo_course
from server.embeddings.openai_embedder import OpenAIEmbedder
from tests.conftest import RunningServer, ServerFactory, launch, make_settings
from tests.support.clients import Client
from tests.support.fake_openai import FakeOpenAI
from tests.support.postgres import create_fresh_database, database_name

VIDEO_ID = "flexbox-layout"
COURSE_ID = "webdev-101"
FAST: dict[str, Any] = {
    "job_poll_seconds": 0.2,
    "job_heartbeat_seconds": 0.5,
    "job_sweep_seconds": 0.5,
    "job_shutdown_grace_seconds": 1.0,
    "ingest_watch_poll_seconds": 0.05,
    "watch_flush_interval_seconds": 0.2,
}
T0 = 1_760_000_000.0

ProgressServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture(scope="session")
def progress_embedder(
    fake_openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OpenAIEmbedder]:
    settings = make_settings(
        tmp_path_factory.mktemp("embedder"),
        "postgresql://unused/unused",
        openai_api_key=fake_openai_server.api_key,
        openai_base_url=fake_openai_server.base_url,
    )
    yield OpenAIEmbedder(settings)


@pytest.fixture(scope="session")
async def progress_template(
    embedded_pg: EmbeddedPostgres,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    progress_embedder: OpenAIEmbedder,
) -> str:
    """A migrated database with the flexbox video ingested; its name, for cloning."""
    url = create_fresh_database(embedded_pg.admin_url, "progress", template=template_database)
    running = await launch(tmp_path_factory.mktemp("ingest"), url, embedder=progress_embedder, **FAST)
    try:
        client = running.client("progress-ingest", role="service")
        video = next(v for v in load_demo_course().videos if v.video_id == VIDEO_ID)
        response = await client.transcripts.IngestTranscript(
            transcript_pb.IngestTranscriptRequest(
                request_id=f"progress-{uuid.uuid4().hex[:8]}",
                video_id=VIDEO_ID,
                course_id=COURSE_ID,
                title=video.title,
                format=transcript_pb.TRANSCRIPT_FORMAT_WEBVTT,
                content=video.vtt,
                language="en",
                duration_seconds=video.duration_seconds,
            )
        )
        last = response.job
        async with asyncio.timeout(120):
            async for update in client.transcripts.WatchIngestJob(
                transcript_pb.WatchIngestJobRequest(name=response.job.name)
            ):
                last = update.job
        assert last.state == transcript_pb.INGEST_JOB_STATE_SUCCEEDED, last.error_message
    finally:
        await running.close_clients()
        await running.server.stop(0)
    return database_name(url)


@pytest.fixture
def progress_database_url(embedded_pg: EmbeddedPostgres, progress_template: str) -> str:
    return create_fresh_database(embedded_pg.admin_url, "p", template=progress_template)


@pytest.fixture
def progress_server_factory(
    start_server: ServerFactory, progress_database_url: str, progress_embedder: OpenAIEmbedder
) -> ProgressServerFactory:
    async def factory(**overrides: Any) -> RunningServer:
        settings = {**FAST, "database_url": progress_database_url, **overrides}
        return await start_server(embedder=progress_embedder, **settings)

    return factory


@pytest.fixture
async def progress_server(progress_server_factory: ProgressServerFactory) -> RunningServer:
    return await progress_server_factory()


# --- scripting events ----------------------------------------------------------------------------


def stamp(seconds: float) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromNanoseconds(int((T0 + seconds) * 1e9))
    return value


def event(kind: int, position: float, at: float, *, event_id: str = "", **fields: Any) -> pb.VideoEvent:
    return pb.VideoEvent(event_id=event_id, type=kind, position_seconds=position, event_time=stamp(at), **fields)


def played_through(start: float, seconds: float, at: float, beat: float = 10.0) -> list[pb.VideoEvent]:
    events = [event(pb.VIDEO_EVENT_TYPE_PLAYED, start, at)]
    elapsed = 0.0
    while elapsed < seconds:
        elapsed = min(seconds, elapsed + beat)
        events.append(event(pb.VIDEO_EVENT_TYPE_HEARTBEAT, start + elapsed, at + elapsed))
    return events


def seeked(origin: float, landing: float, at: float) -> pb.VideoEvent:
    return event(pb.VIDEO_EVENT_TYPE_SEEKED, landing, at, seek_from_seconds=origin, seek_to_seconds=landing)


def rewatch_script() -> list[pb.VideoEvent]:
    """Plays to 2:10, goes back to 1:35, plays on, goes back to 1:40: re-watching 1:35–2:15."""
    events = played_through(0.0, 130.0, 0.0)
    events.append(seeked(130.0, 95.0, 131.0))
    events += played_through(95.0, 40.0, 132.0)
    events.append(seeked(135.0, 100.0, 173.0))
    return events


def with_ids(events: list[pb.VideoEvent], prefix: str) -> list[pb.VideoEvent]:
    for index, item in enumerate(events):
        item.event_id = f"{prefix}-{index}"
    return events


def new_watch_session() -> str:
    return f"ws-{uuid.uuid4().hex[:16]}"


async def watch(
    client: Client,
    watch_session_id: str,
    events: list[pb.VideoEvent],
    *,
    video_id: str = VIDEO_ID,
    until: Callable[[list[pb.WatchVideoResponse]], bool],
    duration: float = 0.0,
    within: float = 20.0,
    cancel: bool = False,
) -> list[pb.WatchVideoResponse]:
    """Sends `events` on one WatchVideo stream and reads until `until(responses)` holds. Then the client either
    cancels the call (`cancel`) or half-closes and reads to the end, as a player that is done would."""
    outgoing: asyncio.Queue[pb.WatchVideoRequest | None] = asyncio.Queue()
    await outgoing.put(
        pb.WatchVideoRequest(
            watch_session_id=watch_session_id, video_id=video_id, course_id=COURSE_ID, duration_seconds=duration
        )
    )
    for item in events:
        await outgoing.put(pb.WatchVideoRequest(events=[item]))

    async def requests() -> AsyncIterator[pb.WatchVideoRequest]:
        while (message := await outgoing.get()) is not None:
            yield message

    call = client.agents.WatchVideo(requests())
    received: list[pb.WatchVideoResponse] = []
    try:
        async with asyncio.timeout(within):
            async for response in call:
                received.append(response)
                if until(received):
                    break
            if not cancel:
                await outgoing.put(None)
                received.extend([response async for response in call])
    finally:
        if cancel:
            call.cancel()
    return received
