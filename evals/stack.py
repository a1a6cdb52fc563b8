"""The system under evaluation: an embedded PostgreSQL, the demo course ingested the way `make run` does it,
and a real server on a loopback port per engine, reached through the Python client."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tutorstream_client.client import AsyncTutorstreamClient

from server.app import TutorstreamServer
from server.config import Settings
from server.core.auth import Role, Tier, mint_token
from server.core.db import run_migrations
from server.core.embedded_pg import EmbeddedPostgres
from server.demo import DemoCourse, load_demo_course
from server.embeddings.base import Embedder
from server.seed import seed_course

EVAL_USER = "answer-quality-eval"
# Stands in for the key of an OpenAI-compatible server that needs none (a local model server).
KEYLESS_PLACEHOLDER = "no-key-needed"


def base_overrides(data_dir: Path, database_url: str) -> dict[str, Any]:
    """What every eval server shares. Rate limits are off (the eval asks far faster than a student), the
    response cache too (every answer is the engine's own), and embeddings stay local for both engines, so
    the columns differ only in the model that answers."""
    return {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": data_dir,
        "database_url": database_url,
        "jwt_secret": secrets.token_urlsafe(48),
        "migrate_on_start": False,
        "redis_url": None,
        "metrics_port": 0,
        "embedding_provider": "local",
        "seed_demo_on_start": False,
        "response_cache_ttl_seconds": 0,
        "rate_chat_per_minute": 0,
        "rate_quiz_per_minute": 0,
        "rate_agent_per_minute": 0,
        "rate_default_per_minute": 0,
        "shutdown_notice_seconds": 0.0,
        "grace_seconds": 2.0,
        "job_poll_seconds": 0.2,
        "ingest_watch_poll_seconds": 0.1,
    }


def offline_settings(data_dir: Path, database_url: str) -> Settings:
    return Settings(**{**base_overrides(data_dir, database_url), "openai_api_key": None})


def model_settings(data_dir: Path, database_url: str, **llm: Any) -> Settings | None:
    """Settings for the configured model (OPENAI_API_KEY / OPENAI_BASE_URL / CHAT_MODEL from the environment
    or .env, or `llm` overrides), or None when no model is configured."""
    settings = Settings(**{**base_overrides(data_dir, database_url), **llm})
    if settings.llm_enabled:
        return settings
    if settings.openai_base_url:
        return Settings(**{**base_overrides(data_dir, database_url), **llm, "openai_api_key": KEYLESS_PLACEHOLDER})
    return None


@contextlib.asynccontextmanager
async def embedded_database(base_dir: Path) -> AsyncIterator[str]:
    """A migrated database on an embedded PostgreSQL in `base_dir`, stopped on exit."""
    embedded = EmbeddedPostgres(base_dir / "pg", database="tutorstream_eval")
    url = await embedded.start_async()
    try:
        await asyncio.to_thread(run_migrations, url)
        yield url
    finally:
        await embedded.stop_async()


@contextlib.asynccontextmanager
async def running(settings: Settings, embedder: Embedder) -> AsyncIterator[tuple[TutorstreamServer, str]]:
    """A started server and the target to reach it at."""
    server = TutorstreamServer(settings, embedder=embedder)
    await server.start()
    try:
        yield server, f"127.0.0.1:{server.port}"
    finally:
        await server.stop(0)


async def seed(server: TutorstreamServer, course: DemoCourse | None = None) -> None:
    """Ingest a course (the demo course by default) through the server's own ingest service and jobs; fail
    if any video fails."""
    jobs = await seed_course(server.runtime.transcripts, course or load_demo_course(), wait=True)
    failed = [f"{job.video_id}: {job.state} {job.error_message}" for job in jobs if job.state != "succeeded"]
    if failed:
        raise RuntimeError(f"ingesting the demo course failed: {failed}")


def student_client(settings: Settings, target: str, user: str = EVAL_USER) -> AsyncTutorstreamClient:
    token = mint_token(settings, user_id=user, role=Role.STUDENT, tier=Tier.PRO)
    # A real model may take a while per answer; the eval waits for it rather than failing the item.
    return AsyncTutorstreamClient(target, token, timeout=180.0, stream_timeout=300.0)
