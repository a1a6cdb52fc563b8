"""Background ingest jobs: procrastinate schema, OpenAI embeddings over the wire, upstream failures, worker
crashes and restarts, re-embedding, and the demo course seeding."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import undefer
from tutorstream.v1 import analytics_service_pb2 as analytics_pb
from tutorstream.v1 import transcript_service_pb2 as pb

from server.config import Settings
from server.core.db import downgrade_migrations, libpq_conninfo, normalize_database_url, run_migrations
from server.core.embedded_pg import EmbeddedPostgres
from server.core.models import Base
from server.demo import load_demo_course
from server.demo.activity import EXPERIMENT_ID
from server.embeddings.base import ProgressCallback
from server.embeddings.openai_embedder import OpenAIEmbedder
from server.nlp.analysis import ANALYSIS_VERSION
from server.seed import seed_demo_if_absent
from server.transcripts.models import IngestJob, Transcript, TranscriptChunk, TranscriptPhrase, TranscriptSentence
from server.transcripts.repository.search import ensure_vector_index
from server.transcripts.search import TranscriptSearch
from tests.conftest import RunningServer
from tests.support.clients import Client
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.postgres import create_fresh_database, drop_database
from tests.test_storage import _tables_named_in
from tests.transcripts.conftest import TranscriptServerFactory, poll_until, synthetic_vtt, wait_for_job

OPENAI_MODEL = "openai:text-embedding-3-small"
LOCAL_MODEL = "local:all-MiniLM-L6-v2"
SERVER_CLI = str(Path(sys.executable).parent / "tutorstream-server")


def cli_env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a `tutorstream-server` subprocess on the test database (nothing inherited that
    would point it elsewhere)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "DATABASE_", "REDIS_", "EMBEDDING_", "JOB_", "SEED_"))
    }
    env |= {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "cli-data"),
        "MIGRATE_ON_START": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return env | extra


def openai_settings(fake: FakeOpenAI) -> dict[str, object]:
    return {"openai_api_key": fake.api_key, "openai_base_url": fake.base_url, "embedding_provider": "openai"}


def ingest_request(video_id: str, content: str, **fields: object) -> pb.IngestTranscriptRequest:
    return pb.IngestTranscriptRequest(
        request_id=f"req-{uuid.uuid4().hex}",
        video_id=video_id,
        course_id="course-jobs",
        title=video_id,
        format=pb.TRANSCRIPT_FORMAT_WEBVTT,
        content=content,
        **fields,  # type: ignore[arg-type]
    )


async def job_row(server: RunningServer, job_id: str) -> IngestJob:
    async with server.server.database.session() as session:
        row = await session.get(IngestJob, job_id, options=[undefer(IngestJob.content)])
    assert row is not None
    return row


async def wait_for_stage(client: Client, name: str, stage: int, within: float = 60.0) -> None:
    async with asyncio.timeout(within):
        async for update in client.transcripts.WatchIngestJob(pb.WatchIngestJobRequest(name=name)):
            if update.job.stage == stage:
                return
    raise AssertionError(f"job ended before reaching stage {stage}")


# --- schema ---------------------------------------------------------------------------------------


def test_the_migration_installs_procrastinate_and_its_downgrade_removes_it(embedded_pg: EmbeddedPostgres) -> None:
    url = create_fresh_database(embedded_pg.admin_url, "jobs")
    try:
        run_migrations(url, "0003")
        with psycopg.connect(libpq_conninfo(url)) as conn:
            tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            functions = conn.execute(
                "SELECT count(*) FROM pg_proc WHERE proname = 'procrastinate_fetch_job_v2'"
            ).fetchone()
            indexes = {
                row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'transcript_chunks'")
            }
        assert {
            "procrastinate_jobs",
            "procrastinate_workers",
            "transcripts",
            "transcript_chunks",
            "ingest_jobs",
        } <= tables
        assert functions == (1,)
        assert "ix_transcript_chunks_hnsw_local_all_minilm_l6_v2" in indexes

        downgrade_migrations(url, "0002")
        with psycopg.connect(libpq_conninfo(url)) as conn:
            leftovers = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relname LIKE 'procrastinate%' OR relname LIKE 'transcript%' "
                "OR relname = 'ingest_jobs' UNION ALL SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%' "
                "UNION ALL SELECT count(*) FROM pg_type WHERE typname LIKE 'procrastinate%'"
            ).fetchall()
        assert leftovers == [(0,), (0,), (0,)]
        run_migrations(url, "0003")
    finally:
        drop_database(embedded_pg.admin_url, url)


# --- OpenAI embeddings ------------------------------------------------------------------------------


async def test_openai_embeddings_are_batched_and_a_429_is_retried(
    transcript_server_factory: TranscriptServerFactory, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path, openai_api_key=fake_openai.api_key, openai_base_url=fake_openai.base_url
    )  # type: ignore[call-arg]
    embedder = OpenAIEmbedder(settings, max_inputs_per_request=3)
    try:
        server = await transcript_server_factory(embedder=embedder)
        fake_openai.enqueue_embeddings(Behavior(status=429, retry_after=0.2, error_message="slow down"))
        client = server.client("teacher", role="instructor")
        response = await client.transcripts.IngestTranscript(ingest_request("video-openai", synthetic_vtt(8)))
        job = await wait_for_job(client, response.job.name)
        assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED, job.error_message
        chunks = job.total_units
        assert chunks >= 7

        async with server.server.database.session() as session:
            models = set((await session.execute(select(TranscriptChunk.embedding_model))).scalars())
            dims = set()
            counts = {}
            for table in ("transcript_chunks", "transcript_sentences", "transcript_phrases"):
                dims |= set(
                    (await session.execute(text(f"SELECT DISTINCT vector_dims(embedding) FROM {table}"))).scalars()
                )
                models |= set((await session.execute(text(f"SELECT DISTINCT embedding_model FROM {table}"))).scalars())
                counts[table] = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
        assert models == {OPENAI_MODEL} and dims == {1536}
        assert counts["transcript_chunks"] == chunks and counts["transcript_sentences"] >= 8
        # One pass embeds the chunks, their sentences and the key phrases, in batches of 3.
        embedded = sum(counts.values())

        requests = fake_openai.embedding_requests
        batches = [request.body["input"] for request in requests]
        assert all(len(batch) <= 3 for batch in batches)
        assert batches[0] == batches[1]  # the throttled batch, sent again
        assert len(batches) == math.ceil(embedded / 3) + 1
        assert sum(len(batch) for batch in batches[1:]) == embedded
        assert {request.body["model"] for request in requests} == {"text-embedding-3-small"}

        found = await client.transcripts.SearchTranscripts(
            pb.SearchTranscriptsRequest(query="Point 40 about layout", video_id="video-openai", limit=3)
        )
        assert found.embedding_model == OPENAI_MODEL
        assert "Point 40 " in found.results[0].text
    finally:
        await embedder.aclose()


async def test_a_failing_embedding_upstream_fails_the_job_and_keeps_the_old_transcript(
    transcript_server_factory: TranscriptServerFactory, fake_openai: FakeOpenAI
) -> None:
    server = await transcript_server_factory(embedder="configured", **openai_settings(fake_openai))
    client = server.client("teacher", role="instructor")
    first = await wait_for_job(
        client,
        (
            await client.transcripts.IngestTranscript(ingest_request("video-f", synthetic_vtt(3, marker="original")))
        ).job.name,
    )
    assert first.state == pb.INGEST_JOB_STATE_SUCCEEDED
    before = (
        await client.transcripts.GetTranscript(pb.GetTranscriptRequest(name="videos/video-f/transcript"))
    ).transcript

    fake_openai.enqueue_embeddings(Behavior(status=400, error_message="this model is not available to you"))
    replaced = await client.transcripts.IngestTranscript(
        ingest_request("video-f", synthetic_vtt(3, marker="replacement"))
    )
    failed = await wait_for_job(client, replaced.job.name)
    assert failed.state == pb.INGEST_JOB_STATE_FAILED
    assert failed.stage == pb.INGEST_STAGE_EMBEDDING
    assert failed.error_message

    after = (
        await client.transcripts.GetTranscript(pb.GetTranscriptRequest(name="videos/video-f/transcript"))
    ).transcript
    assert after.content_hash == before.content_hash
    hits = await client.transcripts.SearchTranscripts(
        pb.SearchTranscriptsRequest(query="original", video_id="video-f", limit=50)
    )
    assert len(hits.results) == before.chunk_count
    assert all("original" in hit.text for hit in hits.results)
    assert (await job_row(server, failed.job_id)).content is None


# --- worker crashes and restarts ----------------------------------------------------------------------


async def test_a_job_survives_its_worker_process_being_killed(
    transcript_server_factory: TranscriptServerFactory, fake_openai: FakeOpenAI, fresh_database_url: str, tmp_path: Path
) -> None:
    # The API server only queues; a `tutorstream-server worker` process picks the job up.
    server = await transcript_server_factory(
        embedder="configured", run_workers_in_process=False, **openai_settings(fake_openai)
    )
    client = server.client("teacher", role="instructor")
    fake_openai.default_embeddings = Behavior(first_token_delay=120.0)
    response = await client.transcripts.IngestTranscript(ingest_request("video-k", synthetic_vtt(4)))

    env = cli_env(
        fresh_database_url,
        tmp_path,
        OPENAI_API_KEY=fake_openai.api_key,
        OPENAI_BASE_URL=fake_openai.base_url,
        EMBEDDING_PROVIDER="openai",
        JOB_HEARTBEAT_SECONDS="0.5",
        JOB_STALLED_SECONDS="3",
        JOB_SWEEP_SECONDS="0.5",
        JOB_POLL_SECONDS="0.5",
    )
    with (tmp_path / "worker.log").open("w") as log:
        worker = await asyncio.create_subprocess_exec(
            SERVER_CLI, "worker", env=env, cwd=tmp_path, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        try:
            await wait_for_stage(client, response.job.name, pb.INGEST_STAGE_EMBEDDING, within=90)
            assert await fake_openai.wait_for_async(lambda: len(fake_openai.embedding_requests) >= 1, timeout=30)
        finally:
            worker.kill()
            await asyncio.wait_for(worker.wait(), timeout=30)
    stuck = await client.transcripts.GetIngestJob(pb.GetIngestJobRequest(name=response.job.name))
    assert stuck.job.state == pb.INGEST_JOB_STATE_RUNNING

    # A new worker (here: the in-process worker of a second server) notices the dead worker's missing
    # heartbeat, re-queues its job and runs it to the end.
    fake_openai.default_embeddings = Behavior()
    await transcript_server_factory(embedder="configured", **openai_settings(fake_openai))
    job = await wait_for_job(client, response.job.name, within=120)
    assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED, job.error_message
    assert (await job_row(server, job.job_id)).attempts == 2
    transcript = await client.transcripts.GetTranscript(pb.GetTranscriptRequest(name="videos/video-k/transcript"))
    assert transcript.transcript.chunk_count == job.total_units


async def test_a_job_interrupted_by_a_worker_shutdown_is_finished_by_the_next_worker(
    transcript_server_factory: TranscriptServerFactory, fake_openai: FakeOpenAI
) -> None:
    first = await transcript_server_factory(
        embedder="configured", job_shutdown_grace_seconds=0.2, **openai_settings(fake_openai)
    )
    client = first.client("teacher", role="instructor")
    fake_openai.default_embeddings = Behavior(first_token_delay=120.0)
    response = await client.transcripts.IngestTranscript(ingest_request("video-g", synthetic_vtt(4)))
    await wait_for_stage(client, response.job.name, pb.INGEST_STAGE_EMBEDDING)
    await first.server.stop(0)

    fake_openai.default_embeddings = Behavior()
    second = await transcript_server_factory(embedder="configured", **openai_settings(fake_openai))
    watcher = second.client("teacher", role="instructor")
    job = await wait_for_job(watcher, response.job.name, within=120)
    assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED, job.error_message
    assert (await job_row(second, job.job_id)).attempts == 2


# --- embedding models ---------------------------------------------------------------------------------


async def test_search_uses_only_the_active_model_and_a_reembed_job_converts_the_rest(
    transcript_server_factory: TranscriptServerFactory, fake_openai: FakeOpenAI, fresh_database_url: str
) -> None:
    openai_server = await transcript_server_factory(embedder="configured", **openai_settings(fake_openai))
    teacher = openai_server.client("teacher", role="instructor")
    job = await wait_for_job(
        teacher, (await teacher.transcripts.IngestTranscript(ingest_request("video-m", synthetic_vtt(4)))).job.name
    )
    assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED
    await openai_server.server.stop(0)

    # The local model is configured now, with no worker yet: vectors of the old model are never compared
    # with local query vectors, so only full text answers.
    local_api = await transcript_server_factory(run_workers_in_process=False)
    search = local_api.server.runtime.search
    before = await search.search_with_model("Point 7 about layout", video_id="video-m", limit=5)
    assert before.embedding_model == LOCAL_MODEL
    assert before.hits and all(hit.vector_rank == 0 and hit.text_rank > 0 for hit in before.hits)

    # A worker with the local model runs the re-embed job the startup check queued.
    await transcript_server_factory()

    async def converted() -> bool:
        async with local_api.server.database.session() as session:
            models = set((await session.execute(select(TranscriptChunk.embedding_model))).scalars())
            for table in (TranscriptSentence, TranscriptPhrase):
                models |= set((await session.execute(select(table.embedding_model))).scalars())
            transcript_model = (
                await session.execute(select(Transcript.embedding_model).where(Transcript.video_id == "video-m"))
            ).scalar_one()
        return models == {LOCAL_MODEL} and transcript_model == LOCAL_MODEL

    await poll_until(converted, within=120)
    after = await search.search_with_model("Point 7 about layout", video_id="video-m", limit=5)
    assert any(hit.vector_rank > 0 for hit in after.hits)
    async with local_api.server.database.session() as session:
        for table in ("transcript_chunks", "transcript_sentences", "transcript_phrases"):
            dims = set((await session.execute(text(f"SELECT DISTINCT vector_dims(embedding) FROM {table}"))).scalars())
            assert dims == {384}, table


async def test_transcripts_stored_before_the_analysis_get_it_from_a_backfill_job(
    transcript_server_factory: TranscriptServerFactory,
) -> None:
    first = await transcript_server_factory()
    teacher = first.client("teacher", role="instructor")
    job = await wait_for_job(
        teacher, (await teacher.transcripts.IngestTranscript(ingest_request("video-old", synthetic_vtt(6)))).job.name
    )
    assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED
    database = first.server.database
    async with database.session() as session:
        ingested = (
            await session.execute(
                select(TranscriptSentence.text, TranscriptSentence.start_seconds).order_by(
                    TranscriptSentence.sentence_index
                )
            )
        ).all()
    # One sentence per five-second cue, timed by its cue.
    assert [start for _, start in ingested] == [index * 5.0 for index in range(72)]
    # As a transcript stored before sentence analysis existed looks.
    async with database.transaction() as session:
        await session.execute(text("DELETE FROM transcript_sentences"))
        await session.execute(text("DELETE FROM transcript_phrases"))
        await session.execute(text("UPDATE transcripts SET analysis_version = ''"))
    await first.server.stop(0)

    restarted = await transcript_server_factory()

    async def analysed() -> bool:
        async with restarted.server.database.session() as session:
            version = (await session.execute(select(Transcript.analysis_version))).scalar_one()
        return version == ANALYSIS_VERSION

    await poll_until(analysed, within=60)
    async with restarted.server.database.session() as session:
        backfilled = (
            await session.execute(
                select(TranscriptSentence.text, TranscriptSentence.start_seconds).order_by(
                    TranscriptSentence.sentence_index
                )
            )
        ).all()
        phrases = (await session.execute(select(func.count()).select_from(TranscriptPhrase))).scalar_one()
    assert backfilled == ingested and phrases > 0


class HashingEmbedder:
    """A tiny deterministic model of another dimension (the Embedder protocol), for index management."""

    model_id = "test:hashing-8"
    dimension = 8

    async def embed(self, texts: Sequence[str], *, on_progress: ProgressCallback | None = None) -> list[list[float]]:
        vectors = []
        for text_ in texts:
            values = [float(byte) + 1.0 for byte in hashlib.sha256(text_.encode()).digest()[:8]]
            norm = math.sqrt(sum(value * value for value in values))
            vectors.append([value / norm for value in values])
        return vectors

    async def aclose(self) -> None:
        return None


async def test_a_new_model_gets_its_own_hnsw_index(transcript_server_factory: TranscriptServerFactory) -> None:
    server = await transcript_server_factory(embedder=HashingEmbedder())
    async with server.server.database.session() as session:
        valid = (
            await session.execute(
                text(
                    "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                    "WHERE c.relname = 'ix_transcript_chunks_hnsw_test_hashing_8'"
                )
            )
        ).scalar_one()
    assert valid is True
    client = server.client("teacher", role="instructor")
    job = await wait_for_job(
        client, (await client.transcripts.IngestTranscript(ingest_request("video-h", synthetic_vtt(2)))).job.name
    )
    assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED
    found = await server.server.runtime.search.search_with_model("Point 3 about layout", course_id="course-jobs")
    assert found.embedding_model == "test:hashing-8"
    assert any(hit.vector_rank for hit in found.hits)
    # A second start finds the index in place.
    assert not await ensure_vector_index(server.server.database, "test:hashing-8", 8)


async def test_search_falls_back_to_full_text_when_the_query_cannot_be_embedded(
    transcript_server_factory: TranscriptServerFactory, fake_openai: FakeOpenAI
) -> None:
    server = await transcript_server_factory(embedder="configured", **openai_settings(fake_openai))
    client = server.client("teacher", role="instructor")
    job = await wait_for_job(
        client, (await client.transcripts.IngestTranscript(ingest_request("video-t", synthetic_vtt(3)))).job.name
    )
    assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED
    search = TranscriptSearch(
        server.server.database, server.server.runtime.embedder, query_embedding_timeout_seconds=0.5
    )

    fake_openai.default_embeddings = Behavior(first_token_delay=30.0)
    slow = await search.search_with_model("Point 12 about layout", video_id="video-t", limit=3)
    assert slow.embedding_model == ""
    assert slow.hits and all(hit.vector_rank == 0 and hit.text_rank > 0 for hit in slow.hits)
    assert "Point 12 " in slow.hits[0].text

    fake_openai.default_embeddings = Behavior()
    fake_openai.enqueue_embeddings(Behavior(status=401, error_message="bad key"))
    rejected = await search.search_with_model("Point 13 about layout", video_id="video-t", limit=3)
    assert rejected.embedding_model == "" and "Point 13 " in rejected.hits[0].text

    healthy = await search.search_with_model("Point 14 about layout", video_id="video-t", limit=3)
    assert healthy.embedding_model == OPENAI_MODEL and any(hit.vector_rank for hit in healthy.hits)


# --- the demo course ----------------------------------------------------------------------------------


async def test_serve_seeds_the_demo_course_once(transcript_server_factory: TranscriptServerFactory) -> None:
    course = load_demo_course()
    server = await transcript_server_factory(seed_demo_on_start=True)
    student = server.client("learner")

    teacher = server.client("teacher", role="instructor", courses=[course.course_id])

    async def all_ingested() -> bool:
        listed = await student.transcripts.ListTranscripts(pb.ListTranscriptsRequest(course_id=course.course_id))
        return len(listed.transcripts) == len(course.videos)

    async def activity_written() -> bool:
        listed = await teacher.analytics.ListExperiments(
            analytics_pb.ListExperimentsRequest(parent=f"courses/{course.course_id}")
        )
        return [experiment.name for experiment in listed.experiments] == [
            f"courses/{course.course_id}/experiments/{EXPERIMENT_ID}"
        ]

    await poll_until(all_ingested, within=180, every=0.5)
    await poll_until(activity_written, within=60, every=0.5)
    found = await student.transcripts.SearchTranscripts(
        pb.SearchTranscriptsRequest(query="What does Promise.all do?", course_id=course.course_id, limit=3)
    )
    assert found.results[0].video_id == "async-javascript"

    # Seeding again finds the course in place and queues nothing.
    await seed_demo_if_absent(server.server.runtime.transcripts, server.server.database)
    async with server.server.database.session() as session:
        jobs = (await session.execute(select(func.count()).select_from(IngestJob))).scalar_one()
    assert jobs == len(course.videos)


async def test_the_seed_demo_command_ingests_the_course(fresh_database_url: str, tmp_path: Path) -> None:
    env = cli_env(fresh_database_url, tmp_path, JOB_POLL_SECONDS="0.5")
    process = await asyncio.create_subprocess_exec(
        SERVER_CLI, "seed-demo", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, output.decode()
    course = load_demo_course()
    lines = output.decode().splitlines()
    for video in course.videos:
        assert f"{video.video_id}: succeeded" in lines
    with psycopg.connect(libpq_conninfo(fresh_database_url)) as conn:
        row = conn.execute(
            "SELECT count(*), min(chunk_count) FROM transcripts WHERE course_id = %s", (course.course_id,)
        ).fetchone()
    assert row is not None and row[0] == len(course.videos) and row[1] > 3


async def test_finished_queue_entries_are_deleted(transcript_server: RunningServer) -> None:
    client = transcript_server.client("teacher", role="instructor")
    job = await wait_for_job(
        client, (await client.transcripts.IngestTranscript(ingest_request("video-old", synthetic_vtt(1)))).job.name
    )
    assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED

    async def queue_entries() -> int:
        async with transcript_server.server.database.session() as session:
            return int((await session.execute(text("SELECT count(*) FROM procrastinate_jobs"))).scalar_one())

    assert await queue_entries() >= 1
    await transcript_server.server.runtime.jobs.delete_finished(older_than_hours=0)
    assert await queue_entries() == 0
    # The job record itself stays: the request id still answers with its job.
    again = await client.transcripts.GetIngestJob(pb.GetIngestJobRequest(name=job.name))
    assert again.job.state == pb.INGEST_JOB_STATE_SUCCEEDED


def test_the_transcript_models_match_the_migration(embedded_pg: EmbeddedPostgres) -> None:
    url = create_fresh_database(embedded_pg.admin_url, "models")
    try:
        run_migrations(url)
        engine = create_engine(normalize_database_url(url))
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(
                    connection, opts={"compare_type": True, "compare_server_default": True}
                )
                differences = compare_metadata(context, Base.metadata)
        finally:
            engine.dispose()
        ours = {"transcripts", "transcript_chunks", "ingest_jobs"}
        # The per-model HNSW indexes are created per configured model, not declared on the model class.
        relevant = [
            diff
            for diff in differences
            if ours & set(_tables_named_in(diff))
            and not (diff[0] == "remove_index" and diff[1].name.startswith("ix_transcript_chunks_hnsw_"))
        ]
        assert relevant == [], "\n".join(map(str, relevant))
    finally:
        drop_database(embedded_pg.admin_url, url)
