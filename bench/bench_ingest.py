"""Ingest throughput with the local model against the model's raw encode throughput on the texts ingest embeds.

    python -m bench.bench_ingest [--copies 6] [--rounds 5]

Starts an embedded PostgreSQL in a temporary directory and, each round, ingests the demo course `--copies`
times (as distinct videos) through the real path, timed from the first IngestTranscript call to the last
job seen SUCCEEDED by WatchIngestJob (`TranscriptService.watch_job`, polling every 0.1 s): validation and
parsing on the call, the job row and its queue entry, a procrastinate worker in this process running the
jobs (chunking, the spaCy analysis of the sentences and key phrases, embedding with all-MiniLM-L6-v2,
progress writes, the transactional swap of chunks, sentences and phrases with the HNSW and full-text index
maintenance) and every database write and commit.

The baseline, in the same process with the same model object, batch size (64) and torch threads, is one
`SentenceTransformer.encode` call over exactly the texts those jobs embed: each video's chunks, its sentences
and its key phrases, obtained before the timed region the way a job obtains them
(`server.transcripts.jobs.prepare_transcript` and `embedding_texts` on the parsed transcript) — the model
alone, in its own batching (the call sorts every text by length and cuts batches of 64). The two run back to
back in every round, alternating which goes first, so load from elsewhere on a shared machine hits both alike.
Each round gives one ratio (raw encode seconds / ingest seconds, i.e. ingest throughput over raw throughput);
the target is the median of those paired ratios. Target: >= 0.9x.

For comparison with runs before the jobs analysed sentences, each round also times `encode` over the chunk
texts alone; "ingest / raw encode of the chunks only" is that time over the ingest time. It is not the
target: ingest embeds about twenty times as many texts as that baseline (per chunk, about six sentences
and thirteen key phrases).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import at_least, context, publish
from server.config import Settings
from server.core.auth import Principal, Role, Tier
from server.core.db import Database
from server.demo import load_demo_course
from server.embeddings.local import DEFAULT_BATCH_SIZE, LocalEmbedder, similar_length_batches
from server.jobs.worker import JobWorker
from server.transcripts.jobs import embedding_texts, prepare_transcript
from server.transcripts.parsing import parse_transcript
from server.transcripts.search import TranscriptSearch
from server.transcripts.service import IngestRequest, TranscriptService
from server.worker import open_job_queue
from tests.support.postgres import create_migrated_database, start_embedded_for_tests

IMPORTER = Principal(user_id="bench-importer", role=Role.SERVICE, tier=Tier.SERVICE)
TARGET_RATIO = 0.9


@dataclass(frozen=True)
class VideoTexts:
    """What the ingest job of one demo video embeds (`texts`), and how many of those are its chunks."""

    texts: list[str]
    chunk_count: int


def demo_video_texts() -> list[VideoTexts]:
    """Per demo video, the texts its ingest job embeds, prepared the way the job prepares them."""
    prepared = []
    for video in load_demo_course().videos:
        chunks, _, analysis = prepare_transcript(parse_transcript(video.vtt, "webvtt"))
        prepared.append(VideoTexts(embedding_texts(chunks, analysis), len(chunks)))
    return prepared


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


def padding_ratio(embedder: LocalEmbedder, videos: list[VideoTexts], copies: int) -> float:
    """Token positions the baseline's batches compute over those of the jobs' batches (each job's texts in
    `similar_length_batches` of 64): the share of the model's work the jobs would need if batching were all
    that differed (independent of load)."""
    per_job = 0
    for video in videos:
        for batch in similar_length_batches(video.texts, DEFAULT_BATCH_SIZE):
            per_job += embedder.padded_tokens([video.texts[index] for index in batch])
    everything = [text for video in videos for text in video.texts] * copies
    return embedder.padded_tokens(everything) / (per_job * copies)


@dataclass
class Timings:
    """Seconds per round: raw encode of everything the jobs embed, of their chunks alone, and the ingest."""

    raw: list[float] = field(default_factory=list)
    raw_chunks: list[float] = field(default_factory=list)
    ingest: list[float] = field(default_factory=list)


async def measure(copies: int, rounds: int) -> tuple[Timings, int, int, float]:
    """Times per round, the chunks and the texts each round embeds, and `padding_ratio`."""
    timings = Timings()
    videos = demo_video_texts()
    texts = [text for video in videos for text in video.texts] * copies
    chunk_texts = [text for video in videos for text in video.texts[: video.chunk_count]] * copies
    chunks = len(chunk_texts)

    def raw_round() -> None:
        timings.raw.append(raw_encode_seconds(embedder, texts))
        timings.raw_chunks.append(raw_encode_seconds(embedder, chunk_texts))

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
                        await asyncio.to_thread(raw_round)
                    elapsed, ingested_chunks = await ingest_seconds(service, copies, round_)
                    assert ingested_chunks == chunks, (ingested_chunks, chunks)
                    timings.ingest.append(elapsed)
                    if not raw_first:
                        await asyncio.to_thread(raw_round)
            finally:
                await worker.stop()
                await queue.close()
                await database.dispose()
        finally:
            embedded.stop()
    return timings, chunks, len(texts), padding_ratio(embedder, videos, copies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=6, help="how many times to ingest the 4-video demo course")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of raw encode + ingest, order alternating")
    arguments = parser.parse_args()
    timings, chunks, texts, padding = asyncio.run(measure(arguments.copies, arguments.rounds))

    ratios = [raw / ingest for raw, ingest in zip(timings.raw, timings.ingest, strict=True)]
    chunk_ratios = [raw / ingest for raw, ingest in zip(timings.raw_chunks, timings.ingest, strict=True)]
    videos = arguments.copies * len(load_demo_course().videos)
    print(f"{videos} videos, {texts} texts embedded per round ({chunks} chunks, the rest sentences and key phrases)")
    for round_, (raw, ingest, ratio) in enumerate(zip(timings.raw, timings.ingest, ratios, strict=True)):
        first = "raw first" if round_ % 2 == 0 else "ingest first"
        print(f"  round {round_}: raw encode {raw:6.2f} s, ingest {ingest:6.2f} s, ratio {ratio:.3f}x ({first})")
    raw_rate = texts / statistics.median(timings.raw)
    ingest_rate = texts / statistics.median(timings.ingest)
    ingest_chunk_rate = chunks / statistics.median(timings.ingest)
    best_ratio = min(timings.raw) / min(timings.ingest)
    load = os.getloadavg()[0]
    print(f"  median: raw {raw_rate:.1f} texts/s, ingest {ingest_rate:.1f} texts/s ({ingest_chunk_rate:.1f} chunks/s)")
    print(f"  best times: ingest / raw = {best_ratio:.3f}x; load average (1 min) at the end: {load:.2f}")
    print(f"  ingest / raw encode of the chunks only = {statistics.median(chunk_ratios):.3f}x (median)")
    print(f"  padded tokens, baseline batches / the jobs' batches = {padding:.3f}x (the ratio batching alone allows)")

    area = "ingest"
    baseline = (
        f"model.encode of the same {texts} texts (chunks, sentences, key phrases), batch 64, same process, "
        "alternating rounds"
    )
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
            context(area, "ingest throughput, call to job done (median)", ingest_chunk_rate, "chunks/s"),
            context(area, "ingest throughput, texts embedded (median)", ingest_rate, "texts/s"),
            context(area, "raw encode throughput (median)", raw_rate, "texts/s"),
            context(area, "throughput, ingest / raw encode (best times)", best_ratio, "x", baseline=baseline),
            context(
                area,
                "throughput, ingest / raw encode of the chunks only (median; not the target)",
                statistics.median(chunk_ratios),
                "x",
                baseline=f"model.encode of the {chunks} chunk texts alone, batch 64, same rounds",
            ),
            context(
                area,
                "batching alone: padded tokens, raw batches / the jobs' batches",
                padding,
                "x",
                baseline="the same texts in the baseline's batches of 64, counted with the model's tokenizer",
            ),
            context(area, "load average (1 min) at the end", load, ""),
        ]
    )


if __name__ == "__main__":
    main()
