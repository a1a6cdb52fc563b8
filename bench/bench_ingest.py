"""Ingest throughput with the local model against the model's raw encode throughput on the same text.

    python -m bench.bench_ingest [--copies 6] [--rounds 3]

Starts an embedded PostgreSQL in a temporary directory and ingests the demo course `--copies` times (as
distinct videos) through the real path: TranscriptService.ingest (validation, parsing, the job row and its
queue entry), a procrastinate worker in this process running the ingest jobs (parse, chunk, embed with
all-MiniLM-L6-v2, progress updates, the transactional chunk swap) until every job has SUCCEEDED. The
baseline is one `SentenceTransformer.encode` call over exactly the chunk texts those jobs embed. The two
alternate for `--rounds` rounds (fresh video ids each round); medians and best times are compared (on a
shared machine the best times are the least disturbed). Target: ingest >= 0.9x raw encode.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from server.config import Settings
from server.core.auth import Principal, Role, Tier
from server.core.db import Database
from server.demo import load_demo_course
from server.embeddings.local import LocalEmbedder
from server.jobs.wiring import open_job_queue
from server.jobs.worker import JobWorker
from server.transcripts.chunking import chunk_cues
from server.transcripts.parsing import parse_transcript
from server.transcripts.search import TranscriptSearch
from server.transcripts.service import IngestRequest, TranscriptService
from tests.support.postgres import create_migrated_database, start_embedded_for_tests

IMPORTER = Principal(user_id="bench-importer", role=Role.SERVICE, tier=Tier.SERVICE)


def chunk_texts(copies: int) -> list[str]:
    texts: list[str] = []
    for video in load_demo_course().videos:
        chunks = chunk_cues(parse_transcript(video.vtt, "webvtt").cues)
        texts.extend(chunk.text for chunk in chunks)
    return texts * copies


def raw_encode_seconds(embedder: LocalEmbedder, texts: list[str]) -> float:
    started = time.perf_counter()
    vectors = embedder.raw_encode(texts)
    elapsed = time.perf_counter() - started
    assert vectors.shape == (len(texts), embedder.dimension)
    return elapsed


async def ingest_seconds(service: TranscriptService, copies: int, round_: int) -> tuple[float, int]:
    course = load_demo_course()
    started = time.perf_counter()
    jobs = []
    for copy in range(copies):
        for video in course.videos:
            jobs.append(
                await service.ingest(
                    IMPORTER,
                    IngestRequest(
                        request_id=f"bench-{round_}-{copy}-{video.video_id}",
                        video_id=f"{video.video_id}-{round_}-{copy}",
                        course_id=f"{course.course_id}-{round_}-{copy}",
                        title=video.title,
                        format="webvtt",
                        content=video.vtt,
                    ),
                )
            )
    chunks = 0
    for job in jobs:
        last = job
        async for update in service.watch_job(IMPORTER, job.job_id):
            last = update
        assert last.state == "succeeded", last.error_message
        chunks += last.total_units
    return time.perf_counter() - started, chunks


async def run(copies: int, rounds: int) -> None:
    raw_times: list[float] = []
    ingest_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        embedded = start_embedded_for_tests(Path(tmp))
        try:
            url = create_migrated_database(embedded.admin_url, "bench_ingest")
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                data_dir=Path(tmp),
                database_url=url,
                openai_api_key=None,
                # Waiting for the jobs must not compete with them for the CPU: the last job's end is seen
                # within 0.1 s.
                ingest_watch_poll_seconds=0.1,
            )
            embedder = LocalEmbedder()
            await embedder.warm_up()
            texts = chunk_texts(copies)
            embedder.raw_encode(texts[:64])  # warm the kernels before either side is timed

            database = Database(url, pool_size=4)
            queue = await open_job_queue(settings, database, embedder)
            worker = JobWorker(queue, settings)
            await worker.start()
            try:
                service = TranscriptService(database, TranscriptSearch(database, embedder), queue, settings)
                # Alternate the two, so that load from elsewhere on the machine hits both alike.
                for round_ in range(rounds):
                    raw_times.append(await asyncio.to_thread(raw_encode_seconds, embedder, texts))
                    elapsed, ingested_chunks = await ingest_seconds(service, copies, round_)
                    assert ingested_chunks == len(texts), (ingested_chunks, len(texts))
                    ingest_times.append(elapsed)
                raw_times.append(await asyncio.to_thread(raw_encode_seconds, embedder, texts))
            finally:
                await worker.stop()
                await queue.close()
                await database.dispose()
        finally:
            embedded.stop()
    print(f"{copies * len(load_demo_course().videos)} videos, {len(texts)} chunks per round, {rounds} rounds")
    print(f"  raw encode seconds:  {', '.join(f'{t:.2f}' for t in raw_times)}")
    print(f"  full ingest seconds: {', '.join(f'{t:.2f}' for t in ingest_times)} (first call to last job done)")
    for label, pick in (("median", statistics.median), ("best", min)):
        raw_rate = len(texts) / pick(raw_times)
        ingest_rate = len(texts) / pick(ingest_times)
        ratio = ingest_rate / raw_rate
        print(
            f"  {label:>6}: raw {raw_rate:6.1f} chunks/s, ingest {ingest_rate:6.1f} chunks/s, "
            f"ingest / raw = {ratio:.2f}x (target >= 0.9x): {'OK' if ratio >= 0.9 else 'MISSED'}"
        )
    print(f"  load average (1 min) at the end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=6, help="how many times to ingest the 4-video demo course")
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw encode / ingest rounds")
    arguments = parser.parse_args()
    asyncio.run(run(arguments.copies, arguments.rounds))


if __name__ == "__main__":
    main()
