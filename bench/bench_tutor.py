"""The offline tutor on the demo course: time to first token with no model configured, and what the sentence
analysis stored at ingest costs in the database.

    python -m bench.bench_tutor [--runs 200]

A real tutorstream server process (no API key: the offline engine answers; the local MiniLM model embeds;
the demo course ingested by its own jobs, sentence analysis included) and this client. Each run opens a fresh
session at a labelled question's playhead and asks it (the demo course's direct and paraphrased questions,
in turn); the time to first token is StreamChat's first delta at the client. Target: <= 50 ms p50.

Storage: the bytes PostgreSQL holds per chunk for the analysis (sentence rows with their `halfvec` vectors,
and key phrase rows), measured with pg_column_size on the demo course, and what that comes to at 1M chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import grpc
import psycopg
from tutorstream.v1 import chat_service_pb2 as pb
from tutorstream.v1 import chat_service_pb2_grpc as pb_grpc
from tutorstream.v1 import common_pb2
from tutorstream.v1 import transcript_service_pb2 as transcript_pb
from tutorstream.v1 import transcript_service_pb2_grpc as transcript_grpc

from bench.bench_chat import JWT_SECRET, child, server_env, summary, wait_serving
from bench.report import Line, at_most, context, percentile, publish
from server.config import Settings
from server.core.auth import Role, mint_token
from server.core.db import libpq_conninfo
from server.demo import load_demo_course
from tests.support.ports import free_port
from tests.support.postgres import create_migrated_database, start_embedded_for_tests

ANALYSED_WITHIN_SECONDS = 600.0


def questions() -> list[tuple[str, str, float]]:
    """(question, video, playhead) of the demo course's labelled direct and paraphrased questions."""
    data = json.loads((files("server.demo") / "eval_questions.json").read_text(encoding="utf-8"))
    asked = [(q["question"], q["video_id"], max(0.0, float(q["expected_start"]) - 120.0)) for q in data["questions"]]
    asked += [(q["question"], q["video_id"], float(q["playhead_seconds"])) for q in data["paraphrased_questions"]]
    return asked


async def wait_analysed(target: str, token: str) -> None:
    """Until every demo video has chunks (the seeding jobs ran, sentence analysis included)."""
    metadata = (("authorization", f"Bearer {token}"),)
    wanted = {video.video_id for video in load_demo_course().videos}
    deadline = time.monotonic() + ANALYSED_WITHIN_SECONDS
    async with grpc.aio.insecure_channel(target) as channel:
        stub = transcript_grpc.TranscriptServiceStub(channel)
        while time.monotonic() < deadline:
            listed = await stub.ListTranscripts(transcript_pb.ListTranscriptsRequest(page_size=50), metadata=metadata)
            if {t.video_id for t in listed.transcripts if t.chunk_count > 0} >= wanted:
                return
            await asyncio.sleep(0.5)
    raise RuntimeError("the demo course was not ingested in time")


async def first_token_ms(stub: pb_grpc.ChatServiceStub, token: str, question: str, video: str, at: float) -> float:
    metadata = (("authorization", f"Bearer {token}"),)
    context = common_pb2.LearningContext(course_id="webdev-101", video_id=video, position_seconds=at)
    session = await stub.CreateSession(pb.CreateSessionRequest(learning_context=context), metadata=metadata)
    started = time.perf_counter()
    first = None
    call = stub.StreamChat(pb.StreamChatRequest(session=session.session.name, message=question), metadata=metadata)
    async for chunk in call:
        if first is None and chunk.text:
            first = time.perf_counter()
    assert first is not None, question
    return (first - started) * 1000


def storage(database_url: str) -> tuple[float, float, float, int]:
    """(sentence bytes per chunk, phrase bytes per chunk, sentences per chunk, chunks) on the demo course."""
    with psycopg.connect(libpq_conninfo(database_url)) as connection:
        chunks = connection.execute("SELECT count(*) FROM transcript_chunks").fetchone()
        sentences = connection.execute(
            "SELECT count(*), coalesce(sum(pg_column_size(s.*)), 0) FROM transcript_sentences s"
        ).fetchone()
        phrases = connection.execute(
            "SELECT coalesce(sum(pg_column_size(p.*)), 0) FROM transcript_phrases p"
        ).fetchone()
    assert chunks is not None and sentences is not None and phrases is not None
    count = int(chunks[0]) or 1
    return float(sentences[1]) / count, float(phrases[0]) / count, float(sentences[0]) / count, int(chunks[0])


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tutor-") as tmp:
        embedded = start_embedded_for_tests(Path(tmp))
        try:
            database_url = create_migrated_database(embedded.admin_url, "bench_tutor")
            port = free_port()
            # The demo course is seeded and ingested by the server's own in-process job workers.
            env = server_env(
                port,
                tmp,
                database_url,
                SEED_DEMO_ON_START="true",
                RUN_WORKERS_IN_PROCESS="true",
                OPENAI_API_KEY="",
                OPENAI_BASE_URL="",
                EMBEDDING_PROVIDER="local",
                RATE_CHAT_PER_MINUTE="10000000",
                RATE_DEFAULT_PER_MINUTE="10000000",
                HF_HUB_OFFLINE="1",
            )
            settings = Settings(_env_file=None, jwt_secret=JWT_SECRET)  # type: ignore[call-arg]
            token = mint_token(settings, user_id="bench-tutor", role=Role.STUDENT)
            service = mint_token(settings, user_id="bench-tutor-ops", role=Role.SERVICE)
            log_path = Path(tmp) / "tutorstream.log"
            command = [sys.executable, "-c", "from server.cli import app; app(['serve'])"]
            with child(command, env, log_path) as process:
                target = f"127.0.0.1:{port}"
                await wait_serving(target, process, log_path)
                await wait_analysed(target, service)
                asked = questions()
                async with grpc.aio.insecure_channel(target) as channel:
                    stub = pb_grpc.ChatServiceStub(channel)
                    for question, video, at in asked[:10]:  # warm-up: pools, caches, the models
                        await first_token_ms(stub, token, question, video, at)
                    samples = [await first_token_ms(stub, token, *asked[run % len(asked)]) for run in range(args.runs)]
            per_chunk, phrases_per_chunk, sentences_per_chunk, chunks = storage(database_url)
        finally:
            embedded.stop()
    print(f"offline tutor: {args.runs} StreamChat turns on the demo course ({len(asked)} labelled questions in turn)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"  time to first token (ms)            {summary(samples)}   mean {statistics.mean(samples):.2f}")
    print(f"  sentences per chunk                  {sentences_per_chunk:.2f} ({chunks} chunks)")
    print(f"  sentence rows per chunk              {per_chunk:,.0f} bytes (text, lemmas, parse, halfvec)")
    print(f"  key phrase rows per chunk            {phrases_per_chunk:,.0f} bytes")
    at_scale = (per_chunk + phrases_per_chunk) * 1_000_000 / 1024**3
    lines: list[Line] = [
        at_most("tutor", "offline chat time to first token, p50", percentile(samples, 50), "ms", 50),
        context("tutor", "offline chat time to first token, p99", percentile(samples, 99), "ms"),
        context("tutor", "sentences per chunk", sentences_per_chunk, ""),
        context("tutor", "sentence analysis stored per chunk (rows + halfvec)", per_chunk, "B"),
        context("tutor", "key phrases stored per chunk", phrases_per_chunk, "B"),
        context("tutor", "analysis storage at 1M chunks", at_scale, "GiB"),
    ]
    publish(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
