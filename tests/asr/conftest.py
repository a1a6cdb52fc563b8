"""Speech-to-text fixtures: the Whisper model assembled once per session (and, through the provider's
cache, loaded once), spoken clips generated once with espeak-ng, and servers with fast job timings, a media
directory and an upload directory per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tutorstream.v1 import transcript_service_pb2 as pb

from server.app import TutorstreamServer
from server.asr.model_assembly import assemble_packaged_model
from server.embeddings.local import LocalEmbedder
from tests.asr.speech import silence, speak, write_wav
from tests.conftest import FAST_JOBS as SHARED_FAST_JOBS
from tests.conftest import RunningServer, make_settings

FAST_JOBS: dict[str, Any] = {**SHARED_FAST_JOBS, "job_poll_seconds": 0.5, "job_stalled_seconds": 30.0}

PARAGRAPH = (
    "Today we talk about how a web browser renders a page. First the browser reads the markup and builds a "
    "tree of elements. Then it reads the style sheets and works out the style of every element. Finally it "
    "paints the pixels on the screen."
)
SHORT = "The quick brown fox jumps over the lazy dog."
LONG_FIRST = "Welcome to the lesson on recursion."
LONG_SECOND = "A recursive function calls itself until it reaches a base case."
LONG_SECOND_AT = 45.0


@dataclass(frozen=True)
class Clips:
    paragraph: Path  # PARAGRAPH, about 20 s
    short: Path  # SHORT, about 3 s
    long: Path  # LONG_FIRST at 1 s, LONG_SECOND at 45 s, 70 s in all
    silent: Path  # 6 s of silence
    durations: dict[str, float]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    directory = tmp_path_factory.mktemp("clips")
    durations: dict[str, float] = {}
    durations["paragraph"] = write_wav(directory / "paragraph.wav", [silence(0.5), speak(PARAGRAPH), silence(0.5)])
    durations["short"] = write_wav(directory / "short.wav", [silence(0.3), speak(SHORT), silence(0.3)])
    first, second = speak(LONG_FIRST), speak(LONG_SECOND)
    gap = LONG_SECOND_AT - 1.0 - len(first) / 22_050
    tail = 70.0 - LONG_SECOND_AT - len(second) / 22_050
    durations["long"] = write_wav(directory / "long.wav", [silence(1.0), first, silence(gap), second, silence(tail)])
    durations["silent"] = write_wav(directory / "silent.wav", [silence(6.0)])
    return Clips(
        paragraph=directory / "paragraph.wav",
        short=directory / "short.wav",
        long=directory / "long.wav",
        silent=directory / "silent.wav",
        durations=durations,
    )


@pytest.fixture(scope="session")
def whisper_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble_packaged_model(tmp_path_factory.mktemp("models") / "whisper-base")


@pytest.fixture(scope="session")
def asr_embedder(local_embedder: LocalEmbedder) -> LocalEmbedder:
    return local_embedder


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "media"
    directory.mkdir()
    return directory


AsrServerFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def asr_server_factory(
    tmp_path: Path, fresh_database_url: str, asr_embedder: LocalEmbedder, whisper_model_dir: Path, media_dir: Path
) -> AsyncIterator[AsrServerFactory]:
    started: list[RunningServer] = []

    async def factory(**overrides: Any) -> RunningServer:
        values: dict[str, Any] = {
            **FAST_JOBS,
            "asr_model_dir": whisper_model_dir,
            "asr_cpu_threads": 2,
            "asr_media_dir": media_dir,
            "asr_upload_dir": tmp_path / "uploads",
            **overrides,
        }
        settings = make_settings(tmp_path, values.pop("database_url", fresh_database_url), **values)
        running = RunningServer(TutorstreamServer(settings, embedder=asr_embedder))
        await running.server.start()
        started.append(running)
        return running

    yield factory
    for running in started:
        await running.close_clients()
        await running.server.stop(0)


@pytest.fixture
async def asr_server(asr_server_factory: AsrServerFactory) -> RunningServer:
    return await asr_server_factory()


async def follow_job(client: Any, job_name: str, *, within_seconds: float = 240.0) -> list[pb.IngestJob]:
    """Every update WatchIngestJob streams until the job ends."""
    updates: list[pb.IngestJob] = []
    async with asyncio.timeout(within_seconds):
        async for update in client.transcripts.WatchIngestJob(pb.WatchIngestJobRequest(name=job_name)):
            updates.append(update.job)
    assert updates
    return updates


def upload_messages(
    data: bytes,
    *,
    request_id: str,
    video_id: str,
    course_id: str = "course-asr",
    chunk_size: int = 256 * 1024,
    **extra: Any,
) -> list[pb.UploadMediaRequest]:
    metadata = pb.UploadMediaMetadata(
        request_id=request_id,
        video_id=video_id,
        course_id=course_id,
        total_bytes=extra.pop("total_bytes", len(data)),
        **extra,
    )
    chunks = [data[start : start + chunk_size] for start in range(0, len(data), chunk_size)]
    return [pb.UploadMediaRequest(metadata=metadata), *(pb.UploadMediaRequest(chunk=chunk) for chunk in chunks)]
