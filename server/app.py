"""Build and run the grpc.aio server: servicers behind the interceptor, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from redis.asyncio import Redis
from tutorstream.v1 import (
    agent_service_pb2,
    agent_service_pb2_grpc,
    analytics_service_pb2,
    analytics_service_pb2_grpc,
    chat_service_pb2,
    chat_service_pb2_grpc,
    transcript_service_pb2,
    transcript_service_pb2_grpc,
)

from server.agents.mastery import P_INIT
from server.agents.preferences import PreferencesService
from server.agents.service import AgentsService
from server.agents.servicer import AgentServicer
from server.analytics.moderation import FlagService
from server.analytics.service import AnalyticsService
from server.analytics.servicer import AnalyticsServicer
from server.analytics.usage import UsageService
from server.analytics.video import VideoAnalyticsService
from server.chat.questions import SegmentQuestions
from server.chat.service import ChatService
from server.chat.servicer import ChatServicer
from server.chat.turn import TurnRunner
from server.config import Settings
from server.core import tls, tracing
from server.core.auth import Authenticator
from server.core.db import Database
from server.core.interceptors import ServerInterceptor
from server.core.metrics import MetricsEndpoint
from server.embeddings.base import Embedder
from server.embeddings.factory import build_embedder
from server.experiments.service import ExperimentService
from server.jobs.queue import JobQueue
from server.jobs.worker import JobWorker
from server.limits.budget import TokenBudget
from server.limits.gate import LIMITS_HEALTH_SERVICE, LimitsGate
from server.limits.setup import build_limits
from server.llm import moderation, pii
from server.llm.moderation import Moderator
from server.llm.router import LLMRouter
from server.nlp import pipeline as nlp_pipeline
from server.progress.service import ProgressService, build_progress
from server.progress.stream import ProgressStreams
from server.seed import seed_demo_if_absent
from server.transcripts.asr_service import MediaTranscriptionService
from server.transcripts.courses import CourseInstructorService
from server.transcripts.search import TranscriptSearch
from server.transcripts.sentences import SentenceStore
from server.transcripts.service import TranscriptService
from server.transcripts.servicer import TranscriptServicer
from server.worker import open_job_queue

log = logging.getLogger("tutorstream.server")

# A shutdown step gets the longer of the two grace periods plus this before it is abandoned.
CLOSE_MARGIN_SECONDS = 5.0
SERVICE_NAMES = (
    chat_service_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name,
    agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    transcript_service_pb2.DESCRIPTOR.services_by_name["TranscriptService"].full_name,
    analytics_service_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name,
)


@dataclass
class Runtime:
    """Long-lived collaborators shared by the servicers of one process. Built once in `start()`;
    whatever needs closing registers a closer in `closers` (closed in reverse order on shutdown)."""

    settings: Settings
    database: Database
    authenticator: Authenticator
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Set in `start()` right after construction.
    embedder: Embedder = field(init=False)
    search: TranscriptSearch = field(init=False)
    sentences: SentenceStore = field(init=False)  # what ingest learned of each sentence and key phrase
    jobs: JobQueue = field(init=False)
    transcripts: TranscriptService = field(init=False)
    media: MediaTranscriptionService = field(init=False)  # speech-to-text ingest (TranscribeMedia, UploadMedia)
    budget: TokenBudget = field(init=False)
    limits: LimitsGate = field(init=False)
    llm: LLMRouter = field(init=False)  # chat model or offline engine, breaker, response cache
    preferences: PreferencesService = field(init=False)  # read by every turn, hint and watch session; cached
    moderator: Moderator = field(init=False)  # what students write to the chat and in hint struggles
    agents: AgentsService = field(init=False)  # hints, quizzes, reflections, learning paths, review pointers
    progress: ProgressService = field(init=False)  # watch sessions: events in, interventions out
    redis: Redis | None = None  # redis.asyncio client shared by the process; None without REDIS_URL


def warm_up_language() -> None:
    nlp_pipeline.warm_up()
    pii.warm_up()
    moderation.warm_up()


def register_servicers(server: aio.Server, runtime: Runtime, interceptor: ServerInterceptor) -> None:
    """Each domain's servicer, built from the runtime, its methods wrapped by `interceptor`. Unimplemented RPCs
    answer UNIMPLEMENTED."""
    turns = TurnRunner(
        settings=runtime.settings,
        database=runtime.database,
        search=runtime.search,
        sentences=runtime.sentences,
        preferences=runtime.preferences,
        llm=runtime.llm,
        budget=runtime.budget,
        moderator=runtime.moderator,
    )
    runtime.closers.append(turns.aclose)
    interceptor.add_service(
        server,
        chat_service_pb2_grpc.add_ChatServiceServicer_to_server,
        ChatServicer(
            ChatService(runtime.database, runtime.search, runtime.sentences, turns),
            SegmentQuestions(runtime.database, runtime.search),
        ),
    )
    agents = AgentServicer(runtime.preferences, runtime.agents, ProgressStreams(runtime.progress))
    interceptor.add_service(server, agent_service_pb2_grpc.add_AgentServiceServicer_to_server, agents)
    interceptor.add_service(
        server,
        transcript_service_pb2_grpc.add_TranscriptServiceServicer_to_server,
        TranscriptServicer(runtime.transcripts, runtime.media, CourseInstructorService(runtime.database)),
    )
    interceptor.add_service(
        server,
        analytics_service_pb2_grpc.add_AnalyticsServiceServicer_to_server,
        AnalyticsServicer(
            UsageService(runtime.database, runtime.budget, runtime.limits),
            AnalyticsService(
                runtime.database,
                runtime.jobs,
                forget_user=runtime.progress.hub.forget_user,
                preferences_deleted=runtime.preferences.forget,
            ),
            VideoAnalyticsService(runtime.database, runtime.search, runtime.settings),
            ExperimentService(runtime.database, mastery_prior=P_INIT),
            FlagService(runtime.database),
        ),
    )


class TutorstreamServer:
    """One server process: owns the database handle and every long-lived client it opens."""

    def __init__(
        self, settings: Settings, *, database: Database | None = None, embedder: Embedder | None = None
    ) -> None:
        self.settings = settings
        self._database = database
        # An embedder passed in is shared (tests load the local model once) and not closed here.
        self._embedder = embedder
        self._owns_database = database is None
        self._server: aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.port = 0
        self.metrics_port = 0  # where /metrics is served; 0 while disabled
        self.interceptor: ServerInterceptor | None = None
        self.runtime: Runtime

    @property
    def database(self) -> Database:
        if self._database is None:
            raise RuntimeError("server not started")
        return self._database

    async def start(self) -> int:
        settings = self.settings
        # Before anything starts: a bad certificate or a plaintext network address stops startup right here.
        credentials = tls.server_credentials(settings)
        if self._database is None:
            self._database = await Database.from_settings(settings)
        if settings.migrate_on_start:
            await self._database.run_migrations()
        authenticator = Authenticator(settings)
        self.runtime = Runtime(settings=settings, database=self._database, authenticator=authenticator)
        self._closers = self.runtime.closers
        flush_traces = tracing.start()
        if flush_traces is not None:
            self._closers.append(flush_traces)
        tracing.instrument_clients(self._database.engine.sync_engine)
        limits = await build_limits(settings, self._database, listener=self._limits_state_changed)
        self._closers.append(limits.close)
        self.runtime.budget, self.runtime.limits, self.runtime.redis = limits.budget, limits.gate, limits.redis
        if self._embedder is not None:
            self.runtime.embedder = self._embedder
        else:
            self.runtime.embedder = build_embedder(settings)
            self._closers.append(self.runtime.embedder.aclose)
        self.runtime.search = TranscriptSearch(self._database, self.runtime.embedder)
        self.runtime.sentences = SentenceStore(self._database)
        # spaCy and the personal-data analyzer load in a second or two: ahead of the first question, not during it.
        language = asyncio.ensure_future(asyncio.to_thread(warm_up_language))
        await self._start_jobs()
        self.runtime.llm = LLMRouter.from_settings(settings, redis=self.runtime.redis)
        self._closers.append(self.runtime.llm.aclose)
        redis = self.runtime.redis
        self.runtime.preferences = PreferencesService(
            self._database,
            cache_seconds=settings.preferences_cache_seconds,
            redis=redis,
            subscriber=Redis.from_url(settings.redis_url, health_check_interval=30)
            if redis is not None and settings.redis_url
            else None,
        )
        await self.runtime.preferences.start()
        self._closers.append(self.runtime.preferences.close)
        self.runtime.moderator = Moderator(settings)
        self._closers.append(self.runtime.moderator.aclose)
        self.runtime.agents = AgentsService(
            moderator=self.runtime.moderator,
            settings=settings,
            database=self._database,
            search=self.runtime.search,
            sentences=self.runtime.sentences,
            llm=self.runtime.llm,
            budget=self.runtime.budget,
            preferences=self.runtime.preferences,
        )
        self.runtime.progress = await build_progress(
            settings,
            self._database,
            self.runtime.search,
            self.runtime.preferences,
            redis=redis,
            agents=self.runtime.agents,
        )
        self._closers.append(self.runtime.progress.close)
        self.interceptor = ServerInterceptor(authenticator)
        self.interceptor.gate = limits.gate
        server = aio.server(
            interceptors=tracing.server_interceptors(),
            options=[
                ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
                ("grpc.max_send_message_length", settings.max_send_message_bytes),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.so_reuseport", 0),
            ],
        )
        register_servicers(server, self.runtime, self.interceptor)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        address = f"{settings.host}:{settings.port}"
        if credentials is None:
            self.port = server.add_insecure_port(address)
        else:
            self.port = server.add_secure_port(address, credentials)
        if self.port == 0:
            raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
        if settings.metrics_port > 0:
            await self._start_metrics()
        await language
        await server.start()
        self._server = server
        await self._set_serving(health_pb2.HealthCheckResponse.SERVING)
        await self._limits_state_changed(limits.gate.degraded)
        transport = "plaintext" if credentials is None else "TLS"
        if settings.tls_client_ca_file is not None:
            transport += ", client certificates required"
        log.info("tutorstream listening on %s:%d (%s)", settings.host, self.port, transport)
        return self.port

    async def _start_jobs(self) -> None:
        """The job queue (always: this process defers jobs), an in-process worker unless disabled, and the
        demo course seeding when asked for."""
        runtime, settings = self.runtime, self.settings
        runtime.jobs = await open_job_queue(settings, runtime.database, runtime.embedder)
        self._closers.append(runtime.jobs.close)
        runtime.transcripts = TranscriptService(runtime.database, runtime.search, runtime.jobs, settings)
        runtime.media = MediaTranscriptionService(runtime.database, runtime.jobs, settings)
        if settings.run_workers_in_process:
            worker = JobWorker(runtime.jobs, settings)
            await worker.start()
            self._closers.append(worker.stop)
        if settings.seed_demo_on_start:
            seeding = asyncio.create_task(seed_demo_if_absent(runtime.transcripts, runtime.database))

            async def stop_seeding() -> None:
                seeding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await seeding

            self._closers.append(stop_seeding)

    async def _start_metrics(self) -> None:
        jobs = self.runtime.jobs
        endpoint = MetricsEndpoint(
            self.settings.host, self.settings.metrics_port, job_stats=jobs.app.job_manager, queues=jobs.queues
        )
        self.metrics_port = await endpoint.start()
        self._closers.append(endpoint.stop)

    async def _set_serving(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, status)

    async def _limits_state_changed(self, degraded: bool) -> None:
        """Redis outage mode shows as NOT_SERVING on `tutorstream.limits`; overall health stays SERVING."""
        serving = health_pb2.HealthCheckResponse
        await self._health.set(LIMITS_HEALTH_SERVICE, serving.NOT_SERVING if degraded else serving.SERVING)

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first (load balancers drain), then stop accepting and let in-flight RPCs finish."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await self._set_serving(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.settings.shutdown_notice_seconds > 0:
            await asyncio.sleep(self.settings.shutdown_notice_seconds)
        await server.stop(self.settings.grace_seconds if grace is None else grace)
        # Each step is bounded: one that never finishes (a library task that swallowed its cancellation) is
        # named in the log and left behind, and the steps after it still run.
        within = max(self.settings.grace_seconds, self.settings.job_shutdown_grace_seconds) + CLOSE_MARGIN_SECONDS
        for close in reversed(self._closers):
            try:
                async with asyncio.timeout(within):
                    await close()
            except TimeoutError:
                log.error(
                    "a shutdown step did not finish in %.0f s and was abandoned",
                    within,
                    extra={"step": getattr(close, "__qualname__", repr(close))},
                )
            except Exception as error:
                log.warning("a shutdown step failed: %s", type(error).__name__)
        self._closers.clear()
        if self._owns_database and self._database is not None:
            await self._database.dispose()
            self._database = None
        log.info("tutorstream stopped")

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


def tune_garbage_collector(settings: Settings) -> None:
    """With thousands of open streams the heap holds ~1M long-lived objects, and a full collection over them
    stalls the event loop for 0.4-0.8 s (bench/bench_progress.py) while finding no garbage: what the process built
    at startup moves to the permanent generation, and full passes come every GC_GENERATION2_THRESHOLD-th
    middle-generation collection instead of CPython's every 10th."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, settings.gc_generation2_threshold)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    server = TutorstreamServer(settings)
    await server.start()
    tune_garbage_collector(settings)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    await stop_requested.wait()
    log.info("shutdown requested: draining for up to %.1fs", settings.grace_seconds)
    await server.stop()
