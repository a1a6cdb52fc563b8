"""Replacing a transcript while it is being searched: every search sees the old chunks or the new ones,
never a mix and never nothing."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select
from tutorstream.v1 import transcript_service_pb2 as pb

from server.transcripts.models import TranscriptChunk
from tests.conftest import RunningServer
from tests.transcripts.conftest import TranscriptServerFactory, poll_until, synthetic_vtt, wait_for_job

VIDEO = "video-swap"


async def chunk_ids(server: RunningServer) -> frozenset[str]:
    async with server.server.database.session() as session:
        return frozenset(
            (await session.execute(select(TranscriptChunk.id).where(TranscriptChunk.video_id == VIDEO))).scalars()
        )


async def test_concurrent_searches_never_see_a_mix_or_nothing(
    transcript_server_factory: TranscriptServerFactory,
) -> None:
    server = await transcript_server_factory(job_concurrency=1)
    client = server.client("teacher", role="instructor")
    search = server.server.runtime.search
    versions = [synthetic_vtt(6, marker="alpha"), synthetic_vtt(9, marker="bravo"), synthetic_vtt(5, marker="charlie")]

    async def ingest(content: str) -> pb.IngestJob:
        response = await client.transcripts.IngestTranscript(
            pb.IngestTranscriptRequest(
                request_id=f"swap-{uuid.uuid4().hex}",
                video_id=VIDEO,
                course_id="course-swap",
                format=pb.TRANSCRIPT_FORMAT_WEBVTT,
                content=content,
            )
        )
        return await wait_for_job(client, response.job.name)

    assert (await ingest(versions[0])).state == pb.INGEST_JOB_STATE_SUCCEEDED
    known = {await chunk_ids(server): "alpha"}

    observed: list[frozenset[str]] = []
    failures: list[str] = []
    stop = asyncio.Event()

    async def keep_searching(scope: dict[str, str]) -> None:
        while not stop.is_set():
            hits = await search.search("explains one more idea about layout", limit=50, **scope)
            ids = frozenset(hit.chunk_id for hit in hits)
            if not ids:
                failures.append(f"empty result ({scope})")
            markers = {marker for marker in ("alpha", "bravo", "charlie") if any(marker in hit.text for hit in hits)}
            if len(markers) != 1:
                failures.append(f"mixed or unknown versions {markers} ({scope})")
            observed.append(ids)

    searchers = [
        asyncio.create_task(keep_searching({"video_id": VIDEO})),
        asyncio.create_task(keep_searching({"course_id": "course-swap"})),
    ]
    try:
        for marker, content in zip(("bravo", "charlie"), versions[1:], strict=True):
            job = await ingest(content)
            assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED
            known[await chunk_ids(server)] = marker
            # Let the searchers see the new version before the next swap.
            seen_before = len(observed)

            async def searched_since(count: int = seen_before) -> bool:
                return len(observed) >= count + 4

            await poll_until(searched_since, within=30, every=0.01)
    finally:
        stop.set()
        await asyncio.gather(*searchers)

    assert failures == []
    assert len(known) == 3
    # Each result is exactly one complete version (all of its chunks: limit 50 covers every chunk).
    versions_seen = [known.get(ids, "unknown") for ids in observed]
    assert "unknown" not in versions_seen
    assert {"bravo", "charlie"} <= set(versions_seen)
    assert len(observed) >= 10
