"""Ingest throughput with the local model against the model's raw encode throughput on the same text.

    python -m bench.bench_ingest [--copies 6] [--rounds 5]

Starts an embedded PostgreSQL in a temporary directory and, each round, ingests the demo course `--copies`
times (as distinct videos) through the real path, timed from the first IngestTranscript call to the last
job seen SUCCEEDED by WatchIngestJob (`TranscriptService.watch_job`, polling every 0.1 s): validation and
parsing on the call, the job row and its queue entry, a procrastinate worker in this process running the
jobs (chunking, embedding with all-MiniLM-L6-v2, progress writes, the transactional chunk swap with the
HNSW and full-text index maintenance) and every database write and commit.

The baseline, in the same process with the same model object, batch size (64) and torch threads, is one
`SentenceTransformer.encode` call over exactly the chunk texts those jobs embed: the model alone, in the
largest length-sorted batches it can make (the jobs encode per video, a batch of about 11 chunks each).
The two run back to back in every round, alternating which goes first, so load from elsewhere on a shared
machine hits both alike. Each round gives one ratio (raw encode seconds / ingest seconds, i.e. ingest
throughput over raw throughput); the target is the median of those paired ratios. Target: >= 0.9x.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.report import at_least, context, publish
from server.config import Settings
from server.core.auth import Principal, Role, Tier
from server.core.db import Database
from server.demo import load_demo_course
from server.embeddings.local import LocalEmbedder
from server.jobs.worker import JobWorker
from server.transcripts.chunking import chunk_cues
from server.transcripts.parsing import parse_transcript
from server.transcripts.search import TranscriptSearch
from server.transcripts.service import IngestRequest, TranscriptService
from server.worker import open_job_queue
from tests.support.postgres import create_migrated_database, start_embedded_for_tests

IMPORTER = Principal(user_id="bench-importer", role=Role.SERVICE, tier=Tier.SERVICE)
TARGET_RATIO = 0.9


def chunk_texts(copies: int) -> list[str]:
    return [text for video in video_chunk_texts() for text in video] * copies


def video_chunk_texts() -> list[list[str]]:
    return [
        [chunk.text for chunk in chunk_cues(parse_transcript(video.vtt, "webvtt").cues)]
        for video in load_demo_course().videos
    ]


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


def padding_ratio(embedder: LocalEmbedder, copies: int) -> float:
    """Token positions the baseline's batches compute over those of the jobs' per-video batches: the share
    of the model's work the jobs would need if batching were all that differed (independent of load)."""
    per_video = sum(embedder.padded_tokens(texts) for texts in video_chunk_texts()) * copies
    return embedder.padded_tokens(chunk_texts(copies)) / per_video


async def measure(copies: int, rounds: int) -> tuple[list[float], list[float], int, float]:
    """(raw encode seconds, ingest seconds) per round, the chunks each round embeds, and `padding_ratio`."""
    raw_times: list[float] = []
    ingest_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        embedded = start_embedded_for_tests(Path(tmp))
        try:
            url = create_migrated_database(embedded.admin_url, "bench_ingest")
            settings = Settings(
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
            database = Database(url, pool_size=4)
            queue = await open_job_queue(settings, database, embedder)
            worker = JobWorker(queue, settings)
            await worker.start()
            try:
                service = TranscriptService(database, TranscriptSearch(database, embedder), queue, settings)
                # Untimed: kernels, connection pools and the worker warm up on both paths.
                await asyncio.to_thread(embedder.raw_encode, texts[:64])
                await ingest_seconds(service, 1, -1)
                for round_ in range(rounds):
                    raw_first = round_ % 2 == 0
                    if raw_first:
                        raw_times.append(await asyncio.to_thread(raw_encode_seconds, embedder, texts))
                    elapsed, ingested_chunks = await ingest_seconds(service, copies, round_)
                    assert ingested_chunks == len(texts), (ingested_chunks, len(texts))
                    ingest_times.append(elapsed)
                    if not raw_first:
                        raw_times.append(await asyncio.to_thread(raw_encode_seconds, embedder, texts))
            finally:
                await worker.stop()
                await queue.close()
                await database.dispose()
        finally:
            embedded.stop()
    return raw_times, ingest_times, len(texts), padding_ratio(embedder, copies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=6, help="how many times to ingest the 4-video demo course")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of raw encode + ingest, order alternating")
    arguments = parser.parse_args()
    raw_times, ingest_times, chunks, padding = asyncio.run(measure(arguments.copies, arguments.rounds))

    ratios = [raw / ingest for raw, ingest in zip(raw_times, ingest_times, strict=True)]
    print(f"{arguments.copies * len(load_demo_course().videos)} videos, {chunks} chunks per round")
    for round_, (raw, ingest, ratio) in enumerate(zip(raw_times, ingest_times, ratios, strict=True)):
        first = "raw first" if round_ % 2 == 0 else "ingest first"
        print(f"  round {round_}: raw encode {raw:6.2f} s, ingest {ingest:6.2f} s, ratio {ratio:.3f}x ({first})")
    raw_rate = chunks / statistics.median(raw_times)
    ingest_rate = chunks / statistics.median(ingest_times)
    best_ratio = min(raw_times) / min(ingest_times)
    load = os.getloadavg()[0]
    print(f"  median: raw {raw_rate:.1f} chunks/s, ingest {ingest_rate:.1f} chunks/s")
    print(f"  best times: ingest / raw = {best_ratio:.3f}x; load average (1 min) at the end: {load:.2f}")
    print(
        f"  padded tokens, baseline batches / per-video batches = {padding:.3f}x (the ratio batching alone would allow)"
    )

    area = "ingest"
    baseline = f"model.encode of the same {chunks} chunk texts, batch 64, same process, alternating rounds"
    publish(
        [
            at_least(
                area,
                "throughput, ingest / raw encode (median of paired rounds)",
                statistics.median(ratios),
                "x",
                TARGET_RATIO,
                baseline=baseline,
            ),
            context(area, "ingest throughput, call to job done (median)", ingest_rate, "chunks/s"),
            context(area, "raw encode throughput (median)", raw_rate, "chunks/s"),
            context(area, "throughput, ingest / raw encode (best times)", best_ratio, "x", baseline=baseline),
            context(
                area,
                "batching alone: padded tokens, raw batches / per-video batches",
                padding,
                "x",
                baseline="the same texts in the baseline's batches of 64, counted with the model's tokenizer",
            ),
            context(area, "load average (1 min) at the end", load, ""),
        ]
    )


if __name__ == "__main__":
    main()
