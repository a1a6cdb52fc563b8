"""Transcript search latency at 100k and 1M chunks, and recall of the HNSW path against exact search.

    python -m bench.bench_search [--sizes 100000,1000000] [--chunks-per-video 100] [--videos-per-course 20]
                                 [--queries 400]
    python -m bench.bench_search --sizes 20000 --queries 100      # a quick run

The default run takes about 27 minutes on two busy cores, most of it building the 1M corpus: binary COPY
about 7 minutes (PostgreSQL computing two tsvectors per row), the HNSW bulk build about 12.

Starts an embedded PostgreSQL in a temporary directory and, for each size, a database of its own: migrated,
then bulk-loaded with binary COPY (two loaders, one per core) with the table's secondary indexes dropped and
rebuilt afterwards from their migrated definitions, the model's HNSW index as one bulk build. Each size is a
separate corpus with separate indexes; the database of a size is dropped before the next one is loaded.

Synthetic chunks: 384-d unit vectors drawn around topic centroids in a 48-d latent space mapped into 384-d
(real sentence embeddings cluster by topic and have a low intrinsic dimension) and text of Zipf-distributed
words. A video has `--chunks-per-video` chunks and a course `--videos-per-course` videos at every size, so a
course is the same size at 100k and at 1M and only the number of courses grows.

Reported side by side, from one run per size:
- the round-trip floor: a pool checkout (with its liveness ping) and `SELECT 1`, timed between the searches,
  so a p99 can be read against what the machine gives any statement at that moment;
- hybrid search latency (vector + BM25 full text, fused by RRF, one SQL statement) per video and per
  course, p50/p99, through TranscriptSearch with precomputed query vectors (the query embedding is the
  model's cost, not the index's, and is left out);
- the vector half alone: exact scan vs the HNSW index, per course and over everything;
- recall@10 of the index-allowed path (HNSW where the planner picks it) against exact search (searches in a
  video or a course rank exactly, recall 1.0; the filtered index path is shown for comparison);
- planning and execution time and buffers of the per-video and per-course statements (EXPLAIN ANALYZE);
- how long the load and the index builds took.
Targets: p99 <= 10 ms per video; recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg import register_vector
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Text

from bench.report import Line, at_least, at_most, context, percentile, publish
from server.core.db import Database, libpq_conninfo
from server.embeddings.base import ProgressCallback
from server.transcripts.repository.search import vector_index_name
from server.transcripts.repository.search_sql import code_terms, hybrid_sql, nearest_sql, scope_filter, vector_literal
from server.transcripts.search import TranscriptSearch
from tests.support.postgres import create_migrated_database, drop_database, start_embedded_for_tests

T = TypeVar("T")
MODEL = "local:all-MiniLM-L6-v2"
DIMENSION = 384
WORDS_PER_CHUNK = 80
VOCABULARY = 4000
TOPICS = 400
LATENT_DIMENSION = 48
ISOTROPIC_NOISE = 0.01
# Chunks of one topic have cosine similarity around 0.6 with each other; a question is a bit further out.
CHUNK_SPREAD = 0.8
QUERY_SPREAD = 1.0
# A full scan of every vector takes most of a second at 100k and seconds at 1M: a subset of the queries.
EXACT_ALL_QUERIES = 40
LOADERS = 2
COPY_BATCH = 10_000
# The HNSW graph of 1M 384-d vectors takes about 2 GB while it is built; a build whose graph outgrows
# maintenance_work_mem goes on much more slowly on disk.
BUILD_MEMORY = "6GB"
# Two cores: the leader and one worker build the graph together.
BUILD_WORKERS = 1
TARGET_P99_MS = 10.0
TARGET_RECALL = 0.95


class PrecomputedEmbedder:
    """Answers each benchmark query with its precomputed vector (the Embedder protocol)."""

    model_id = MODEL
    dimension = DIMENSION

    def __init__(self) -> None:
        self.vectors: dict[str, list[float]] = {}

    async def embed(self, texts: Sequence[str], *, on_progress: ProgressCallback | None = None) -> list[list[float]]:
        return [self.vectors[text] for text in texts]

    async def aclose(self) -> None:
        return None


def unit(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray(matrix / np.linalg.norm(matrix, axis=-1, keepdims=True), dtype=np.float32)


class Corpus:
    def __init__(self, chunks: int, chunks_per_video: int, videos_per_course: int, seed: int = 7) -> None:
        self.seed = seed
        self.chunks = chunks
        self.per_video = chunks_per_video
        video_count = max(1, chunks // chunks_per_video)
        self.videos = [
            (
                f"course-{index // videos_per_course:04d}",
                f"video-{index // videos_per_course:04d}-{index % videos_per_course:02d}",
            )
            for index in range(video_count)
        ]
        self.courses = len({course for course, _ in self.videos})
        rng = np.random.default_rng(seed)
        # Sentence embeddings occupy a low-dimensional part of their space: topics and the variation
        # around them live in a LATENT_DIMENSION-d space, mapped into 384-d, plus a little isotropic noise.
        self.centroids = rng.standard_normal((TOPICS, LATENT_DIMENSION)).astype(np.float32)
        self.projection = rng.standard_normal((LATENT_DIMENSION, DIMENSION)).astype(np.float32) / np.sqrt(
            LATENT_DIMENSION
        )
        self.words = [f"w{index}" for index in range(VOCABULARY)]
        ranks = np.arange(1, VOCABULARY + 1, dtype=np.float64)
        self.word_weights = (1 / ranks) / (1 / ranks).sum()

    def video_of(self, position: int) -> int:
        return min(position // self.per_video, len(self.videos) - 1)

    def sample_vectors(
        self, rng: np.random.Generator, topics: npt.NDArray[np.int64], spread: float
    ) -> npt.NDArray[np.float32]:
        """Unit vectors around the topics: `spread` is the latent deviation relative to a topic's norm."""
        count = len(topics)
        latent = self.centroids[topics] + rng.standard_normal((count, LATENT_DIMENSION)).astype(np.float32) * spread
        noise = rng.standard_normal((count, DIMENSION)).astype(np.float32) * ISOTROPIC_NOISE
        return unit(latent @ self.projection + noise)

    def sample_text(self, rng: np.random.Generator, count: int) -> list[str]:
        drawn = rng.choice(VOCABULARY, size=(count, WORDS_PER_CHUNK), p=self.word_weights)
        return [" ".join(self.words[index] for index in row) for row in drawn]

    def chunk_topics(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Each video talks about a handful of topics."""
        videos = np.minimum(positions // self.per_video, len(self.videos) - 1)
        return (videos * 7 + positions % 5) % TOPICS


@dataclass
class BuildTimes:
    copy_seconds: float = 0.0
    index_seconds: dict[str, float] = field(default_factory=dict)


def copy_rows(conninfo: str, corpus: Corpus, start: int, stop: int, loader: int) -> None:
    rng = np.random.default_rng([corpus.seed, loader])
    with psycopg.connect(conninfo, autocommit=True) as conn:
        register_vector(conn)
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY transcript_chunks (id, video_id, course_id, chunk_index, start_seconds, end_seconds, text, "
                "token_count, embedding_model, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["text", "text", "text", "int4", "float8", "float8", "text", "int4", "text", "vector"])
            for offset in range(start, stop, COPY_BATCH):
                positions = np.arange(offset, min(offset + COPY_BATCH, stop), dtype=np.int64)
                vectors = corpus.sample_vectors(rng, corpus.chunk_topics(positions), spread=CHUNK_SPREAD)
                texts = corpus.sample_text(rng, len(positions))
                for i, position in enumerate(positions.tolist()):
                    course, video = corpus.videos[corpus.video_of(position)]
                    index = position - corpus.video_of(position) * corpus.per_video
                    copy.write_row(
                        (
                            uuid.uuid4().hex,
                            video,
                            course,
                            index,
                            index * 40.0,
                            index * 40.0 + 45.0,
                            texts[i],
                            WORDS_PER_CHUNK,
                            MODEL,
                            vectors[i],
                        )
                    )


def load(conninfo: str, corpus: Corpus) -> BuildTimes:
    """Bulk-load the corpus, then build the chunk table's secondary indexes from their migrated definitions."""
    times = BuildTimes()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), a.amname "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE i.indrelid = 'transcript_chunks'::regclass AND NOT i.indisprimary "
            "ORDER BY a.amname = 'hnsw', 1"
        ).fetchall()
        for name, _, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO transcripts (video_id, course_id, title, format, duration_seconds, cue_count, "
                "chunk_count, content_hash, embedding_model) VALUES (%s, %s, %s, 'webvtt', %s, %s, %s, %s, %s)",
                [
                    (
                        video,
                        course,
                        f"Lecture {video}",
                        corpus.per_video * 40.0,
                        corpus.per_video * 8,
                        corpus.per_video,
                        "0" * 64,
                        MODEL,
                    )
                    for course, video in corpus.videos
                ],
            )
        started = time.perf_counter()
        bounds = np.linspace(0, corpus.chunks, LOADERS + 1).astype(int).tolist()
        errors: list[BaseException] = []

        def loader(number: int) -> None:
            try:
                copy_rows(conninfo, corpus, bounds[number], bounds[number + 1], number)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=loader, args=(number,)) for number in range(LOADERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        times.copy_seconds = time.perf_counter() - started
        conn.execute(f"SET maintenance_work_mem = '{BUILD_MEMORY}'")
        conn.execute(f"SET max_parallel_maintenance_workers = {BUILD_WORKERS}")
        for name, definition, method in indexes:
            started = time.perf_counter()
            conn.execute(definition)
            times.index_seconds[method] = times.index_seconds.get(method, 0.0) + time.perf_counter() - started
            print(f"  index {name} ({method}) built in {time.perf_counter() - started:.1f} s", flush=True)
        conn.execute("VACUUM ANALYZE transcript_chunks")
        conn.execute("ANALYZE transcripts")
    return times


async def timed(samples: list[float], call: Awaitable[T]) -> T:
    started = time.perf_counter()
    result = await call
    samples.append((time.perf_counter() - started) * 1000)
    return result


@dataclass
class Measured:
    floor: list[float] = field(default_factory=list)
    per_video: list[float] = field(default_factory=list)
    per_course: list[float] = field(default_factory=list)
    vector_exact_course: list[float] = field(default_factory=list)
    vector_hnsw_course: list[float] = field(default_factory=list)
    vector_exact_all: list[float] = field(default_factory=list)
    vector_hnsw_all: list[float] = field(default_factory=list)
    recall_course: list[float] = field(default_factory=list)
    recall_all: list[float] = field(default_factory=list)


async def measure(database: Database, corpus: Corpus, queries: int) -> Measured:
    embedder = PrecomputedEmbedder()
    search = TranscriptSearch(database, embedder)
    rng = np.random.default_rng(11)
    picks = rng.integers(0, len(corpus.videos), size=queries)
    # A question about one of the topics its video covers (see `Corpus.chunk_topics`).
    query_topics = np.asarray([(int(pick) * 7 + int(rng.integers(0, 5))) % TOPICS for pick in picks], dtype=np.int64)
    vectors = corpus.sample_vectors(rng, query_topics, spread=QUERY_SPREAD)
    texts = [" ".join(rng.choice(corpus.words[:600], size=5)) + f" q{n}" for n in range(queries)]
    for query, vector in zip(texts, vectors, strict=True):
        embedder.vectors[query] = [float(value) for value in vector]

    load_before = os.getloadavg()[0]
    result = Measured()
    for warmup in range(min(20, queries)):
        course, video = corpus.videos[int(picks[warmup])]
        await search.search(texts[warmup], video_id=video, limit=10)
        await search.search(texts[warmup], course_id=course, limit=10)
    for n in range(queries):
        course, video = corpus.videos[int(picks[n])]
        query, vector = texts[n], embedder.vectors[texts[n]]
        await timed(result.floor, round_trip(database))
        hits = await timed(result.per_video, search.search(query, video_id=video, limit=10))
        assert hits
        await timed(result.per_course, search.search(query, course_id=course, limit=10))
        exact = await timed(result.vector_exact_course, search.nearest_chunks(vector, course_id=course, exact=True))
        approx = await timed(result.vector_hnsw_course, search.nearest_chunks(vector, course_id=course, exact=False))
        result.recall_course.append(len(set(exact) & set(approx)) / max(1, len(exact)))
        approx = await timed(result.vector_hnsw_all, search.nearest_chunks(vector, exact=False))
        if n < EXACT_ALL_QUERIES:
            exact = await timed(result.vector_exact_all, search.nearest_chunks(vector, exact=True))
            result.recall_all.append(len(set(exact) & set(approx)) / max(1, len(exact)))

    course, _ = corpus.videos[int(picks[0])]
    course_plan = await vector_plan(database, embedder.vectors[texts[0]], course)
    all_plan = await vector_plan(database, embedder.vectors[texts[0]], None)
    print(f"{queries} queries, limit 10, latency in ms (p50 / p99):")
    rows = [
        ("pool checkout + SELECT 1 (floor)", result.floor),
        ("hybrid search, one video", result.per_video),
        ("hybrid search, one course", result.per_course),
        ("vector only, course, exact", result.vector_exact_course),
        ("vector only, course, index allowed", result.vector_hnsw_course),
        (f"vector only, all chunks, exact ({len(result.vector_exact_all)})", result.vector_exact_all),
        ("vector only, all chunks, index allowed", result.vector_hnsw_all),
    ]
    for label, samples in rows:
        print(f"  {label:<40} {percentile(samples, 50):8.2f} / {percentile(samples, 99):8.2f}")
    print(
        f"recall@10 of the index-allowed path vs exact: course {statistics.mean(result.recall_course):.3f} "
        f"(planner: {course_plan}), all chunks {statistics.mean(result.recall_all):.3f} (planner: {all_plan})"
    )
    print(f"load average (1 min): {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print("plans, with a warm cache (EXPLAIN ANALYZE, BUFFERS):")
    course, video = corpus.videos[int(picks[-1])]
    for label, scope in (("one video", {"video_id": video}), ("one course", {"course_id": course})):
        print(f"  hybrid, {label}: {await explained(database, texts[-1], vectors[-1], scope)}")
    return result


async def round_trip(database: Database) -> None:
    """The least a search pays: a connection from the pool (with its liveness ping) and one statement."""
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def explained(database: Database, query: str, vector: npt.NDArray[np.float32], scope: dict[str, str]) -> str:
    """Planning and execution time, buffers and JIT of the search statement, run twice (the second is shown)."""
    sql = hybrid_sql(
        model_id=MODEL,
        dimension=DIMENSION,
        scope=scope_filter(scope.get("video_id"), scope.get("course_id"), window=False),
        exact=True,
    )
    statement = text("EXPLAIN (ANALYZE, BUFFERS) " + sql).bindparams(bindparam("code_terms", type_=ARRAY(Text())))
    params = {"query": query, "code_terms": code_terms(query), "candidates": 40, "limit": 10, **scope}
    params["query_vector"] = vector_literal([float(value) for value in vector])
    async with database.engine.connect() as connection:
        for _ in range(2):
            plan = [row[0] for row in (await connection.execute(statement, params)).all()]
    kept = [line.strip() for line in plan if line.startswith(("Planning Time", "Execution Time", "  Buffers", "JIT"))]
    return "; ".join(kept + ([] if any("JIT" in line for line in plan) else ["no JIT"]))


async def vector_plan(database: Database, vector: list[float], course_id: str | None) -> str:
    """Which path the planner takes for the non-exact vector query."""
    statement = nearest_sql(
        model_id=MODEL, dimension=DIMENSION, scope="c.course_id = :course_id" if course_id else "TRUE", exact=False
    )
    params: dict[str, object] = {"query_vector": vector_literal(vector), "candidates": 10}
    if course_id:
        params["course_id"] = course_id
    async with database.transaction() as session:
        await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        plan = "\n".join(row[0] for row in (await session.execute(text("EXPLAIN " + statement), params)).all())
    return "HNSW index" if vector_index_name(MODEL) in plan else "exact scan"


def size_label(chunks: int) -> str:
    if chunks >= 1_000_000 and chunks % 1_000_000 == 0:
        return f"{chunks // 1_000_000}M"
    if chunks >= 1000 and chunks % 1000 == 0:
        return f"{chunks // 1000}k"
    return str(chunks)


def size_lines(corpus: Corpus, times: BuildTimes, measured: Measured) -> list[Line]:
    area = f"search {size_label(corpus.chunks)}"
    hnsw_seconds = times.index_seconds.get("hnsw", 0.0)
    other_seconds = sum(seconds for method, seconds in times.index_seconds.items() if method != "hnsw")
    exact_all = percentile(measured.vector_exact_all, 50)
    hnsw_all = percentile(measured.vector_hnsw_all, 50)
    return [
        context(area, "round-trip floor (pool + SELECT 1), p99", percentile(measured.floor, 99), "ms"),
        context(area, "hybrid, one video, p50", percentile(measured.per_video, 50), "ms"),
        at_most(area, "hybrid, one video, p99", percentile(measured.per_video, 99), "ms", TARGET_P99_MS),
        context(area, "hybrid, one course, p50", percentile(measured.per_course, 50), "ms"),
        context(area, "hybrid, one course, p99", percentile(measured.per_course, 99), "ms"),
        at_least(
            area,
            "vector recall@10, all chunks (HNSW)",
            statistics.mean(measured.recall_all),
            "",
            TARGET_RECALL,
            baseline="exact scan, same queries",
        ),
        # Course searches rank exactly (recall 1.0); this is the filtered index path they no longer take.
        context(
            area,
            "vector recall@10, one course, HNSW + filter",
            statistics.mean(measured.recall_course),
            "",
            baseline="exact scan, same queries",
        ),
        context(
            area,
            "HNSW speed-up over exact, all chunks, p50",
            exact_all / hnsw_all,
            "x",
            baseline="exact scan, same queries",
        ),
        context(area, "bulk load (binary COPY, 2 loaders)", times.copy_seconds, "s"),
        context(area, "HNSW bulk build", hnsw_seconds, "s"),
        context(area, "btree + GIN index builds", other_seconds, "s"),
    ]


async def run_size(admin_url: str, corpus: Corpus, queries: int) -> list[Line]:
    label = size_label(corpus.chunks)
    url = create_migrated_database(admin_url, "bench_search")
    try:
        print(
            f"\n== {label} chunks: {len(corpus.videos)} videos of {corpus.per_video} chunks, {corpus.courses} courses",
            flush=True,
        )
        times = await asyncio.to_thread(load, libpq_conninfo(url), corpus)
        print(
            f"loaded in {times.copy_seconds:.1f} s, indexes built in {sum(times.index_seconds.values()):.1f} s "
            f"(HNSW {times.index_seconds.get('hnsw', 0.0):.1f} s)",
            flush=True,
        )
        database = Database(url, pool_size=2)
        try:
            measured = await measure(database, corpus, queries)
        finally:
            await database.dispose()
    finally:
        drop_database(admin_url, url)
    return size_lines(corpus, times, measured)


async def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    lines: list[Line] = []
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        embedded = start_embedded_for_tests(Path(tmp))
        try:
            for chunks in args.sizes:
                corpus = Corpus(chunks, args.chunks_per_video, args.videos_per_course)
                lines += await run_size(embedded.admin_url, corpus, args.queries)
        finally:
            embedded.stop()
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")
    publish(lines)


def sizes(value: str) -> list[int]:
    parsed = [int(part) for part in value.split(",") if part.strip()]
    if not parsed or min(parsed) < 1000:
        raise argparse.ArgumentTypeError("sizes are comma-separated chunk counts of at least 1000")
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=sizes, default=[100_000, 1_000_000], help="chunk counts, comma-separated")
    parser.add_argument("--chunks-per-video", type=int, default=100)
    parser.add_argument("--videos-per-course", type=int, default=20)
    parser.add_argument("--queries", type=int, default=400)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
